//! Presence of one local subscriber on one topic: [`join`] after its
//! subscription opened, [`leave`] when it closes. Both are lifecycle points:
//! they queue the webhook `join` / `leave` events ([`crate::sinks::lifecycle`]).

use crate::config::LifecycleEvent;
use crate::hub::Hub;
use crate::protocol::frames::Member;
use crate::topic::Topic;

/// Adds `member` to `topic`'s presence (the namespace has presence on), and
/// announces `join` when the namespace has `join_leave`. A broker failure is
/// logged: the subscription stands without presence.
pub async fn join(hub: &Hub, topic: &Topic, member: Member) {
    crate::sinks::lifecycle::presence(hub, topic, LifecycleEvent::Join, &member);
    if let Err(e) = hub
        .presence_store()
        .join(topic, member, announces(hub, topic))
        .await
    {
        tracing::warn!(topic = %topic, error = %e, "presence join failed");
    }
}

/// Removes `member` from `topic`'s presence, announcing `leave` when the
/// namespace has `join_leave`. A broker failure is logged.
pub async fn leave(hub: &Hub, topic: &Topic, member: Member) {
    crate::sinks::lifecycle::presence(hub, topic, LifecycleEvent::Leave, &member);
    if let Err(e) = hub
        .presence_store()
        .leave(topic, member, announces(hub, topic))
        .await
    {
        tracing::warn!(topic = %topic, error = %e, "presence leave failed");
    }
}

/// Whether `topic`'s namespace sends `join`/`leave` events.
fn announces(hub: &Hub, topic: &Topic) -> bool {
    hub.config
        .namespace(topic.namespace())
        .is_some_and(|ns| ns.join_leave)
}
