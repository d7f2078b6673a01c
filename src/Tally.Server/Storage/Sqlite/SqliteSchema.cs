using Microsoft.Data.Sqlite;

namespace Tally.Server.Storage.Sqlite;

/// <summary>
/// The embedded file's schema and its checks. A Tally file carries SQLite's application_id
/// 'TALY', so a foreign database is refused before anything writes to it.
/// </summary>
internal static class SqliteSchema
{
    public const int ApplicationId = 0x54414C59; // "TALY"
    public const int CurrentVersion = 7;

    private static readonly string[] Migrations =
    [
        // Version 1: counters and idempotency records, with the schema version table later versions migrate from.
        """
        CREATE TABLE tally_schema (version INTEGER NOT NULL);
        CREATE TABLE counters (
            name       TEXT    NOT NULL PRIMARY KEY,
            value      INTEGER NOT NULL,
            initial    INTEGER NOT NULL,
            min        INTEGER NULL,
            max        INTEGER NULL,
            version    INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE idempotency (
            caller      TEXT    NOT NULL,
            key         TEXT    NOT NULL,
            fingerprint BLOB    NOT NULL,
            status      INTEGER NOT NULL,
            etag        TEXT    NULL,
            body        BLOB    NOT NULL,
            created_at  INTEGER NOT NULL,
            PRIMARY KEY (caller, key)
        ) WITHOUT ROWID;
        CREATE INDEX idempotency_created_at ON idempotency (created_at);
        """,
        // Version 2: API keys (Auth/SqliteApiKeyStore). Only the SHA-256 of a secret is stored.
        """
        CREATE TABLE api_keys (
            id         TEXT    NOT NULL PRIMARY KEY,
            name       TEXT    NOT NULL,
            scopes     TEXT    NOT NULL,
            prefix     TEXT    NOT NULL,
            hash       BLOB    NOT NULL UNIQUE,
            created_at INTEGER NOT NULL
        ) WITHOUT ROWID;
        """,
        // Version 3: the counter log (CounterLog.cs). Commits append here; the counters table is folded in now and then.
        """
        CREATE TABLE counter_log (
            seq        INTEGER PRIMARY KEY,
            name       TEXT    NOT NULL,
            value      INTEGER NULL,
            initial    INTEGER NULL,
            min        INTEGER NULL,
            max        INTEGER NULL,
            version    INTEGER NULL,
            created_at INTEGER NULL,
            updated_at INTEGER NULL
        );
        """,
        // Version 4: quotas. Who created each counter (the API key id), per-key limits, and compact
        // idempotency records (format 1: an encoded outcome) with their size, which quotas count.
        """
        ALTER TABLE counters ADD COLUMN created_by TEXT NULL;
        ALTER TABLE counter_log ADD COLUMN created_by TEXT NULL;
        ALTER TABLE api_keys ADD COLUMN max_counters INTEGER NULL;
        ALTER TABLE api_keys ADD COLUMN max_amount INTEGER NULL;
        ALTER TABLE idempotency ADD COLUMN format INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE idempotency ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
        UPDATE idempotency SET size = length(caller) + length(key) + length(fingerprint) + length(body) + 64;
        CREATE INDEX idempotency_caller_created_at ON idempotency (caller, created_at);
        """,
        // Version 5: history (SqliteHistory.cs). Per counter, interval (0 minute, 1 hour, 2 day) and bucket start
        // (Unix ms, UTC): the sums added and subtracted, the number of sets, and the value at the bucket's end.
        """
        CREATE TABLE history (
            period     INTEGER NOT NULL,
            start      INTEGER NOT NULL,
            name       TEXT    NOT NULL,
            increments INTEGER NOT NULL,
            decrements INTEGER NOT NULL,
            sets       INTEGER NOT NULL,
            value      INTEGER NOT NULL,
            PRIMARY KEY (period, start, name)
        ) WITHOUT ROWID;
        CREATE INDEX history_name ON history (name, period, start);
        """,
        // Version 6: threshold alerts (Alerts/). Definitions as JSON documents (secret included); the firing
        // (alert, counter) pairs, written with the counters; the outbox, written in the same transaction as the change
        // that caused each event; and the delivery attempts (Storage/Sqlite/SqliteAlertStore).
        """
        CREATE TABLE alerts (id TEXT NOT NULL PRIMARY KEY, definition TEXT NOT NULL) WITHOUT ROWID;
        CREATE TABLE alert_states (
            alert_id TEXT    NOT NULL,
            counter  TEXT    NOT NULL,
            revision INTEGER NOT NULL,
            PRIMARY KEY (alert_id, counter)
        ) WITHOUT ROWID;
        CREATE TABLE alert_outbox (
            id              TEXT    NOT NULL PRIMARY KEY,
            alert_id        TEXT    NOT NULL,
            type            TEXT    NOT NULL,
            payload         TEXT    NOT NULL,
            created_at      INTEGER NOT NULL,
            attempts        INTEGER NOT NULL,
            next_attempt_at INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX alert_outbox_due ON alert_outbox (next_attempt_at);
        CREATE INDEX alert_outbox_alert ON alert_outbox (alert_id);
        CREATE TABLE alert_deliveries (
            seq      INTEGER PRIMARY KEY,
            alert_id TEXT    NOT NULL,
            event_id TEXT    NOT NULL,
            type     TEXT    NOT NULL,
            attempt  INTEGER NOT NULL,
            at       INTEGER NOT NULL,
            status   INTEGER NULL,
            error    TEXT    NULL,
            outcome  TEXT    NOT NULL
        );
        CREATE INDEX alert_deliveries_alert ON alert_deliveries (alert_id, seq);
        CREATE INDEX alert_deliveries_at ON alert_deliveries (at);
        """,
        // Version 7: the history log (SqliteHistory.cs). Each commit appends one row, its minute buckets encoded in
        // entries (or a counter's history cleared); folds add them to the history table, counter by counter in name
        // order, and history_folded (one row at most) says how far the running fold got: the names up to name, of the
        // rows up to upto.
        """
        CREATE TABLE history_log (seq INTEGER PRIMARY KEY, entries BLOB NOT NULL);
        CREATE TABLE history_folded (id INTEGER PRIMARY KEY CHECK (id = 1), upto INTEGER NOT NULL, name TEXT NOT NULL);
        """,
    ];

    /// <summary>Reads an existing file without changing it and refuses what is not ours or too new.</summary>
    public static void Inspect(string path)
    {
        var header = new byte[16];
        using (var file = File.OpenRead(path))
        {
            if (file.Length == 0)
            {
                return;
            }
            if (file.ReadAtLeast(header, header.Length, throwOnEndOfStream: false) < header.Length
                || !header.AsSpan().SequenceEqual("SQLite format 3\0"u8))
            {
                throw new StoreStartupException($"{path} is not a SQLite database, so not a Tally data file. Move it away or set DataDir to another directory.");
            }
        }

        try
        {
            using var connection = new SqliteConnection(ConnectionString(path, readOnly: true));
            connection.Open();
            var applicationId = Scalar(connection, "PRAGMA application_id");
            var tables = Scalar(connection, "SELECT count(*) FROM sqlite_master");
            if (applicationId != ApplicationId && tables > 0)
            {
                throw new StoreStartupException($"{path} is a SQLite database of another application (application_id {applicationId}), not a Tally data file. It was left untouched.");
            }
            if (tables > 0)
            {
                var version = Scalar(connection, "SELECT max(version) FROM tally_schema");
                if (version > CurrentVersion)
                {
                    throw new StoreStartupException($"{path} has schema version {version}, newer than this Tally's {CurrentVersion}. Upgrade Tally; the file was left untouched.");
                }
            }
        }
        catch (SqliteException ex)
        {
            throw new StoreStartupException($"{path} cannot be read as a Tally data file ({ex.Message}). It may be corrupt; it was left untouched. Restore it from a backup or move it away.", ex);
        }
    }

    /// <summary>Creates or migrates the schema to <see cref="CurrentVersion"/>.</summary>
    public static void Migrate(SqliteConnection connection)
    {
        var version = Scalar(connection, "SELECT count(*) FROM sqlite_master WHERE name = 'tally_schema'") == 0
            ? 0
            : Scalar(connection, "SELECT coalesce(max(version), 0) FROM tally_schema");
        for (; version < CurrentVersion; version++)
        {
            using var transaction = connection.BeginTransaction();
            Execute(connection, Migrations[version]);
            Execute(connection, $"DELETE FROM tally_schema; INSERT INTO tally_schema (version) VALUES ({version + 1}); PRAGMA application_id = {ApplicationId};");
            transaction.Commit();
        }
    }

    public static string ConnectionString(string path, bool readOnly) => new SqliteConnectionStringBuilder
    {
        DataSource = path,
        Mode = readOnly ? SqliteOpenMode.ReadOnly : SqliteOpenMode.ReadWriteCreate,
        Pooling = false,
    }.ToString();

    public static long Scalar(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return command.ExecuteScalar() is { } value and not DBNull ? Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture) : 0;
    }

    /// <summary>A prepared statement with the named parameters, reused for every commit.</summary>
    public static SqliteCommand Prepare(SqliteConnection connection, string sql, params string[] parameters)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var parameter in parameters)
        {
            command.Parameters.Add(new SqliteParameter(parameter, null));
        }
        command.Prepare();
        return command;
    }

    public static void Execute(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }
}
