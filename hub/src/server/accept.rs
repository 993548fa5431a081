//! The accept loop: HTTP/1 connections served by hyper with a timer, so that
//! `limits.header_read_timeout` applies (axum's `serve` runs hyper without
//! one, which leaves a half-sent request head open forever). The timeout
//! covers the first request head and the idle time before each next one on
//! a keep-alive connection; upgraded WebSockets and running responses (SSE)
//! are not affected.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tracing::debug;

/// Pause after a failed `accept` (e.g. out of file descriptors), so the
/// loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `app` on every connection `listener` accepts (with `TCP_NODELAY`
/// and the peer address as [`ConnectInfo`]) until `shutdown` completes; then
/// stops accepting, asks every connection to finish its request and close,
/// and returns once they have.
pub(super) async fn serve_http(
    listener: TcpListener,
    app: Router,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let conns = TaskTracker::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    debug!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Pushes are latency-sensitive and already batched by each writer:
        // without TCP_NODELAY, a flush that follows a not-yet-acknowledged
        // one waits for the peer's delayed ACK (up to 40 ms on Linux).
        if let Err(e) = tcp.set_nodelay(true) {
            debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let app = app.clone();
        let mut stop = stop_rx.clone();
        conns.spawn(async move {
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                let app = app.clone();
                async move { Ok::<_, Infallible>(app.oneshot(req).await.unwrap_or_else(|e| match e {})) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades();
            tokio::pin!(conn);
            let stopping = async {
                // Err: the loop is gone, which also means stop.
                let _ = stop.wait_for(|stop| *stop).await;
            };
            let finished = tokio::select! {
                served = conn.as_mut() => Some(served),
                () = stopping => None,
            };
            let served = match finished {
                Some(served) => served,
                None => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = served {
                debug!(%peer, error = %e, "HTTP connection ended");
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    conns.close();
    conns.wait().await;
}
