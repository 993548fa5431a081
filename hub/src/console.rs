//! The operations console and the landing page, served by every node: `GET /`
//! (the hub's name, version and links), `GET /console` and its two assets.
//! The console is static HTML, CSS and plain JavaScript in `hub/console/`,
//! embedded in the binary; it loads nothing from elsewhere (its
//! Content-Security-Policy forbids it) and talks only to this hub's public
//! REST API and `/sse`, authenticated with an operator key typed into it.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::hub::Hub;

const INDEX_HTML: &str = include_str!("../console/index.html");
const APP_JS: &str = include_str!("../console/app.js");
const CONSOLE_CSS: &str = include_str!("../console/console.css");

/// Only this origin, no inline script, no framing: the page holds an operator key.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self' data:; form-action 'self'; \
                   base-uri 'none'; frame-ancestors 'none'";

/// `/`, `/console`, `/console/app.js` and `/console/console.css`.
pub fn routes(hub: Arc<Hub>) -> Router {
    Router::new()
        .route("/", get(landing))
        .route(
            "/console",
            get(|| async { page("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/console/",
            get(|| async { page("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/console/app.js",
            get(|| async { page("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/console/console.css",
            get(|| async { page("text/css; charset=utf-8", CONSOLE_CSS) }),
        )
        .with_state(hub)
}

fn page(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

async fn landing(State(hub): State<Arc<Hub>>) -> Response {
    let html = landing_html(&hub.node, env!("CARGO_PKG_VERSION"), hub.config.dev_mode);
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        html,
    )
        .into_response()
}

/// The landing page: what this is and where to go next.
fn landing_html(node: &str, version: &str, dev_mode: bool) -> String {
    let dev = if dev_mode {
        "<p class=\"dev\">Dev mode: tokens are signed with the public dev secret. \
         Never expose this node.</p>"
    } else {
        ""
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Hubbub · {node}</title><link rel="stylesheet" href="/console/console.css"></head>
<body><header class="bar"><a class="brand" href="/">hubbub</a><span class="muted">node {node} · version {version}</span></header>
<main><section class="card login">
<h1>Hubbub is running</h1>
<p class="muted">A realtime hub: clients subscribe over <code>/ws</code> or <code>/sse</code>; backends publish through the REST API.</p>
{dev}
<ul class="members">
<li><a href="/console">Operations console</a><span class="muted small">nodes, topics, live tail, publish (operator key)</span></li>
<li><a href="/api/openapi.json">/api/openapi.json</a><span class="muted small">the REST API's OpenAPI document</span></li>
<li><a href="/healthz">/healthz</a><span class="muted small">process alive</span></li>
<li><a href="/readyz">/readyz</a><span class="muted small">broker reachable</span></li>
<li><a href="/metrics">/metrics</a><span class="muted small">Prometheus text</span></li>
</ul></section></main></body></html>
"#,
        node = escape(node),
        version = escape(version),
    )
}

/// Escapes text for HTML (the node name comes from the configuration).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn landing_page_escapes_the_node_name_and_links_everything() {
        let html = landing_html("<b>n&1</b>", "0.1.0", false);
        assert!(html.contains("&lt;b&gt;n&amp;1&lt;/b&gt;"));
        assert!(!html.contains("<b>n"));
        for link in [
            "/console",
            "/api/openapi.json",
            "/healthz",
            "/readyz",
            "/metrics",
        ] {
            assert!(html.contains(&format!("href=\"{link}\"")), "{link}");
        }
        assert!(!html.contains("Dev mode"));
        assert!(landing_html("n", "0.1.0", true).contains("Dev mode"));
    }

    #[test]
    fn the_console_loads_nothing_from_elsewhere() {
        for asset in [INDEX_HTML, APP_JS, CONSOLE_CSS] {
            assert!(!asset.contains("http://"), "absolute http URL in an asset");
            assert!(
                !asset.contains("https://"),
                "absolute https URL in an asset"
            );
        }
        assert!(INDEX_HTML.contains("/console/app.js"));
        assert!(INDEX_HTML.contains("/console/console.css"));
    }
}
