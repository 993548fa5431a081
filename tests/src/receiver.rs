//! [`Receiver`]: a real HTTP webhook receiver (axum on port 0) that records
//! every request and answers as the test tells it: 2xx, any status, 429 with
//! `Retry-After`, a 3xx, hang past the sender's timeout, or close the
//! connection without an answer.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;
use tokio::sync::Notify;

/// How the receiver answers one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// This status (2xx is success for the hub).
    Status(u16),
    /// 429 with `Retry-After: secs`.
    RetryAfter(u64),
    /// 302 to another URL.
    Redirect,
    /// No answer for a minute.
    Hang,
    /// Close the connection without an answer.
    Close,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Request {
    /// `webhook-id`.
    pub id: String,
    /// `webhook-timestamp`.
    pub timestamp: String,
    /// `webhook-signature`.
    pub signature: String,
    /// `content-type`.
    pub content_type: String,
    /// The raw body.
    pub body: Bytes,
    /// How it was answered.
    pub answer: Answer,
    /// When it arrived.
    pub at: Instant,
}

impl Request {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// Whether it was answered with a 2xx.
    pub fn succeeded(&self) -> bool {
        matches!(self.answer, Answer::Status(s) if (200..300).contains(&s))
    }
}

type Policy = Box<dyn FnMut(&Request, usize) -> Answer + Send>;

struct Inner {
    /// Decides the answer from the request and how many earlier requests had its id.
    policy: Mutex<Policy>,
    got: Mutex<Vec<Request>>,
    arrived: Notify,
}

/// A running receiver; stops when dropped.
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let mut req = Request {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        content_type: header("content-type"),
        body,
        answer: Answer::Status(200),
        at: Instant::now(),
    };
    let answer = {
        let mut got = inner.got.lock().unwrap_or_else(|e| e.into_inner());
        let earlier = got.iter().filter(|r| r.id == req.id).count();
        let answer = (inner.policy.lock().unwrap_or_else(|e| e.into_inner()))(&req, earlier);
        req.answer = answer;
        got.push(req);
        answer
    };
    inner.arrived.notify_waiters();
    match answer {
        Answer::Status(s) => StatusCode::from_u16(s)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            .into_response(),
        Answer::RetryAfter(secs) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", secs.to_string())],
        )
            .into_response(),
        Answer::Redirect => (
            StatusCode::FOUND,
            [("location", "http://127.0.0.1:1/elsewhere")],
        )
            .into_response(),
        Answer::Hang => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            StatusCode::OK.into_response()
        }
        // Unwinding out of the connection's task closes its socket; resume_unwind
        // skips the panic hook, so nothing is printed.
        Answer::Close => std::panic::resume_unwind(Box::new("close the connection")),
    }
}

impl Receiver {
    /// Starts a receiver answering 200 to everything.
    pub async fn start() -> anyhow::Result<Receiver> {
        Receiver::with(|_, _| Answer::Status(200)).await
    }

    /// Starts a receiver answering by `policy(request, earlier attempts with its webhook-id)`.
    pub async fn with(
        policy: impl FnMut(&Request, usize) -> Answer + Send + 'static,
    ) -> anyhow::Result<Receiver> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            policy: Mutex::new(Box::new(policy)),
            got: Mutex::new(Vec::new()),
            arrived: Notify::new(),
        });
        let app = Router::new()
            .route("/hook", post(handle))
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Receiver { addr, inner, task })
    }

    /// The URL deliveries go to.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Changes how later requests are answered.
    pub fn set_policy(&self, policy: impl FnMut(&Request, usize) -> Answer + Send + 'static) {
        *self.inner.policy.lock().unwrap_or_else(|e| e.into_inner()) = Box::new(policy);
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.inner
            .got
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The requests answered 2xx, in arrival order.
    pub fn delivered(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(Request::succeeded)
            .collect()
    }

    /// Waits until `done(requests)` holds, failing after `within`.
    pub async fn wait_until(
        &self,
        within: Duration,
        what: &str,
        mut done: impl FnMut(&[Request]) -> bool,
    ) -> Vec<Request> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.inner.arrived.notified();
            let got = self.requests();
            if done(&got) {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; got {} requests",
                got.len()
            );
            let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
        }
    }
}

/// Verifies a Standard Webhooks signature header against `whsec_` secret,
/// with HMAC-SHA256 written out here (independent of the hub's `hmac` crate).
pub fn verify(secret: &str, id: &str, timestamp: &str, body: &[u8], header: &str) -> bool {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::STANDARD;
    let Some(key) = secret
        .strip_prefix("whsec_")
        .and_then(|b| engine.decode(b).ok())
    else {
        return false;
    };
    let mut message = Vec::new();
    message.extend_from_slice(id.as_bytes());
    message.push(b'.');
    message.extend_from_slice(timestamp.as_bytes());
    message.push(b'.');
    message.extend_from_slice(body);
    let expected = engine.encode(hmac_sha256(&key, &message));
    header
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|sig| sig == expected)
}

/// HMAC-SHA256 per RFC 2104.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner);
    outer.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_specification_test_vector_verifies() {
        assert!(verify(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            br#"{"test": 2432232314}"#,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        ));
        assert!(!verify(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265331",
            br#"{"test": 2432232314}"#,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        ));
    }
}
