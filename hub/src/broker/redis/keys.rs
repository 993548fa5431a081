//! Key and channel names. Every key and the channel of one topic share the
//! hash tag `{topic}`, so in a Redis Cluster they live in one slot and the
//! publish script (which touches them all and publishes on the channel with
//! `SPUBLISH`) runs on one shard. Topic names cannot contain braces, so the
//! tag is exactly the topic.

use crate::topic::Topic;

/// Names under one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    /// Hash `{e: epoch, o: offset}` of a topic's stream.
    pub(crate) fn meta(&self, topic: &Topic) -> String {
        format!("{}:{{{topic}}}:meta", self.prefix)
    }

    /// The topic's history stream (entry ids `0-OFFSET`).
    pub(crate) fn history(&self, topic: &Topic) -> String {
        format!("{}:{{{topic}}}:hist", self.prefix)
    }

    /// An idempotency key's record (`OFFSET:EPOCH`).
    pub(crate) fn idempotency(&self, topic: &Topic, key: &str) -> String {
        format!("{}:{{{topic}}}:idem:{key}", self.prefix)
    }

    /// Presence members: hash client id → member JSON.
    pub(crate) fn presence_members(&self, topic: &Topic) -> String {
        format!("{}:{{{topic}}}:pm", self.prefix)
    }

    /// Presence expiry: sorted set client id → expiry (ms since the Unix epoch).
    pub(crate) fn presence_expiry(&self, topic: &Topic) -> String {
        format!("{}:{{{topic}}}:pz", self.prefix)
    }

    /// The channel carrying a topic's publications and join/leave events.
    pub(crate) fn channel(&self, topic: &Topic) -> String {
        format!("{}:{{{topic}}}:ch", self.prefix)
    }

    /// The topic a channel name belongs to.
    pub(crate) fn topic_of(&self, channel: &str) -> Option<Topic> {
        let rest = channel.strip_prefix(&self.prefix)?.strip_prefix(":{")?;
        let name = rest.strip_suffix("}:ch")?;
        name.parse().ok()
    }

    /// The cross-node control channel (disconnect requests).
    pub(crate) fn control(&self) -> String {
        format!("{}:control", self.prefix)
    }

    /// Where nodes answer a control request.
    pub(crate) fn control_reply(&self, request: &str) -> String {
        format!("{}:reply:{request}", self.prefix)
    }

    /// This node's private pub/sub probe channel.
    pub(crate) fn probe(&self, node: &str) -> String {
        format!("{}:{{probe}}:{node}", self.prefix)
    }

    /// The set of node names that sent heartbeats.
    pub(crate) fn nodes(&self) -> String {
        format!("{}:{{nodes}}", self.prefix)
    }

    /// A node's heartbeat record (same slot as [`Keys::nodes`]).
    pub(crate) fn node(&self, node: &str) -> String {
        format!("{}:{{nodes}}:{node}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_keys_share_its_hash_tag_and_channels_map_back() {
        let keys = Keys::new("hb");
        let t: Topic = "bookings:42".parse().unwrap();
        assert_eq!(keys.meta(&t), "hb:{bookings:42}:meta");
        assert_eq!(keys.idempotency(&t, "k"), "hb:{bookings:42}:idem:k");
        let ch = keys.channel(&t);
        assert_eq!(ch, "hb:{bookings:42}:ch");
        assert_eq!(keys.topic_of(&ch), Some(t));
        assert_eq!(keys.topic_of("hb:control"), None);
        assert_eq!(keys.topic_of("other:{bookings:42}:ch"), None);
    }
}
