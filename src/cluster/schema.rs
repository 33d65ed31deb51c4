//! The cluster tables in PostgreSQL, created at start. Each migration runs
//! once, in order, inside a transaction guarded by an advisory lock, so nodes
//! starting together do not race; `redial_schema` records what ran.

use tokio_postgres::Client;

/// Key of the advisory lock held while migrating (any constant unique to redial).
const MIGRATION_LOCK: i64 = 0x7265_6469_616c; // "redial"

/// Migrations, in order; never edit one that has shipped, add the next.
pub const MIGRATIONS: &[&str] = &[
    // 1: shard leases with fencing epochs, live nodes, agent holds, attempt starts.
    "CREATE TABLE redial_shards (
         shard      integer PRIMARY KEY,
         node       text,
         epoch      bigint NOT NULL DEFAULT 0,
         expires_at timestamptz
     );
     CREATE TABLE redial_nodes (
         node    text PRIMARY KEY,
         seen_at timestamptz NOT NULL
     );
     CREATE TABLE redial_agent_holds (
         agent text PRIMARY KEY,
         node  text NOT NULL,
         hold  text NOT NULL,
         until timestamptz NOT NULL
     );
     CREATE TABLE redial_attempt_starts (
         callback text NOT NULL,
         attempt  integer NOT NULL,
         shard    integer NOT NULL,
         node     text NOT NULL,
         epoch    bigint NOT NULL,
         at       timestamptz NOT NULL DEFAULT now(),
         PRIMARY KEY (callback, attempt)
     );",
];

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("the database has schema version {found}; this redial knows up to {known}: upgrade redial")]
    Newer { found: i32, known: i32 },
}

/// Applies the migrations not yet applied, and makes sure `shards` shard rows
/// exist (the shard count is fixed for the life of a cluster).
pub async fn migrate(client: &mut Client, shards: u32) -> Result<(), MigrateError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS redial_schema (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
        .await?;
    let found: i32 = tx.query_one("SELECT coalesce(max(version), 0) FROM redial_schema", &[]).await?.get(0);
    let known = MIGRATIONS.len() as i32;
    if found > known {
        return Err(MigrateError::Newer { found, known });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.batch_execute(sql).await?;
        tx.execute("INSERT INTO redial_schema (version) VALUES ($1)", &[&(i as i32 + 1)]).await?;
    }
    tx.execute(
        "INSERT INTO redial_shards (shard) SELECT generate_series(0, $1 - 1) ON CONFLICT DO NOTHING",
        &[&(shards as i32)],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
