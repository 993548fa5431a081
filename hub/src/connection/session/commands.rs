//! The commands of a connected session: subscribe (with recovery),
//! unsubscribe, publish, refresh, presence, history and ping.

use std::time::Duration;

use tokio::time::Instant;

use crate::broker::Position;
use crate::config::NamespaceConfig;
use crate::connection::subscription::{self, Opened, Start};
use crate::fanout::Outgoing;
use crate::hub::{HubError, PublishInput};
use crate::protocol::frames::{ClientFrame, Member, PositionWire, PublicationWire, ServerFrame};
use crate::topic::Topic;

use super::Session;

impl Session {
    fn can_subscribe(&self, topic: &Topic, ns: &NamespaceConfig) -> Result<(), HubError> {
        if ns.public || self.identity.permissions.can_subscribe(topic) {
            Ok(())
        } else {
            Err(HubError::NotPermitted {
                action: "subscribe",
                topic: topic.clone(),
            })
        }
    }

    /// Runs one command (anything but `connect`), replying to it.
    pub(super) async fn command(&mut self, frame: ClientFrame) -> Result<(), HubError> {
        match frame {
            ClientFrame::Connect { .. } => Err(HubError::AlreadyConnected),
            ClientFrame::Ping { id } => {
                self.reply(&ServerFrame::Pong { id }).await;
                Ok(())
            }
            ClientFrame::Subscribe {
                id,
                topic,
                since,
                latest,
            } => self.subscribe(id, &topic, since.as_ref(), latest).await,
            ClientFrame::Unsubscribe { id, topic } => {
                let (topic, _) = self.hub.resolve(&topic)?;
                if !self.subs.remove(&topic) {
                    return Err(HubError::NotSubscribed(topic));
                }
                self.leave_topic(&topic).await;
                let frame = self.codec.encode(&ServerFrame::Unsubscribed {
                    id,
                    topic: topic.as_str(),
                });
                self.conn
                    .send(Outgoing::End {
                        topic,
                        frame: Box::new(frame),
                    })
                    .await;
                Ok(())
            }
            ClientFrame::Publish {
                id,
                topic,
                event,
                data,
                idempotency_key,
            } => {
                let (topic, ns) = self.hub.resolve(&topic)?;
                if !ns.client_publish {
                    return Err(HubError::ClientPublishDisabled(
                        topic.namespace().to_owned(),
                    ));
                }
                if !self.identity.permissions.can_publish(&topic) {
                    return Err(HubError::NotPermitted {
                        action: "publish",
                        topic,
                    });
                }
                let input = PublishInput {
                    topic: topic.to_string(),
                    event,
                    data,
                    idempotency_key,
                };
                let position = self.hub.publish(topic, ns, input).await?.to_wire();
                self.reply(&ServerFrame::Published {
                    id,
                    position: &position,
                })
                .await;
                Ok(())
            }
            ClientFrame::Refresh { id, token } => {
                let identity = self.hub.verifier.verify(&token)?;
                if identity.user != self.identity.user {
                    return Err(HubError::UserMismatch);
                }
                let expires_in = identity.expires_in();
                self.token_deadline = Instant::now() + Duration::from_secs(expires_in);
                self.identity = identity;
                self.reply(&ServerFrame::Refreshed {
                    id,
                    expires_in: Some(expires_in),
                })
                .await;
                Ok(())
            }
            ClientFrame::Presence { id, topic } => {
                let (topic, ns) = self.hub.resolve(&topic)?;
                self.can_subscribe(&topic, ns)?;
                let members = self.hub.presence(&topic, ns).await?;
                self.reply(&ServerFrame::Presence {
                    id,
                    members: &members,
                })
                .await;
                Ok(())
            }
            ClientFrame::History {
                id,
                topic,
                since,
                limit,
            } => {
                let (topic, ns) = self.hub.resolve(&topic)?;
                self.can_subscribe(&topic, ns)?;
                let since = since.as_ref().map(Position::from_wire);
                let page = self
                    .hub
                    .history(&topic, ns, since.as_ref(), limit.map(u64::from))
                    .await?;
                let publications: Vec<PublicationWire> =
                    page.publications.iter().map(|p| p.to_wire()).collect();
                let position = page.position.to_wire();
                self.reply(&ServerFrame::History {
                    id,
                    publications: &publications,
                    position: &position,
                })
                .await;
                Ok(())
            }
        }
    }

    async fn subscribe(
        &mut self,
        id: u32,
        topic: &str,
        since: Option<&PositionWire>,
        latest: bool,
    ) -> Result<(), HubError> {
        let (topic, ns) = self.hub.resolve(topic)?;
        self.can_subscribe(&topic, ns)?;
        if self.subs.contains(&topic) {
            return Err(HubError::AlreadySubscribed(topic));
        }
        let max = self.hub.config.limits.max_subscriptions;
        if self.subs.len() >= max {
            return Err(HubError::SubscriptionLimit(max));
        }
        let since = since.map(Position::from_wire);
        let opened = subscription::open(
            &self.hub,
            &self.conn,
            &topic,
            ns,
            Start::new(since.as_ref(), latest),
            self.codec,
            id,
        )
        .await;
        if opened != Opened::Subscribed {
            return Ok(());
        }
        self.subs.insert(topic.clone());
        if ns.presence
            && let Err(e) = self
                .hub
                .broker
                .join(&topic, self.member(), ns.join_leave)
                .await
        {
            tracing::warn!(topic = %topic, error = %e, "presence join failed");
        }
        Ok(())
    }

    /// Unsubscribes from `topic`, leaving presence when its namespace has it.
    pub(super) async fn leave_topic(&self, topic: &Topic) {
        let ns = self.hub.config.namespace(topic.namespace());
        let member = ns.and_then(|ns| ns.presence.then_some((self.member(), ns.join_leave)));
        let member = member.as_ref().map(|(m, announce)| (m, *announce));
        subscription::close(&self.hub, &self.conn, topic, member).await;
    }

    /// This connection as a presence member (built when needed, not kept:
    /// most connections never use presence).
    fn member(&self) -> Member {
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
