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
