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
    // 2: the callback book. `record` is the callback in the book's compact
    // encoding; the columns beside it are what indexes and conditional
    // writes need, kept in step with it by every write. Ids are the redb
    // book's (32-bit creation sequence, 32 random bits), so below 2^63.
    "CREATE TABLE redial_callbacks (
         id             bigint PRIMARY KEY,
         shard          integer NOT NULL,
         status         smallint NOT NULL,
         phone          text NOT NULL,
         queue          text NOT NULL,
         owner          text,
         interaction_id text,
         due_at         bigint NOT NULL,
         first_delay    bigint NOT NULL,
         record         bytea NOT NULL
     );
     CREATE UNIQUE INDEX redial_callbacks_active ON redial_callbacks (phone, queue) WHERE status IN (0, 1);
     CREATE INDEX redial_callbacks_due ON redial_callbacks (due_at, id) WHERE status = 0;
     CREATE INDEX redial_callbacks_in_progress ON redial_callbacks (shard) WHERE status = 1;
     CREATE INDEX redial_callbacks_status ON redial_callbacks (status, id);
     CREATE INDEX redial_callbacks_queue ON redial_callbacks (queue, id);
     CREATE INDEX redial_callbacks_owner ON redial_callbacks (owner, id) WHERE owner IS NOT NULL;
     CREATE INDEX redial_callbacks_phone ON redial_callbacks (phone, id);
     CREATE INDEX redial_callbacks_interaction ON redial_callbacks (interaction_id)
         WHERE status IN (0, 1) AND interaction_id IS NOT NULL;
     CREATE TABLE redial_attempts (
         callback bigint NOT NULL,
         attempt  integer NOT NULL,
         record   bytea NOT NULL,
         PRIMARY KEY (callback, attempt)
     );
     CREATE TABLE redial_audit (
         seq    bigserial PRIMARY KEY,
         target text NOT NULL,
         entry  bytea NOT NULL
     );
     CREATE SEQUENCE redial_callback_seq MINVALUE 1 MAXVALUE 4294967295 CYCLE;",
    // 3: a follow-up booked during a callback's own call takes the (phone,
    // queue) slot from it while that call goes on: the one in progress is
    // `displaced` and no longer counts in the unique index over active
    // callbacks (it ends, or is cancelled instead of retried).
    "ALTER TABLE redial_callbacks ADD COLUMN displaced boolean NOT NULL DEFAULT false;
     DROP INDEX redial_callbacks_active;
     CREATE UNIQUE INDEX redial_callbacks_active ON redial_callbacks (phone, queue) WHERE status IN (0, 1) AND NOT displaced;",
    // 4: agents' registrations and away choices, kept across restarts and shared by
    // the nodes (`cluster::bindings`). `expires_at` is wall-clock milliseconds.
    "CREATE TABLE redial_agent_bindings (
         agent      text NOT NULL,
         contact    text NOT NULL,
         expires_at bigint NOT NULL,
         source     text NOT NULL,
         PRIMARY KEY (agent, contact)
     );
     CREATE TABLE redial_agent_away (
         agent text PRIMARY KEY
     );",
    // 5: each node owns the bindings it registered (`node`), so two nodes holding
    // different bindings of one agent do not overwrite each other's; rows written
    // before this migration belong to no node ('').
    "ALTER TABLE redial_agent_bindings ADD COLUMN node text NOT NULL DEFAULT '';
     ALTER TABLE redial_agent_bindings DROP CONSTRAINT redial_agent_bindings_pkey;
     ALTER TABLE redial_agent_bindings ADD PRIMARY KEY (agent, node, contact);",
    // 6: the durable outbox shared by the nodes (`cluster::outbox`): events
    // under a commit-ordered counter, webhook cursors, back-offs and parked
    // deliveries, texts sent, and the turns of tasks that run once.
    "CREATE TABLE redial_outbox (
         seq   bigint PRIMARY KEY,
         event bytea NOT NULL
     );
     CREATE TABLE redial_outbox_next (
         one  boolean PRIMARY KEY DEFAULT true CHECK (one),
         next bigint NOT NULL
     );
     INSERT INTO redial_outbox_next (next) VALUES (1);
     CREATE TABLE redial_webhook_cursors (
         endpoint text PRIMARY KEY,
         seq      bigint NOT NULL
     );
     CREATE TABLE redial_webhook_backoff (
         endpoint text PRIMARY KEY,
         backoff  bytea NOT NULL
     );
     CREATE TABLE redial_webhook_parked (
         id     bigserial PRIMARY KEY,
         parked bytea NOT NULL
     );
     CREATE TABLE redial_texts (
         n        bigserial PRIMARY KEY,
         callback bigint NOT NULL,
         record   bytea NOT NULL
     );
     CREATE INDEX redial_texts_callback ON redial_texts (callback, n);
     CREATE TABLE redial_outbox_turns (
         task       text PRIMARY KEY,
         node       text NOT NULL,
         expires_at timestamptz NOT NULL
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
