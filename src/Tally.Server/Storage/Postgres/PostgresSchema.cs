using Npgsql;

namespace Tally.Server.Storage.Postgres;

/// <summary>
/// The PostgreSQL schema, created and migrated at start under an advisory lock, so that
/// instances starting together on an empty database take turns: the first migrates, the others find
/// it done. Versioned and forward-only; a database newer than this binary stops the start.
/// </summary>
internal static class PostgresSchema
{
    public const int CurrentVersion = 4;

    /// <summary>The advisory lock every instance takes while it checks or migrates the schema.</summary>
    private const long MigrationLock = 0x54414C59_00000001; // "TALY", 1

    private static readonly string[] Migrations =
    [
        // Version 1. Names sort ordinally (COLLATE "C"): listings page in the same order on every engine.
        // A row whose value is null is a placeholder a commit inserted to lock a name that did not exist yet;
        // it never outlives that commit's transaction.
        """
        CREATE TABLE tally_schema (version integer NOT NULL);
        INSERT INTO tally_schema (version) VALUES (0);
        CREATE TABLE counters (
            name       text COLLATE "C" PRIMARY KEY,
            value      bigint NULL,
            initial    bigint NULL,
            min        bigint NULL,
            max        bigint NULL,
            version    bigint NULL,
            created_at bigint NULL,
            updated_at bigint NULL,
            created_by text NULL
        );
        CREATE TABLE idempotency (
            caller      text   NOT NULL,
            key         text   NOT NULL,
            fingerprint bytea  NOT NULL,
            outcome     bytea  NOT NULL,
            size        bigint NOT NULL,
            created_at  bigint NOT NULL,
            PRIMARY KEY (caller, key)
        );
        CREATE INDEX idempotency_created_at ON idempotency (created_at);
        CREATE INDEX idempotency_caller_created_at ON idempotency (caller, created_at);
        -- What quotas count, kept in the same transactions as the changes they count.
        CREATE TABLE idempotency_usage (caller text PRIMARY KEY, bytes bigint NOT NULL);
        CREATE TABLE counter_owners (key_id text PRIMARY KEY, live bigint NOT NULL);
        CREATE TABLE counter_totals (id integer PRIMARY KEY CHECK (id = 1), live bigint NOT NULL);
        INSERT INTO counter_totals (id, live) VALUES (1, 0);
        CREATE TABLE api_keys (
            id           text   PRIMARY KEY,
            name         text   NOT NULL,
            scopes       text   NOT NULL,
            prefix       text   NOT NULL,
            hash         bytea  NOT NULL UNIQUE,
            created_at   bigint NOT NULL,
            max_counters bigint NULL,
            max_amount   bigint NULL
        );
        -- Bumped by every key change: instances poll it and reload their keys when it moves.
        CREATE TABLE api_key_generation (id integer PRIMARY KEY CHECK (id = 1), generation bigint NOT NULL);
        INSERT INTO api_key_generation (id, generation) VALUES (1, 0);
        -- Live instances (heartbeats), so a rate limit can be split between them.
        CREATE TABLE instances (id text PRIMARY KEY, seen_at timestamptz NOT NULL);
        """,
        // Version 2: history. Per counter, interval (period 0 minute, 1 hour, 2 day) and bucket start (Unix ms, UTC):
        // the sums added and subtracted, the number of sets, the value at the bucket's end. Written by the commit
        // that changed the counter up to version 3; from version 4 by the fold of history_log. Pruned oldest first
        // along history_prune.
        """
        CREATE TABLE history (
            name       text COLLATE "C" NOT NULL,
            period     smallint NOT NULL,
            start      bigint NOT NULL,
            increments bigint NOT NULL,
            decrements bigint NOT NULL,
            sets       bigint NOT NULL,
            value      bigint NOT NULL,
            PRIMARY KEY (name, period, start)
        );
        CREATE INDEX history_prune ON history (period, start);
        """,
        // Version 3: threshold alerts (Alerts/, Storage/Postgres/PostgresAlertStore). Definitions as JSON documents with a
        // generation every change bumps (instances poll it, as for the keys); the firing (alert, counter) pairs, read and
        // written by commits under the counters' row locks; the outbox, written in the commit's transaction and leased
        // by senders (FOR UPDATE SKIP LOCKED, with an expiry so a crashed sender's events are taken over); the attempts.
        """
        CREATE TABLE alerts (id text PRIMARY KEY, definition text NOT NULL);
        CREATE TABLE alert_generation (id integer PRIMARY KEY CHECK (id = 1), generation bigint NOT NULL);
        INSERT INTO alert_generation (id, generation) VALUES (1, 0);
        CREATE TABLE alert_states (
            alert_id text   NOT NULL,
            counter  text   COLLATE "C" NOT NULL,
            revision bigint NOT NULL,
            PRIMARY KEY (alert_id, counter)
        );
        CREATE INDEX alert_states_counter ON alert_states (counter);
        CREATE TABLE alert_outbox (
            id              text    PRIMARY KEY,
            alert_id        text    NOT NULL,
            type            text    NOT NULL,
            payload         text    NOT NULL,
            created_at      bigint  NOT NULL,
            attempts        integer NOT NULL,
            next_attempt_at bigint  NOT NULL,
            leased_until    bigint  NULL,
            leased_by       text    NULL
        );
        CREATE INDEX alert_outbox_due ON alert_outbox (next_attempt_at);
        CREATE INDEX alert_outbox_alert ON alert_outbox (alert_id);
        CREATE TABLE alert_deliveries (
            seq      bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            alert_id text    NOT NULL,
            event_id text    NOT NULL,
            type     text    NOT NULL,
            attempt  integer NOT NULL,
            at       bigint  NOT NULL,
            status   integer NULL,
            error    text    NULL,
            outcome  text    NOT NULL
        );
        CREATE INDEX alert_deliveries_alert ON alert_deliveries (alert_id, seq);
        CREATE INDEX alert_deliveries_at ON alert_deliveries (at);
        """,
        // Version 4: the history log (PostgresCounterStore, History). A commit appends one row instead of upserting three
        // buckets per changed counter: the minute its changes fall in, the names whose history it deleted, and per changed
        // counter its minute bucket (parallel arrays). seq comes from a sequence without a cache, after the counters' row
        // locks, so one counter's entries are in seq order. Folded into history in the background, oldest seq first.
        """
        CREATE TABLE history_log (
            seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            minute     bigint   NOT NULL,
            cleared    text[]   NULL,
            names      text[]   NOT NULL,
            increments bigint[] NOT NULL,
            decrements bigint[] NOT NULL,
            sets       bigint[] NOT NULL,
            ends       bigint[] NOT NULL
        );
        """,
    ];

    /// <summary>Creates or migrates the schema; refuses a database migrated by a newer Tally.</summary>
    /// <remarks>
    /// One transaction under a transaction-scoped advisory lock (PostgreSQL's DDL is transactional): it
    /// needs no session of its own, so it works through PgBouncer in transaction mode too.
    /// </remarks>
    public static async Task MigrateAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await ExecuteAsync(connection, $"SELECT pg_advisory_xact_lock({MigrationLock})", cancellationToken);
        var version = await CurrentVersionAsync(connection, cancellationToken);
        if (version > CurrentVersion)
        {
            throw new StoreStartupException(
                $"The PostgreSQL database has Tally schema version {version}, newer than this Tally's {CurrentVersion}. Upgrade Tally; the database was left untouched.");
        }
        for (; version < CurrentVersion; version++)
        {
            await ExecuteAsync(connection, Migrations[version], cancellationToken);
            await ExecuteAsync(connection, $"UPDATE tally_schema SET version = {version + 1}", cancellationToken);
        }
        await transaction.CommitAsync(cancellationToken);
    }

    private static async Task<int> CurrentVersionAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var exists = new NpgsqlCommand("SELECT to_regclass('tally_schema') IS NOT NULL", connection);
        if (!(bool)(await exists.ExecuteScalarAsync(cancellationToken))!)
        {
            return 0;
        }
        await using var command = new NpgsqlCommand("SELECT max(version) FROM tally_schema", connection);
        return await command.ExecuteScalarAsync(cancellationToken) is int version ? version : 0;
    }

    public static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
