//! The HTTP side of a node: the router (`/ws`, the REST API, health, readiness
//! and metrics), the WebSocket upgrade with deliberate buffer sizes, and
//! graceful shutdown with a drain budget. The accept loop, with its header
//! read timeout, is in `server/accept.rs`.

mod accept;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;
use tokio::net::TcpListener;
use tower_http::classify::ServerErrorsFailureClass;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::{Instrument, info, warn};

use crate::api_backend::HubBackend;
use crate::broker::Broker;
use crate::broker::memory::{MemoryBroker, MemoryCaps};
use crate::broker::redis::{RedisBroker, RedisOptions};
use crate::config::Config;
use crate::connection::run_connection;
use crate::connection::session::ReadError;
use crate::hub::Hub;
use crate::metrics::{Metrics, Rejection};
use crate::protocol::CloseCode;
use crate::protocol::Codec;
use crate::protocol::codec::{JSON_PROTOCOL, MSGPACK_PROTOCOL};
use crate::registry::Registry;

/// Bytes tungstenite reads at a time. It allocates (and zero-fills) this up
/// front for every connection, so it is small: client commands are a few
/// hundred bytes, and a larger frame reserves its whole length once its
/// header is read. At 4 KiB it was about 30% of an idle connection's heap.
pub const READ_BUFFER_BYTES: usize = 512;
/// Bytes tungstenite gathers before writing to the socket (a flush always
/// writes). Grows only while frames are queued; idle connections hold none.
pub const WRITE_BUFFER_BYTES: usize = 8 * 1024;
/// tungstenite's cap on its write buffer: none. A reply (a `history` or a
/// recovery) may be larger than any fixed cap, and one that does not fit
/// would kill the socket without a `disconnect`. The buffer stays bounded
/// anyway: the writer waits for each frame to be accepted (`feed` flushes
/// what is above [`WRITE_BUFFER_BYTES`] first), so it holds at most
/// [`WRITE_BUFFER_BYTES`] plus one frame, and the frames themselves come
/// from the byte-bounded outbox.
pub const MAX_WRITE_BUFFER_BYTES: usize = usize::MAX;

/// Why a node could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The token verifier could not be built from the configuration.
    #[error("auth: {0}")]
    Auth(#[from] crate::auth::AuthError),
    /// The Redis engine could not be set up from `redis_url`.
    #[error("redis: {0}")]
    Redis(#[from] crate::broker::BrokerError),
    /// The standalone REST API runs only against Redis.
    #[error("hubbub-api needs redis_url: without Redis there is no hub to publish to")]
    ApiNeedsRedis,
    /// The webhook sinks could not be started.
    #[error("webhooks: {0}")]
    Webhooks(#[from] crate::sinks::StartError),
    /// Accepting connections failed.
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
}

/// Builds a node's services from its configuration.
pub fn build_hub(config: Config) -> Result<Arc<Hub>, ServeError> {
    build(config, true)
}

/// `heartbeat`: whether the process is listed as a node (hub nodes are; the
/// standalone REST API is not).
fn build(config: Config, heartbeat: bool) -> Result<Arc<Hub>, ServeError> {
    let metrics = Arc::new(Metrics::default());
    let registry = Arc::new(Registry::new(metrics.clone()));
    let node: Arc<str> = config
        .node_name
        .clone()
        .unwrap_or_else(|| format!("node-{:06x}", rand::random::<u32>() & 0xff_ffff))
        .into();
    let mut memory = None;
    let mut redis = None;
    let broker: Arc<dyn Broker> = match &config.redis_url {
        None => memory
            .insert(MemoryBroker::start(
                registry.clone(),
                MemoryCaps::from(&config.memory),
            ))
            .clone(),
        Some(url) => redis
            .insert(RedisBroker::start(
                registry.clone(),
                RedisOptions {
                    url: url.expose().to_owned(),
                    key_prefix: config.redis.key_prefix.clone(),
                    presence_ttl: config.redis.presence_ttl,
                    probe_interval: config.redis.probe_interval,
                    node: node.clone(),
                    heartbeat,
                },
            )?)
            .clone(),
    };
    let hub = Arc::new(Hub::new(Arc::new(config), node, broker, registry, metrics)?);
    crate::sinks::start(&hub, memory.as_deref(), redis.as_deref())?;
    Ok(hub)
}

/// The node's router: the WebSocket and SSE endpoints and the API routes.
pub fn router(hub: Arc<Hub>) -> Router {
    let cors = cors(&hub.config.allowed_origins);
    let realtime = Router::new()
        .route("/ws", get(websocket))
        .route("/sse", get(crate::sse::handler).layer(cors))
        .with_state(hub.clone());
    traced(realtime.merge(api_routes(hub)))
}

/// The REST API with health, readiness and metrics (all of the standalone API).
pub fn api_router(hub: Arc<Hub>) -> Router {
    traced(api_routes(hub))
}

fn api_routes(hub: Arc<Hub>) -> Router {
    let body_limit = hub.config.limits.max_request_bytes;
    let cors = cors(&hub.config.allowed_origins);
    let api = hubbub_api::router(Arc::new(HubBackend(hub.clone())), body_limit).layer(cors);
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(hub.clone())
        .merge(api)
        .merge(crate::console::routes(hub))
}

/// Every request gets an `x-request-id` (kept when the caller sent one,
/// echoed in the answer) and a span carrying it, so each log line about a
/// request or a connection names it.
///
/// The layers wrap the whole router once, as the fallback of an otherwise
/// empty one: `Router::layer` would wrap every route in its own boxed
/// service per layer, and each request would clone and allocate those boxes
/// (callgrind counted 22 boxed-service clones per REST publish).
fn traced(router: Router) -> Router {
    let layered = tower::ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span as fn(&_) -> _)
                .on_failure(log_failure as fn(_, _, &_)),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .service(router);
    Router::new().fallback_service(layered)
}

/// A 503 is expected (draining, Redis down, JWKS not fetched yet; each is
/// logged where it is decided) and logged at DEBUG; any other failure at ERROR.
fn log_failure(class: ServerErrorsFailureClass, latency: Duration, _span: &tracing::Span) {
    let latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
    match class {
        ServerErrorsFailureClass::StatusCode(StatusCode::SERVICE_UNAVAILABLE) => {
            tracing::debug!(latency_ms, "answered 503");
        }
        other => tracing::error!(classification = %other, latency_ms, "response failed"),
    }
}

const REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");

/// The tracing span of a request, carrying its `x-request-id`.
fn request_span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::debug_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
}

/// CORS for the REST API and `/sse`: the `allowed_origins` (every origin
/// when the list is empty; bearer tokens, not cookies, carry credentials).
fn cors(allowed: &[String]) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("last-event-id"),
        ])
        .max_age(Duration::from_secs(600));
    if allowed.is_empty() {
        layer.allow_origin(Any)
    } else {
        let origins: Vec<HeaderValue> = allowed
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        layer.allow_origin(AllowOrigin::list(origins))
    }
}

/// Serves the REST API alone (the `hubbub-api` binary) against Redis, until
/// `shutdown` completes. Publications go through the Redis engine to every
/// hub node that serves their topics.
pub async fn serve_api(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    if config.redis_url.is_none() {
        return Err(ServeError::ApiNeedsRedis);
    }
    let hub = build(config, false)?;
    let header_read_timeout = hub.config.limits.header_read_timeout;
    accept::serve_http(listener, api_router(hub), header_read_timeout, shutdown).await;
    Ok(())
}

/// Serves `listener` until `shutdown` completes, then drains: refuses new
/// connections, tells every client `disconnect` 4200 and waits for them to
/// go, at most the configured drain time.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let hub = build_hub(config)?;
    serve_hub(listener, hub, shutdown).await
}

/// [`serve`] for an already built hub.
pub async fn serve_hub(
    listener: TcpListener,
    hub: Arc<Hub>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    if let Some(jwks) = hub.verifier.remote_jwks() {
        tokio::spawn(jwks.run());
    }
    // Stops by itself when draining starts; awaited below.
    let outbox = crate::outbox::spawn(&hub);
    let drain_for = hub.config.drain_timeout;
    let header_read_timeout = hub.config.limits.header_read_timeout;
    let draining = hub.clone();
    let server = accept::serve_http(
        listener,
        router(hub.clone()),
        header_read_timeout,
        async move {
            shutdown.await;
            info!("shutting down: draining connections");
            draining.drain();
        },
    );
    let server = tokio::spawn(server);
    hub.draining().await;
    let deadline = tokio::time::Instant::now() + drain_for;
    let drained = async {
        while hub.registry.connection_count() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Presence leaves and unwatches of connections that were dropped.
        hub.tasks.close();
        hub.tasks.wait().await;
    };
    if tokio::time::timeout_at(deadline, drained).await.is_err() {
        warn!(
            left = hub.registry.connection_count(),
            "drain time over; closing the rest"
        );
    }
    match tokio::time::timeout_at(deadline, server).await {
        Ok(Ok(())) => {}
        Ok(Err(join)) => warn!(error = %join, "server task failed"),
        Err(_) => warn!("HTTP connections still open after the drain time"),
    }
    if let Some(consumer) = outbox
        && tokio::time::timeout_at(deadline + Duration::from_secs(1), consumer)
            .await
            .is_err()
    {
        warn!("the outbox consumer did not stop in time");
    }
    Ok(())
}

async fn websocket(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if hub.is_draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response();
    }
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    if !hub.origin_allowed(origin) {
        hub.metrics.rejected(Rejection::Origin);
        return (StatusCode::FORBIDDEN, "origin not allowed\n").into_response();
    }
    // Over the per-IP rate the socket is opened and closed with 4102 at once,
    // so that browsers (which cannot read an HTTP status) back off.
    let client = crate::limits::client_ip(peer.ip(), &headers, &hub.config.trusted_proxies);
    let refuse = if hub.ip_limiter.allow(&client) {
        None
    } else {
        hub.metrics.rejected(Rejection::RateLimited);
        Some(CloseCode::RateLimited)
    };
    let max = hub.config.limits.max_frame_bytes;
    ws.protocols([JSON_PROTOCOL, MSGPACK_PROTOCOL])
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES)
        // Frames up to twice the limit are read whole and refused with 4009 by
        // the session (a clean close); beyond that tungstenite stops reading.
        .max_message_size(2 * max)
        .max_frame_size(2 * max)
        .on_upgrade(move |socket| {
            let codec = Codec::from_protocol(socket.protocol().and_then(|p| p.to_str().ok()));
            let (sink, stream) = socket.split();
            let stream = stream.map(|r| r.map_err(classify));
            // A debug span: at the default level it costs nothing, where an
            // enabled span keeps ~270 bytes per connection in the subscriber.
            let span = tracing::debug_span!("conn", %peer, id = tracing::field::Empty, user = tracing::field::Empty);
            run_connection(hub, sink, stream, codec, refuse).instrument(span)
        })
}

/// Tells a frame-size violation apart from other transport failures.
fn classify(err: axum::Error) -> ReadError {
    use tokio_tungstenite::tungstenite::Error as WsError;
    let inner = err.into_inner();
    match inner.downcast_ref::<WsError>() {
        Some(WsError::Capacity(_)) => ReadError::TooBig,
        _ => ReadError::Transport,
    }
}

async fn readyz(State(hub): State<Arc<Hub>>) -> Response {
    if hub.is_draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response();
    }
    if hub.verifier.remote_jwks().is_some_and(|j| !j.loaded()) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: JWKS not fetched yet\n",
        )
            .into_response();
    }
    match hub.control().check().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => {
            // The cause goes to the log, not to whoever asks.
            warn!(error = %e, "not ready: the broker check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: broker unavailable\n",
            )
                .into_response()
        }
    }
}

async fn metrics(State(hub): State<Arc<Hub>>) -> Response {
    let mut text = hub.metrics.render(hub.gauges());
    if let Some(sinks) = hub.sinks.get() {
        sinks.render_metrics(&mut text).await;
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
