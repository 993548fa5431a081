//! One PostgreSQL session of the consumer: connected with TLS when the URL
//! says `sslmode=require` (server certificate verified against the Mozilla
//! roots), with its connection driven by a task that turns `NOTIFY`s into a
//! wake-up and ends with the session.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_postgres::config::SslMode;
use tokio_postgres::{AsyncMessage, Client, Connection, Socket};
use tracing::debug;

use super::OutboxError;
use crate::config::PostgresUrl;

/// Time allowed to open the connection when the URL sets no `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// TCP keepalive idle time, so a silently dead server is noticed.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);

/// A connected session.
#[derive(Debug)]
pub(crate) struct Session {
    /// The client; every query goes through it.
    pub(crate) client: Client,
    /// Notified on every `NOTIFY` the session receives (a permit is kept
    /// while nobody waits, so none is lost) and when the connection ends.
    pub(crate) wake: Arc<Notify>,
    driver: JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        // Ends the connection (and so releases the session's advisory lock).
        self.driver.abort();
    }
}

impl Session {
    /// Opens a session to `url` as application `name`.
    pub(crate) async fn connect(url: &PostgresUrl, name: &str) -> Result<Session, OutboxError> {
        let mut config = url.parse()?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name(name);
        }
        config.keepalives(true).keepalives_idle(KEEPALIVE_IDLE);
        let wake = Arc::new(Notify::new());
        if config.get_ssl_mode() == SslMode::Require {
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config()?);
            let (client, connection) = config.connect(tls).await?;
            Ok(Self::drive(client, connection, wake))
        } else {
            // `prefer` (the default) and `disable`: no TLS, as documented.
            config.ssl_mode(SslMode::Disable);
            let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
            Ok(Self::drive(client, connection, wake))
        }
    }

    fn drive<T>(client: Client, mut connection: Connection<Socket, T>, wake: Arc<Notify>) -> Self
    where
        T: tokio_postgres::tls::TlsStream + Unpin + Send + 'static,
    {
        let notify = wake.clone();
        let driver = tokio::spawn(async move {
            loop {
                let message = std::future::poll_fn(|cx| connection.poll_message(cx)).await;
                match message {
                    Some(Ok(AsyncMessage::Notification(_))) => notify.notify_one(),
                    Some(Ok(AsyncMessage::Notice(n))) => {
                        debug!(notice = %n.message(), "outbox: PostgreSQL notice");
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        debug!(error = %e, "outbox: PostgreSQL connection ended");
                        break;
                    }
                    None => break,
                }
            }
            // Wakes a waiting consumer, whose next query then fails and reconnects.
            notify.notify_one();
        });
        Session {
            client,
            wake,
            driver,
        }
    }
}

/// rustls with the ring provider and the Mozilla root certificates.
fn tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    #[test]
    fn tls_config_builds() {
        assert!(super::tls_config().is_ok());
    }
}
