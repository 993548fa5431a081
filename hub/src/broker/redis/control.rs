//! Cross-node control: node heartbeats (the node list of `GET /api/v1/info`)
//! and disconnect-by-user, sent on the control channel and answered by every
//! node with its count in a short-lived reply list.

use std::time::Duration;

use fred::prelude::{Expiration, KeysInterface, ListInterface, PubsubInterface, SetsInterface};
use serde_json::json;

use super::RedisBroker;
use super::store::unavailable;
use super::tasks::HEARTBEAT;
use super::wire::DisconnectRequest;
use crate::broker::{BrokerError, NodeInfo};
use crate::protocol::CloseCode;

/// How long a node counts as live after its last heartbeat.
const NODE_TTL: Duration = Duration::from_secs(3 * HEARTBEAT.as_secs());
/// How long a disconnect waits for the other nodes' answers.
const ANSWER_WAIT: Duration = Duration::from_secs(2);

fn local_info(b: &RedisBroker) -> NodeInfo {
    let counts = b.delivery.counts();
    NodeInfo {
        name: b.node.to_string(),
        connections: counts.connections,
        subscriptions: counts.subscriptions,
        topics: counts.topics,
        uptime_secs: b.started.elapsed().as_secs(),
    }
}

/// Writes this node's heartbeat.
pub(super) async fn heartbeat(b: &RedisBroker) -> Result<(), BrokerError> {
    let info = local_info(b);
    let record = json!({
        "name": info.name,
        "connections": info.connections,
        "subscriptions": info.subscriptions,
        "topics": info.topics,
        "uptime_secs": info.uptime_secs,
    })
    .to_string();
    let ttl = i64::try_from(NODE_TTL.as_millis()).unwrap_or(i64::MAX);
    let client = &b.store.client;
    let () = client
        .set(
            b.keys().node(&b.node),
            record,
            Some(Expiration::PX(ttl)),
            None,
            false,
        )
        .await
        .map_err(unavailable)?;
    let _: i64 = client
        .sadd(b.keys().nodes(), b.node.to_string())
        .await
        .map_err(unavailable)?;
    Ok(())
}

/// Every node with a live heartbeat; `local` stands for this one.
pub(super) async fn nodes(b: &RedisBroker, local: NodeInfo) -> Result<Vec<NodeInfo>, BrokerError> {
    let client = &b.store.client;
    let names: Vec<String> = client
        .smembers(b.keys().nodes())
        .await
        .map_err(unavailable)?;
    let others: Vec<String> = names.into_iter().filter(|n| *n != *b.node).collect();
    // The standalone REST API writes no heartbeat and is no node.
    let mut out = if b.options.heartbeat {
        vec![local]
    } else {
        Vec::new()
    };
    if others.is_empty() {
        return Ok(out);
    }
    let keys: Vec<String> = others.iter().map(|n| b.keys().node(n)).collect();
    let records: Vec<Option<String>> = client.mget(keys).await.map_err(unavailable)?;
    for (name, record) in others.iter().zip(records) {
        let parsed = record.and_then(|r| serde_json::from_str::<serde_json::Value>(&r).ok());
        match parsed {
            Some(v) => {
                let count = |k: &str| {
                    v[k].as_u64()
                        .and_then(|n| usize::try_from(n).ok())
                        .unwrap_or(0)
                };
                out.push(NodeInfo {
                    name: name.clone(),
                    connections: count("connections"),
                    subscriptions: count("subscriptions"),
                    topics: count("topics"),
                    uptime_secs: v["uptime_secs"].as_u64().unwrap_or(0),
                });
            }
            None => {
                let _: i64 = client
                    .srem(b.keys().nodes(), name.clone())
                    .await
                    .map_err(unavailable)?;
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Closes `user`'s connections here and asks every other node to do the
/// same; returns the total the nodes reported within [`ANSWER_WAIT`].
pub(super) async fn disconnect_user(
    b: &RedisBroker,
    user: &str,
    code: CloseCode,
) -> Result<usize, BrokerError> {
    let local = b.delivery.disconnect_user(user, code);
    let expected = nodes(b, local_info(b))
        .await?
        .iter()
        .filter(|n| n.name != *b.node)
        .count();
    let req = DisconnectRequest {
        request: uuid::Uuid::new_v4().simple().to_string(),
        from: b.node.to_string(),
        code: code.code(),
        user: user.to_owned(),
    };
    let client = &b.store.client;
    let receivers: i64 = client
        .publish(b.keys().control(), req.encode())
        .await
        .map_err(unavailable)?;
    // Standalone Redis counts every subscribed node (this one included);
    // a cluster node counts only its own clients, so heartbeats decide there.
    let expected = if b.sharded {
        expected
    } else {
        usize::try_from(receivers).unwrap_or(0).saturating_sub(1)
    };
    let reply_key = b.keys().control_reply(&req.request);
    let deadline = tokio::time::Instant::now() + ANSWER_WAIT;
    let mut answers: Vec<u64> = Vec::new();
    let mut waiting = expected > 0;
    while waiting {
        answers = client
            .lrange(&reply_key, 0, -1)
            .await
            .map_err(unavailable)?;
        waiting = answers.len() < expected && tokio::time::Instant::now() < deadline;
        if waiting {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let remote: u64 = answers.iter().sum();
    Ok(local + usize::try_from(remote).unwrap_or(0))
}

/// Handles another node's disconnect request.
pub(super) async fn answer(b: &RedisBroker, req: &DisconnectRequest) -> Result<(), BrokerError> {
    let Some(code) = CloseCode::from_code(req.code) else {
        return Ok(());
    };
    let n = b.delivery.disconnect_user(&req.user, code);
    let key = b.keys().control_reply(&req.request);
    let client = &b.store.client;
    let _: i64 = client.rpush(&key, n as i64).await.map_err(unavailable)?;
    let _: bool = client
        .pexpire(&key, 30_000, None)
        .await
        .map_err(unavailable)?;
    Ok(())
}
