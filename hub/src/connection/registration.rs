//! [`Registration`]: the RAII guard of one connection on this node. It owns
//! the connection's registry entry, its subscriptions and its presence
//! memberships, and gives all of them back when it is dropped, however the
//! transport ends: an orderly close, a lost socket, or a panic that unwinds
//! the transport's task.
//!
//! # Use from a transport (WebSocket session, SSE stream, …)
//! ```text
//! let (reg, rx) = Registration::open(hub, identity)?;   // refuses over the connection limits
//! // spawn a consumer of `rx` (the WebSocket writer, or the SSE event stream)
//! reg.subscribe(&topic, ns, start, codec, id).await;    // registers, routes, recovers, joins presence
//! reg.unsubscribe(&topic).await;                        // the reverse, for one topic
//! reg.release().await;                                  // orderly end (optional)
//! ```
//! Dropping a `Registration` without [`Registration::release`] unregisters at
//! once (synchronously) and spawns the broker calls (unwatch, presence
//! leave) onto the hub's [`TaskTracker`](tokio_util::task::TaskTracker), so a
//! drain waits for them; the connection is marked gone, which ends its writer.

use std::collections::HashMap;
use std::sync::Arc;

use tracing::debug;

use super::handle::{ConnHandle, ConnId};
use super::outbox;
use crate::auth::Identity;
use crate::config::NamespaceConfig;
use crate::engine::{self, Opened, Start, presence};
use crate::hub::{Hub, HubError};
use crate::metrics::Rejection;
use crate::protocol::Codec;
use crate::protocol::frames::Member;
use crate::topic::Topic;

/// One connection's life on this node: registry entry, subscriptions and
/// presence, released on drop (see the module doc).
pub struct Registration {
    hub: Arc<Hub>,
    conn: Arc<ConnHandle>,
    identity: Identity,
    /// Subscribed topics, each with whether presence was joined for it.
    topics: HashMap<Topic, bool>,
    released: bool,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("conn", &self.conn.id)
            .field("topics", &self.topics.len())
            .finish_non_exhaustive()
    }
}

impl Registration {
    /// Creates the connection (its bounded outbox, with the `[limits]`
    /// budgets) and registers it, unless that would pass `max_connections`
    /// or `max_connections_per_user` ([`HubError::ConnectionLimit`], counted).
    /// Returns the guard and the outbox's receiving end for the transport's
    /// writer.
    pub fn open(
        hub: Arc<Hub>,
        identity: Identity,
    ) -> Result<(Registration, outbox::Receiver), HubError> {
        let limits = &hub.config.limits;
        let (tx, rx) = outbox::bounded(limits.outbox_size, limits.outbox_bytes);
        let client_id: Arc<str> = crate::broker::random_uuid().to_string().into();
        let conn = Arc::new(
            ConnHandle::new(ConnId::next(), client_id, identity.user.clone(), tx)
                .with_send_timeout(limits.write_timeout()),
        );
        if !hub.registry.try_register(
            conn.clone(),
            limits.max_connections,
            limits.max_connections_per_user,
        ) {
            hub.metrics.rejected(Rejection::ConnectionLimit);
            return Err(HubError::ConnectionLimit);
        }
        let reg = Registration {
            hub,
            conn,
            identity,
            topics: HashMap::new(),
            released: false,
        };
        Ok((reg, rx))
    }

    /// The connection.
    pub fn conn(&self) -> &Arc<ConnHandle> {
        &self.conn
    }

    /// The hub.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// The verified token the connection holds now.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Replaces the token (after a `refresh`); the caller checked it is the same user.
    pub fn set_identity(&mut self, identity: Identity) {
        self.identity = identity;
    }

    /// Whether the connection subscribes to `topic`.
    pub fn is_subscribed(&self, topic: &Topic) -> bool {
        self.topics.contains_key(topic)
    }

    /// How many topics the connection subscribes to.
    pub fn subscription_count(&self) -> usize {
        self.topics.len()
    }

    /// The subscribed topics.
    pub fn topics(&self) -> impl Iterator<Item = &Topic> {
        self.topics.keys()
    }

    /// Subscribes (the caller checked permissions and limits): see
    /// [`engine::open`] for the order; the reply (`subscribed`, or an
    /// `error` with `id`) is queued by it. Joins presence when the namespace
    /// has it. The topic is recorded before anything is awaited, so a
    /// subscription cut short (by a panic) is still released.
    pub async fn subscribe(
        &mut self,
        topic: &Topic,
        ns: &NamespaceConfig,
        start: Start<'_>,
        codec: Codec,
        id: u32,
    ) -> Opened {
        self.topics.insert(topic.clone(), false);
        let opened = engine::open(&self.hub, &self.conn, topic, ns, start, codec, id).await;
        if opened != Opened::Subscribed {
            // `open` undid the registration (or the connection is closing,
            // and the guard's release undoes it).
            if opened == Opened::Failed {
                self.topics.remove(topic);
            }
            return opened;
        }
        if ns.presence {
            self.topics.insert(topic.clone(), true);
            presence::join(&self.hub, topic, self.member()).await;
        }
        opened
    }

    /// Unsubscribes from `topic` and leaves its presence; false when it was
    /// not subscribed. Queues nothing: the caller replies.
    pub async fn unsubscribe(&mut self, topic: &Topic) -> bool {
        let Some(joined) = self.topics.remove(topic) else {
            return false;
        };
        let member = joined.then(|| self.member());
        close(&self.hub, &self.conn, topic, member).await;
        true
    }

    /// Ends the connection in order: marks it gone, unregisters it, and
    /// unsubscribes every topic (awaiting the broker). Dropping the guard
    /// does the same without waiting.
    pub async fn release(mut self) {
        self.released = true;
        self.conn.gone();
        self.hub.registry.unregister(&self.conn);
        let topics = std::mem::take(&mut self.topics);
        for (topic, joined) in topics {
            let member = joined.then(|| self.member());
            close(&self.hub, &self.conn, &topic, member).await;
        }
        debug!(conn = %self.conn.id, "released");
    }

    /// This connection as a presence member (built when needed, not kept:
    /// most connections never use presence).
    pub fn member(&self) -> Member {
        Member {
            client_id: self.conn.client_id.to_string(),
            user: self.identity.user.to_string(),
            info: self
                .identity
                .info
                .as_deref()
                .cloned()
                .unwrap_or(serde_json::Value::Null),
        }
    }
}

/// Closes one subscription through the engine: unregister (and unroute
/// after the last local subscriber), then leave presence when `member` joined.
async fn close(hub: &Hub, conn: &ConnHandle, topic: &Topic, member: Option<Member>) {
    engine::close(hub, conn, topic).await;
    if let Some(member) = member {
        presence::leave(hub, topic, member).await;
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        // Synchronous first: the connection no longer counts against any
        // limit, and its writer ends, whatever happens to the rest.
        self.conn.gone();
        self.hub.registry.unregister(&self.conn);
        let topics = std::mem::take(&mut self.topics);
        if topics.is_empty() {
            return;
        }
        let leaves: Vec<(Topic, Option<Member>)> = topics
            .into_iter()
            .map(|(topic, joined)| (topic, joined.then(|| self.member())))
            .collect();
        let (hub, conn) = (self.hub.clone(), self.conn.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                let tasks = hub.tasks.clone();
                tasks.spawn_on(
                    async move {
                        for (topic, member) in leaves {
                            close(&hub, &conn, &topic, member).await;
                        }
                        debug!(conn = %conn.id, "released after drop");
                    },
                    &rt,
                );
            }
            // No runtime (the process is ending): at least leave the registry.
            Err(_) => {
                for (topic, _) in leaves {
                    hub.registry.unsubscribe(&topic, conn.id);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Permissions;

    fn hub() -> Arc<Hub> {
        let config = crate::config::Config::from_toml_str(
            "[auth]\njwt_secret = \"unit-test-secret-0123456789\"\n\
             [namespaces.room]\npresence = true\njoin_leave = true\n",
            &[],
        )
        .unwrap();
        crate::server::build_hub(config).unwrap()
    }

    fn identity(user: &str) -> Identity {
        Identity {
            user: user.into(),
            expires_at: u64::MAX,
            info: None,
            permissions: Permissions::default(),
        }
    }

    #[tokio::test]
    async fn a_panic_holding_a_registration_gives_everything_back() {
        let hub = hub();
        let topic: Topic = "room:1".parse().unwrap();
        let ns = hub.config.namespace("room").unwrap().clone();
        let h = hub.clone();
        let t = topic.clone();
        let task = tokio::spawn(async move {
            let (mut reg, mut rx) = Registration::open(h.clone(), identity("u")).unwrap();
            // Drain the outbox as a writer would.
            tokio::spawn(async move { while rx.recv().await.is_some() {} });
            assert_eq!(
                reg.subscribe(&t, &ns, Start::Now, Codec::Json, 1).await,
                Opened::Subscribed
            );
            assert_eq!(h.registry.connection_count(), 1);
            assert_eq!(h.presence_store().presence(&t).await.unwrap().len(), 1);
            panic!("a bug in a session");
        });
        assert!(task.await.unwrap_err().is_panic());
        assert_eq!(hub.registry.connection_count(), 0, "unregistered at once");
        hub.tasks.close();
        hub.tasks.wait().await;
        assert_eq!(hub.registry.subscription_count(), 0);
        assert!(
            hub.presence_store()
                .presence(&topic)
                .await
                .unwrap()
                .is_empty(),
            "left presence"
        );
    }

    #[tokio::test]
    async fn the_per_user_limit_is_enforced_and_freed() {
        let config = crate::config::Config::from_toml_str(
            "[auth]\njwt_secret = \"unit-test-secret-0123456789\"\n\
             [limits]\nmax_connections_per_user = 1\n",
            &[],
        )
        .unwrap();
        let hub = crate::server::build_hub(config).unwrap();
        let (first, _rx) = Registration::open(hub.clone(), identity("u")).unwrap();
        assert!(matches!(
            Registration::open(hub.clone(), identity("u")),
            Err(HubError::ConnectionLimit)
        ));
        drop(first);
        assert!(Registration::open(hub.clone(), identity("u")).is_ok());
    }
}
