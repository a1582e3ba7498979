//! Waking the long-polls of every coordinator sharing the database: after a change
//! commits, its coordinator sends `NOTIFY segwire_touched` with the ids of the nodes it
//! touched; each coordinator LISTENs and wakes those of its own long-polls. A listener
//! that lost its connection may have missed notifications, so on reconnecting it wakes
//! every long-poll it holds (each re-reads its versions and sleeps again if nothing moved).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::postgres::PgListener;
use sqlx::PgPool;

use crate::store::StoreResult;

/// The channel of touched node ids.
pub const CHANNEL: &str = "segwire_touched";

/// A NOTIFY payload must stay under 8,000 bytes; node ids are short, so this many per
/// notification leaves ample room.
const IDS_PER_NOTIFICATION: usize = 100;

/// One notification: who sent it and which nodes it touched.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Touched {
    /// The sending coordinator's instance id (a coordinator skips its own).
    pub from: String,
    /// Touched node ids.
    pub nodes: Vec<String>,
}

/// The payloads announcing `nodes`, each small enough for NOTIFY.
#[must_use]
pub fn payloads(from: &str, nodes: &[String]) -> Vec<String> {
    nodes
        .chunks(IDS_PER_NOTIFICATION)
        .map(|chunk| {
            serde_json::to_string(&Touched {
                from: from.to_string(),
                nodes: chunk.to_vec(),
            })
            .unwrap_or_default()
        })
        .collect()
}

/// Sends the notifications for a committed change that touched `nodes`, all in one
/// statement (one round trip however many nodes it touched).
pub async fn announce(pool: &PgPool, from: &str, nodes: &[String]) -> StoreResult<()> {
    let payloads = payloads(from, nodes);
    if payloads.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS t(p, i) ORDER BY i",
    )
    .bind(CHANNEL)
    .bind(payloads)
    .execute(pool)
    .await?;
    Ok(())
}

/// What the listener tells its coordinator.
#[derive(Debug, PartialEq, Eq)]
pub enum Heard {
    /// Another coordinator touched these nodes.
    Nodes(Vec<String>),
    /// The listener (re)connected and may have missed notifications: wake everyone.
    Everyone,
}

/// Listens until the pool closes, calling `on_heard` for every other coordinator's
/// change; reconnects with a pause after a failure.
pub async fn listen(pool: PgPool, me: String, on_heard: impl Fn(Heard) + Send + 'static) {
    loop {
        match listen_once(&pool, &me, &on_heard).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "lost the PostgreSQL change listener; reconnecting");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn listen_once(pool: &PgPool, me: &str, on_heard: &impl Fn(Heard)) -> sqlx::Result<()> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    on_heard(Heard::Everyone);
    loop {
        match listener.try_recv().await {
            Ok(Some(n)) => match serde_json::from_str::<Touched>(n.payload()) {
                Ok(t) if t.from != me => on_heard(Heard::Nodes(t.nodes)),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "ignoring a malformed change notification"),
            },
            // The connection dropped; the next try_recv reconnects and re-listens.
            Ok(None) => on_heard(Heard::Everyone),
            Err(sqlx::Error::PoolClosed) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_touched_nodes_are_split_into_payloads_under_the_notify_limit() {
        let nodes: Vec<String> = (0..250).map(|i| format!("{i:032x}")).collect();
        let out = payloads("me", &nodes);
        assert_eq!(out.len(), 3);
        let mut back = Vec::new();
        for p in &out {
            assert!(p.len() < 8000, "{} bytes", p.len());
            let t: Touched = serde_json::from_str(p).expect("json");
            assert_eq!(t.from, "me");
            back.extend(t.nodes);
        }
        assert_eq!(back, nodes);
        assert!(payloads("me", &[]).is_empty());
    }
}
