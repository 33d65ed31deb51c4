//! Agent reservations shared by the nodes: a hold is a conditional write, so
//! two nodes can never hold one agent at once; a hold lapses at `until` (a
//! node that died cannot pin an agent).

use std::time::Duration;

use tokio_postgres::GenericClient;

/// Holds `agent` for `hold` (a callback or call id) on `node` for `lasting`,
/// if nobody holds it now. `true` = the agent is ours.
pub async fn reserve(db: &impl GenericClient, agent: &str, node: &str, hold: &str, lasting: Duration) -> Result<bool, tokio_postgres::Error> {
    let n = db
        .execute(
            "INSERT INTO redial_agent_holds (agent, node, hold, until)
             VALUES ($1, $2, $3, now() + make_interval(secs => $4))
             ON CONFLICT (agent) DO UPDATE SET node = EXCLUDED.node, hold = EXCLUDED.hold, until = EXCLUDED.until
              WHERE redial_agent_holds.until <= now()",
            &[&agent, &node, &hold, &lasting.as_secs_f64()],
        )
        .await?;
    Ok(n == 1)
}

/// Ends this node's hold of `agent` for `hold`; another node's is untouched.
pub async fn release(db: &impl GenericClient, agent: &str, node: &str, hold: &str) -> Result<bool, tokio_postgres::Error> {
    let n = db.execute("DELETE FROM redial_agent_holds WHERE agent = $1 AND node = $2 AND hold = $3", &[&agent, &node, &hold]).await?;
    Ok(n == 1)
}

/// Extends this node's holds named in `holds` by `lasting` from now (the
/// lease loop, while their calls go on); a hold not renewed lapses.
pub async fn renew(db: &impl GenericClient, node: &str, holds: &[String], lasting: Duration) -> Result<u64, tokio_postgres::Error> {
    if holds.is_empty() {
        return Ok(0);
    }
    db.execute(
        "UPDATE redial_agent_holds SET until = now() + make_interval(secs => $3) WHERE node = $1 AND hold = ANY($2)",
        &[&node, &holds, &lasting.as_secs_f64()],
    )
    .await
}

/// Ends the hold for `hold` (an attempt, `<callback>/<number>`), whichever
/// node made it: the attempt is over.
pub async fn release_hold(db: &impl GenericClient, hold: &str) -> Result<u64, tokio_postgres::Error> {
    db.execute("DELETE FROM redial_agent_holds WHERE hold = $1", &[&hold]).await
}

/// The agents other nodes hold now.
pub async fn held_elsewhere(db: &impl GenericClient, node: &str) -> Result<Vec<String>, tokio_postgres::Error> {
    Ok(db.query("SELECT agent FROM redial_agent_holds WHERE node <> $1 AND until > now()", &[&node]).await?.iter().map(|r| r.get(0)).collect())
}

/// The key of the hold an attempt makes (as in `X-Redial-Attempt`).
pub fn hold_key(callback: &str, attempt: u32) -> String {
    format!("{callback}/{attempt}")
}

/// The agent name [`crate::scheduler::engine::Unlimited`] gives when no
/// agent was named: no one to hold.
pub const ANY_AGENT: &str = "any";
