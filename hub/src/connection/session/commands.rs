//! The commands of a connected session: subscribe (with recovery),
//! unsubscribe, publish, refresh, presence, history and ping.

use crate::broker::Position;
use crate::config::NamespaceConfig;
use crate::engine::{self, Start};
use crate::fanout::Outgoing;
use crate::hub::{HubError, PublishInput};
use crate::protocol::ErrorCode;
use crate::protocol::frames::{ClientFrame, PositionWire, PublicationWire, ServerFrame};
use crate::topic::Topic;

use super::Session;

impl Session {
    fn can_subscribe(&self, topic: &Topic, ns: &NamespaceConfig) -> Result<(), HubError> {
        if ns.public || self.reg.identity().permissions.can_subscribe(topic) {
            Ok(())
        } else {
            Err(HubError::NotPermitted {
                action: "subscribe",
                topic: topic.clone(),
                scope: "the token's `subscribe`",
                patterns: self.reg.identity().permissions.subscribe_text(),
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
                if !self.reg.unsubscribe(&topic).await {
                    return Err(HubError::NotSubscribed(topic));
                }
                let frame = self.codec.encode(&ServerFrame::Unsubscribed {
                    id,
                    topic: topic.as_str(),
                });
                let outcome = self
                    .conn
                    .send(Outgoing::End {
                        topic,
                        frame: Box::new(frame.into()),
                    })
                    .await;
                engine::queued(&self.hub, outcome);
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
                if !self.reg.identity().permissions.can_publish(&topic) {
                    return Err(HubError::NotPermitted {
                        action: "publish",
                        topic,
                        scope: "the token's `publish`",
                        patterns: self.reg.identity().permissions.publish_text(),
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
                if identity.user != self.reg.identity().user {
                    return Err(HubError::UserMismatch);
                }
                let expires_in = identity.expires_in();
                self.token_deadline = identity.deadline();
                self.reg.set_identity(identity);
                self.end_revoked().await;
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

    /// Ends, with an `unsubscribed` push carrying `forbidden`, every
    /// subscription the current token no longer allows (after a `refresh`).
    async fn end_revoked(&mut self) {
        let revoked: Vec<Topic> = self
            .reg
            .topics()
            .filter(|topic| {
                let allowed = self
                    .hub
                    .config
                    .namespace(topic.namespace())
                    .is_some_and(|ns| self.can_subscribe(topic, ns).is_ok());
                !allowed
            })
            .cloned()
            .collect();
        for topic in revoked {
            self.reg.unsubscribe(&topic).await;
            let message = format!("the refreshed token does not allow subscribing to `{topic}`");
            let frame = self.codec.encode(&ServerFrame::Revoked {
                topic: topic.as_str(),
                code: ErrorCode::Forbidden,
                message: &message,
            });
            self.hub.metrics.error(ErrorCode::Forbidden);
            let outcome = self
                .conn
                .send(Outgoing::End {
                    topic,
                    frame: Box::new(frame.into()),
                })
                .await;
            engine::queued(&self.hub, outcome);
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
        if self.reg.is_subscribed(&topic) {
            return Err(HubError::AlreadySubscribed(topic));
        }
        let max = self.hub.config.limits.max_subscriptions;
        if self.reg.subscription_count() >= max {
            return Err(HubError::SubscriptionLimit(max));
        }
        let since = since.map(Position::from_wire);
        // The reply (or the error) is queued by the subscription itself.
        self.reg
            .subscribe(
                &topic,
                ns,
                Start::new(since.as_ref(), latest),
                self.codec,
                id,
            )
            .await;
        Ok(())
    }
}
