//! The OpenAPI 3.0 document of the REST API, served at `/api/openapi.json`.
//! It is written by hand next to the handlers it describes; the tests below
//! check that every route the router serves is documented.

use serde_json::{Value, json};

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

fn ok(schema: &str) -> Value {
    json!({
        "description": "OK",
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
    })
}

fn body(schema: &str) -> Value {
    json!({
        "required": true,
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
    })
}

/// The topic grammar: a namespace of `A-Z a-z 0-9 _ - .`, optionally `:`
/// and a resource that may also hold `:`, `=` and `@`; at most 255 bytes
/// (all of them ASCII, so characters and bytes agree).
pub const TOPIC_PATTERN: &str = "^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.:=@-]+)?$";

/// `since` of the history call: `EPOCH:OFFSET`, the offset in decimal digits.
pub const SINCE_PATTERN: &str = "^[\\s\\S]+:[0-9]{1,19}$";

fn topic_schema() -> Value {
    json!({
        "type": "string", "minLength": 1, "maxLength": 255, "pattern": TOPIC_PATTERN,
        "description": "`namespace` or `namespace:resource`"
    })
}

fn topic_param() -> Value {
    json!({
        "name": "topic", "in": "path", "required": true,
        "description": "`namespace` or `namespace:resource`",
        "schema": topic_schema(),
        "example": "bookings:42"
    })
}

/// The description of every operator endpoint (PROTOCOL v1.1 "Operator keys").
pub const OPERATOR_ONLY: &str = "Only an API key configured with `operator = true` may call this; \
any other caller (a publish-scoped key, a user token) gets 403 `forbidden`.";

/// The 403 description of every operator endpoint.
pub const OPERATOR_403: &str = "The caller is not an operator key";

fn responses(ok_schema: &str, extra: &[(&str, &str)]) -> Value {
    let mut r = json!({
        "200": ok(ok_schema),
        "400": error_response("Malformed request"),
        "401": error_response("Missing or invalid credentials"),
        "403": error_response("Not allowed"),
        "429": error_response("Rate limited"),
        "503": error_response("Not accepted; retry (with the same idempotency key)")
    });
    for (status, description) in extra {
        r[*status] = error_response(description);
    }
    r
}

/// The document.
pub fn document() -> Value {
    let mut doc = document_v1();
    crate::webhooks::extend_openapi(&mut doc);
    doc
}

fn document_v1() -> Value {
    let position = json!({
        "type": "object", "required": ["epoch", "offset"],
        "properties": {"epoch": {"type": "string"}, "offset": {"type": "integer", "minimum": 0}}
    });
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Hubbub REST API",
            "version": "1",
            "description": "Publish to Hubbub topics and read their history and presence. Authenticate with `Authorization: Bearer <key>` (a configured API key, or a JWT whose `publish` claim scopes it)."
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Position": position,
                "Error": {
                    "type": "object", "required": ["error"],
                    "properties": {"error": {
                        "type": "object", "required": ["code", "message"],
                        "properties": {
                            "code": {"type": "string", "enum": [
                                "bad_request", "unauthorized", "forbidden", "invalid_topic",
                                "unknown_namespace", "not_subscribed", "already_subscribed",
                                "limit_exceeded", "too_large", "rate_limited", "unavailable", "internal",
                                "not_found"
                            ]},
                            "message": {"type": "string"}
                        }
                    }}
                },
                "PublishRequest": {
                    "type": "object", "required": ["topic", "event"], "additionalProperties": false,
                    "example": {"topic": "bookings:42", "event": "booking.created", "data": {"guest": "Ada", "nights": 3}, "idempotency_key": "booking-42-created"},
                    "properties": {
                        "topic": topic_schema(),
                        "event": {"type": "string", "minLength": 1, "maxLength": 255,
                            "description": "1 to 255 bytes of UTF-8. JSON Schema counts characters, so a name of at most 255 characters with non-ASCII ones can still be refused (400 bad_request)."},
                        "data": {"description": "Any JSON value"},
                        "idempotency_key": {"type": "string", "minLength": 1, "maxLength": 255, "nullable": true,
                            "description": "1 to 255 bytes of UTF-8 (see event). A key seen on the topic within the idempotency window returns the first publication's position and publishes nothing."}
                    }
                },
                "Published": {
                    "type": "object", "required": ["position"],
                    "properties": {"position": {"$ref": "#/components/schemas/Position"}}
                },
                "BatchRequest": {
                    "type": "object", "required": ["publications"], "additionalProperties": false,
                    "example": {"publications": [
                        {"topic": "bookings:42", "event": "booking.created", "data": {"guest": "Ada"}},
                        {"topic": "tables:7", "event": "table.updated", "data": {"free": false}}
                    ]},
                    "properties": {"publications": {
                        "type": "array", "maxItems": 1000,
                        "description": "At most 1000 (more is 413). Each item is validated on its own: an item that is not a valid PublishRequest (or is refused) is answered with an Error in its slot of `results`, and the others are still published.",
                        "items": {"description": "A PublishRequest (see that schema); anything else is answered with bad_request in its slot"}
                    }}
                },
                "BatchResponse": {
                    "type": "object", "required": ["results"],
                    "properties": {"results": {"type": "array", "items": {"oneOf": [
                        {"$ref": "#/components/schemas/Published"},
                        {"$ref": "#/components/schemas/Error"}
                    ]}}}
                },
                "Publication": {
                    "type": "object", "required": ["topic", "offset", "event", "data", "ts", "id"],
                    "properties": {
                        "topic": {"type": "string"},
                        "offset": {"type": "integer", "minimum": 1},
                        "event": {"type": "string"},
                        "data": {"description": "Any JSON value"},
                        "ts": {"type": "integer", "description": "ms since the Unix epoch"},
                        "id": {"type": "string"}
                    }
                },
                "History": {
                    "type": "object", "required": ["publications", "position"],
                    "properties": {
                        "publications": {"type": "array", "items": {"$ref": "#/components/schemas/Publication"}},
                        "position": {"$ref": "#/components/schemas/Position"}
                    }
                },
                "Member": {
                    "type": "object", "required": ["client_id", "user", "info"],
                    "properties": {
                        "client_id": {"type": "string"}, "user": {"type": "string"},
                        "info": {"description": "The token's info claim, or null"}
                    }
                },
                "Presence": {
                    "type": "object", "required": ["members"],
                    "properties": {"members": {"type": "array", "items": {"$ref": "#/components/schemas/Member"}}}
                },
                "DisconnectRequest": {
                    "type": "object", "required": ["user"], "additionalProperties": false,
                    "example": {"user": "alice", "reconnect": true},
                    "properties": {
                        "user": {"type": "string"},
                        "reconnect": {"type": "boolean", "nullable": true,
                            "description": "true (default): close with 4201 so clients reconnect now; false: close with 4003"}
                    }
                },
                "Disconnected": {
                    "type": "object", "required": ["disconnected"],
                    "properties": {"disconnected": {"type": "integer", "minimum": 0}}
                },
                "Info": {
                    "type": "object", "required": ["nodes"],
                    "properties": {"nodes": {"type": "array", "items": {
                        "type": "object",
                        "required": ["name", "connections", "subscriptions", "topics", "uptime_secs"],
                        "properties": {
                            "name": {"type": "string"},
                            "connections": {"type": "integer", "minimum": 0},
                            "subscriptions": {"type": "integer", "minimum": 0},
                            "topics": {"type": "integer", "minimum": 0},
                            "uptime_secs": {"type": "integer", "minimum": 0}
                        }
                    }}}
                },
                "Topics": {
                    "type": "object", "required": ["topics", "truncated"],
                    "properties": {
                        "topics": {"type": "array", "items": {
                            "type": "object", "required": ["topic", "subscribers", "position"],
                            "properties": {
                                "topic": {"type": "string"},
                                "subscribers": {"type": "integer", "minimum": 0},
                                "position": {"$ref": "#/components/schemas/Position"}
                            }
                        }},
                        "truncated": {"type": "boolean", "description": "More topics matched than `limit`"}
                    }
                },
                "SubscribeTokenRequest": {
                    "type": "object", "required": ["topics"], "additionalProperties": false,
                    "example": {"topics": ["bookings:42"], "ttl_secs": 300},
                    "properties": {
                        "topics": {"type": "array", "minItems": 1, "maxItems": 16, "items": topic_schema(),
                            "description": "Exact topics the token may subscribe to"},
                        "ttl_secs": {"type": "integer", "minimum": 1, "maximum": 3600, "nullable": true,
                            "description": "Lifetime in seconds (default 300)"}
                    }
                },
                "OutboxState": crate::outbox::schema(),
                "SubscribeToken": {
                    "type": "object", "required": ["token", "expires_in", "sub"],
                    "properties": {
                        "token": {"type": "string", "description": "JWT for `connect` on /ws or `token=` on /sse"},
                        "expires_in": {"type": "integer", "minimum": 1},
                        "sub": {"type": "string", "description": "`operator:<key name>`"}
                    }
                }
            }
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/publish": {"post": {
                "operationId": "publish", "summary": "Publish one publication",
                "requestBody": body("PublishRequest"),
                "responses": responses("Published", &[("404", "Unknown namespace"), ("413", "Payload too large")])
            }},
            "/api/v1/batch": {"post": {
                "operationId": "batch", "summary": "Publish several publications in order; each succeeds or fails alone",
                "requestBody": body("BatchRequest"),
                "responses": responses("BatchResponse", &[("413", "Too many publications or body too large")])
            }},
            "/api/v1/topics/{topic}/history": {"get": {
                "operationId": "history", "summary": "Read a topic's history, oldest first",
                "parameters": [
                    topic_param(),
                    {"name": "since", "in": "query", "required": false, "description": "EPOCH:OFFSET",
                     "schema": {"type": "string", "pattern": SINCE_PATTERN}, "example": "3f2a9c0d11e4b7a5:12"},
                    {"name": "limit", "in": "query", "required": false,
                     "schema": {"type": "integer", "minimum": 0, "maximum": 1000}, "example": 100}
                ],
                "responses": responses("History", &[("404", "Unknown namespace")])
            }},
            "/api/v1/topics/{topic}/presence": {"get": {
                "operationId": "presence", "summary": "List the members present on a topic",
                "parameters": [topic_param()],
                "responses": responses("Presence", &[("404", "Unknown namespace")])
            }},
            "/api/v1/disconnect": {"post": {
                "operationId": "disconnect", "summary": "Close every connection of a user on every node (operator keys only)",
                "description": OPERATOR_ONLY,
                "requestBody": body("DisconnectRequest"),
                "responses": responses("Disconnected", &[("403", OPERATOR_403)])
            }},
            "/api/v1/info": {"get": {
                "operationId": "info", "summary": "Live nodes with their connection and subscription counts (operator keys only)",
                "description": OPERATOR_ONLY,
                "responses": responses("Info", &[("403", OPERATOR_403)])
            }},
            "/api/v1/topics": {"get": {
                "operationId": "topics", "summary": "Topics with subscribers now, their subscriber counts and positions, in topic order (operator keys only)",
                "parameters": [
                    {"name": "prefix", "in": "query", "required": false, "description": "Only topics starting with this",
                     "schema": {"type": "string", "maxLength": 255}, "example": "bookings:"},
                    {"name": "limit", "in": "query", "required": false, "description": "At most this many (default 100)",
                     "schema": {"type": "integer", "minimum": 1, "maximum": 1000}, "example": 100}
                ],
                "description": OPERATOR_ONLY,
                "responses": responses("Topics", &[("403", OPERATOR_403)])
            }},
            "/api/v1/tokens/subscribe": {"post": {
                "operationId": "subscribeToken", "summary": "Mint a short-lived client token that may subscribe to the listed topics and publish nothing (operator keys only; the hub must sign with an HS secret)",
                "requestBody": body("SubscribeTokenRequest"),
                "description": OPERATOR_ONLY,
                "responses": responses("SubscribeToken", &[("403", OPERATOR_403), ("404", "Unknown namespace")])
            }},
            "/api/v1/outbox": {"get": {
                "operationId": "outbox", "summary": "This node's view of the PostgreSQL outbox consumer: configured or not, leader or standby, lag, published and dead counts, last error (operator keys only)",
                "description": OPERATOR_ONLY,
                "responses": responses("OutboxState", &[("403", OPERATOR_403)])
            }},
            "/api/openapi.json": {"get": {
                "operationId": "openapi", "summary": "This document", "security": [],
                "responses": {"200": {"description": "OpenAPI 3 document", "content": {"application/json": {"schema": {"type": "object"}}}}}
            }}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_with_resolvable_refs() {
        let doc = document();
        for (path, method) in [
            ("/api/v1/publish", "post"),
            ("/api/v1/batch", "post"),
            ("/api/v1/topics/{topic}/history", "get"),
            ("/api/v1/topics/{topic}/presence", "get"),
            ("/api/v1/disconnect", "post"),
            ("/api/v1/info", "get"),
            ("/api/v1/topics", "get"),
            ("/api/v1/tokens/subscribe", "post"),
            ("/api/v1/outbox", "get"),
            ("/api/openapi.json", "get"),
        ] {
            assert!(doc["paths"][path][method].is_object(), "{method} {path}");
        }
        let text = doc.to_string();
        for r in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &r[..r.find('"').unwrap()];
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "dangling $ref {name}"
            );
        }
    }
}
