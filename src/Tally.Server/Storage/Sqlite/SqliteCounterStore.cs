using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Options;
using Tally.Server.Alerts;
using Tally.Server.Backup;
using Tally.Server.Configuration;
using Tally.Server.Counters;
using Tally.Server.History;
using Tally.Server.Idempotency;
using Tally.Server.Observability;

namespace Tally.Server.Storage.Sqlite;

/// <summary>
/// The embedded default: one SQLite file that this process owns (a lock file keeps a second
/// Tally out). WAL with synchronous=FULL, so a committed batch is on disk; every counter is
/// also held in memory, so reads and the rules never wait for the disk.
/// </summary>
internal sealed class SqliteCounterStore : CachedCounterStore, IBackupSource
{
    private readonly IOptions<TallyOptions> _options;
    private readonly ILogger<SqliteCounterStore> _logger;
    private readonly TallyMetrics _metrics;
    private readonly HistoryOptions _historyOptions;
    private readonly TimeProvider _clock;

    private readonly Lock _healthLock = new();
    private SqliteConnection? _writer;
    private SqliteConnection? _health;
    private CounterLog? _log;
    private SqliteHistory? _history;
    private SqliteCommand? _insertRecord;
    private SqliteCommand? _findRecord;
    private SqliteCommand? _pruneRecords;
    private SqliteCommand? _oldestRecord;
    private SqliteCommand? _upsertAlertState;
    private SqliteCommand? _deleteAlertState;
    private SqliteCommand? _insertAlertEvent;
    private FileStream? _lockFile;

    public SqliteCounterStore(
        IOptions<TallyOptions> options, IOptions<QuotaOptions> quotas, IOptions<HistoryOptions> history, TimeProvider clock, TallyMetrics metrics,
        ILogger<SqliteCounterStore> logger, AlertCatalog alerts)
        : base(clock, options.Value.IdempotencyRetention, quotas.Value, history.Value)
    {
        Alerts = alerts;
        _metrics = metrics;
        _options = options;
        _historyOptions = history.Value;
        _clock = clock;
        _logger = logger;
        AcknowledgeBeforeWrite = options.Value.Durability == DurabilityMode.Async;
        Backups = new BackupFiles(options.Value.DataDir, logger);
    }

    public BackupFiles Backups { get; }

    public string DatabasePath => Path.Combine(_options.Value.DataDir, "tally.db");

    public override async Task OpenAsync(CancellationToken cancellationToken)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var dataDir = _options.Value.DataDir;
        try
        {
            PrepareDataDirectory(dataDir);
            _lockFile = OwnerOnly.Open(Path.Combine(dataDir, "tally.lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            RestrictFile(Path.Combine(dataDir, "tally.lock"));
            // A killed Tally could not delete the copy it was sending.
            Backups.DeleteLeftovers();
        }
        catch (IOException ex)
        {
            throw new StoreStartupException($"The data directory {Path.GetFullPath(dataDir)} is in use by another Tally process, or cannot be written ({ex.Message}).", ex);
        }
        catch (UnauthorizedAccessException ex)
        {
            throw new StoreStartupException($"The data directory {Path.GetFullPath(dataDir)} cannot be written ({ex.Message}).", ex);
        }

        if (File.Exists(DatabasePath))
        {
            try
            {
                SqliteSchema.Inspect(DatabasePath);
            }
            catch (StoreStartupException)
            {
                await DisposeAsync();
                throw;
            }
        }

        try
        {
            // A Tally file (checked above) or none: files an older Tally (or a copy) left readable by others are narrowed to 0600.
            foreach (var file in (string[])["tally.db", "tally.db-wal", "tally.db-shm", "tally.db-journal"])
            {
                RestrictFile(Path.Combine(dataDir, file));
            }
            // SQLite creates the -wal and -shm files with the database file's mode: the file comes first, 0600.
            if (!File.Exists(DatabasePath))
            {
                OwnerOnly.CreateFile(DatabasePath);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            await DisposeAsync();
            throw new StoreStartupException($"{DatabasePath} cannot be created ({ex.Message}).", ex);
        }

        try
        {
            _writer = new SqliteConnection(SqliteSchema.ConnectionString(DatabasePath, readOnly: false));
            _writer.Open();
            // FULL in both modes: with Durability=async the flush, not the acknowledgement, waits for the disk.
            SqliteSchema.Execute(_writer, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;");
            SqliteSchema.Migrate(_writer);
            PrepareWrites(_writer);
            Load(_writer);
            PrepareAlertWrites(_writer);
            LoadAlertStates(_writer);

            _health = new SqliteConnection(SqliteSchema.ConnectionString(DatabasePath, readOnly: true));
            _health.Open();
        }
        catch (SqliteException ex)
        {
            await DisposeAsync();
            throw new StoreStartupException(
                $"{DatabasePath} cannot be read as a Tally data file ({ex.Message}). It may be corrupt; it was not changed. Restore it from a backup or move it away.", ex);
        }

        _logger.LogInformation("SQLite store open at {Path} with {Count} counters (durability {Durability}) in {Milliseconds} ms (counters read in {LoadMilliseconds} ms)",
            Path.GetFullPath(DatabasePath), Cache.Count, _options.Value.Durability,
            (long)System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds, _loadMilliseconds);
    }

    /// <summary>
    /// The data directory, created 0700. An existing one is not changed (it may be shared, or not
    /// Tally's to change, like a mount point): a warning says so when others can enter it. The
    /// files in it are 0600 either way.
    /// </summary>
    private void PrepareDataDirectory(string dataDir)
    {
        if (!Directory.Exists(dataDir))
        {
            OwnerOnly.CreateDirectory(dataDir);
        }
        else if (OwnerOnly.IsOpenToOthers(dataDir))
        {
            _logger.LogWarning("The data directory {Path} is open to other users (mode {Mode}); Tally's files in it are 0600, but consider chmod 700",
                Path.GetFullPath(dataDir), OwnerOnly.ModeText(dataDir));
        }
    }

    private void RestrictFile(string path)
    {
        if (!OwnerOnly.Restrict(path))
        {
            _logger.LogWarning("{File} is open to other users (mode {Mode}) and this user cannot change its mode",
                Path.GetFullPath(path), OwnerOnly.ModeText(path));
        }
    }

    /// <summary>
    /// Idle upkeep: one bounded fold step of the counter log (see <see cref="CounterLog"/>) and of the history log
    /// (<see cref="SqliteHistory"/>), so that an idle server empties its logs. Runs on the commit loop, never alongside a commit.
    /// </summary>
    public override async ValueTask MaintainAsync(CancellationToken cancellationToken)
    {
        await base.MaintainAsync(cancellationToken);
        // The history log holds written changes only (with Durability=async, flushed ones): it folds whenever idle.
        if (_writer is { } historyWriter && WriteFailure is null)
        {
            _history?.MaintenanceStep(historyWriter);
        }
        // With Durability=async the cache may hold acknowledged changes not yet written: folding one
        // of them now would write part of a batch ahead of the rest. The flush goes first.
        if (_writer is not { } writer || _log is not { HasBacklog: true } log || UnflushedSince is not null || WriteFailure is not null)
        {
            return;
        }
        using var transaction = writer.BeginTransaction();
        try
        {
            log.MaintenanceStep(transaction, Cache.Get);
            transaction.Commit();
        }
        catch
        {
            log.RolledBack();
            throw;
        }
        log.Committed();
    }

    public override ValueTask<StoreHealth> CheckHealthAsync(CancellationToken cancellationToken)
    {
        try
        {
            lock (_healthLock)
            {
                if (_health is null)
                {
                    return ValueTask.FromResult(new StoreHealth(false, "SQLite store is not open"));
                }
                SqliteSchema.Scalar(_health, "SELECT version FROM tally_schema");
            }
            if (WriteFailure is { } failure && !ProbeWrite())
            {
                return ValueTask.FromResult(new StoreHealth(false, $"SQLite store cannot write: {failure}"));
            }
            return ValueTask.FromResult(new StoreHealth(true, $"SQLite store with {Cache.Count} counters"));
        }
        catch (SqliteException ex)
        {
            return ValueTask.FromResult(new StoreHealth(false, $"SQLite store does not answer: {ex.Message}"));
        }
    }

    /// <summary>
    /// After a failed write, readiness tries a real write of its own (on its own connection), so
    /// that a store taken out of a load balancer's rotation can come back without client traffic.
    /// </summary>
    private bool ProbeWrite()
    {
        try
        {
            // New blocks first (a full disk may still let SQLite rewrite pages it already has), then SQLite itself.
            var probeFile = Path.Combine(_options.Value.DataDir, "tally.probe");
            using (var file = OwnerOnly.Open(probeFile, FileMode.Create, FileAccess.Write, FileShare.None, FileOptions.DeleteOnClose))
            {
                file.Write(new byte[256 * 1024]);
                file.Flush(flushToDisk: true);
            }
            using var probe = new SqliteConnection(SqliteSchema.ConnectionString(DatabasePath, readOnly: false));
            probe.Open();
            SqliteSchema.Execute(probe, "PRAGMA busy_timeout = 1000; BEGIN IMMEDIATE; UPDATE tally_schema SET version = version; COMMIT;");
            WritesRecovered();
            return true;
        }
        catch (Exception ex) when (ex is SqliteException or IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    protected override ValueTask PersistAsync(
        IReadOnlyDictionary<string, Counter?> changes, IReadOnlyCollection<IdempotencyRecord> records, HistoryWrites history,
        CancellationToken cancellationToken)
    {
        Write(changes, records, history, fold: false);
        return ValueTask.CompletedTask;
    }

    /// <summary>One transaction: the counter changes (logged or folded), the new idempotency records, and their history.</summary>
    private void Write(IReadOnlyDictionary<string, Counter?> changes, IReadOnlyCollection<IdempotencyRecord> records, HistoryWrites? history, bool fold)
    {
        var writer = _writer ?? throw new InvalidOperationException("The SQLite store is not open.");
        var log = _log!;
        using var transaction = writer.BeginTransaction();
        try
        {
            log.Write(transaction, changes, Cache.Get, Cache.Count, fold);
            _insertRecord!.Transaction = transaction;
            foreach (var record in records)
            {
                var p = _insertRecord.Parameters;
                p[0].Value = record.Caller;
                p[1].Value = record.Key;
                p[2].Value = record.Fingerprint;
                p[3].Value = record.Outcome;
                p[4].Value = record.Size;
                p[5].Value = record.CreatedAt;
                _insertRecord.ExecuteNonQuery();
            }
            if (history is not null)
            {
                _history!.Write(transaction, history);
            }
            WriteAlerts(transaction);
            if (history is not null)
            {
                _history!.Commit(transaction);
            }
            else
            {
                transaction.Commit();
            }
        }
        catch
        {
            log.RolledBack();
            if (history is not null)
            {
                _history?.RolledBack();
            }
            throw;
        }
        log.Committed();
        _metrics.RecordStoreWrite();
    }

    public Task BackupToAsync(string path, CancellationToken cancellationToken)
    {
        try
        {
            // A connection of its own: SQLite copies a consistent snapshot while the writer goes on.
            using var source = new SqliteConnection(SqliteSchema.ConnectionString(DatabasePath, readOnly: true));
            using var destination = new SqliteConnection(SqliteSchema.ConnectionString(path, readOnly: false));
            source.Open();
            destination.Open();
            source.BackupDatabase(destination);
            // The copy's own log folded into its counters table: the file reads whole with any SQLite tool.
            CounterLog.FoldCopy(destination);
            SqliteHistory.FoldAll(destination, _historyOptions, _clock.GetUtcNow().ToUnixTimeMilliseconds());
        }
        catch (SqliteException ex)
        {
            // The contract of IBackupSource: a failed copy is an IOException, whatever the engine.
            throw new IOException(ex.Message, ex);
        }
        return Task.CompletedTask;
    }

    protected override IdempotencyRecord? FindIdempotencyRecord(string caller, string key, long notBefore)
    {
        var find = _findRecord ?? throw new InvalidOperationException("The SQLite store is not open.");
        find.Transaction = null;
        find.Parameters[0].Value = caller;
        find.Parameters[1].Value = key;
        find.Parameters[2].Value = notBefore;
        using var reader = find.ExecuteReader();
        if (!reader.Read())
        {
            return null;
        }
        var fingerprint = (byte[])reader.GetValue(0);
        var body = (byte[])reader.GetValue(3);
        var createdAt = reader.GetInt64(4);
        return reader.GetInt32(5) == 0
            ? new IdempotencyRecord(caller, key, fingerprint, [], createdAt)
            {
                Legacy = new StoredResponse(reader.GetInt32(1), reader.IsDBNull(2) ? null : reader.GetString(2), body),
            }
            : new IdempotencyRecord(caller, key, fingerprint, body, createdAt);
    }

    protected override IEnumerable<KeyValuePair<string, long>> LoadIdempotencyUsage()
    {
        using var command = _writer!.CreateCommand();
        command.CommandText = "SELECT caller, sum(size) FROM idempotency GROUP BY caller";
        using var reader = command.ExecuteReader();
        var usage = new List<KeyValuePair<string, long>>();
        while (reader.Read())
        {
            usage.Add(new(reader.GetString(0), reader.GetInt64(1)));
        }
        return usage;
    }

    protected override IReadOnlyList<(string Caller, long Size)> PruneIdempotencyRecords(long cutoff, int limit)
    {
        var prune = _pruneRecords ?? throw new InvalidOperationException("The SQLite store is not open.");
        using var transaction = _writer!.BeginTransaction();
        prune.Transaction = transaction;
        prune.Parameters[0].Value = cutoff;
        prune.Parameters[1].Value = limit;
        var pruned = new List<(string, long)>();
        using (var reader = prune.ExecuteReader())
        {
            while (reader.Read())
            {
                pruned.Add((reader.GetString(0), reader.GetInt64(1)));
            }
        }
        transaction.Commit();
        return pruned;
    }

    protected override long? OldestIdempotencyRecord(string caller)
    {
        var oldest = _oldestRecord ?? throw new InvalidOperationException("The SQLite store is not open.");
        oldest.Transaction = null;
        oldest.Parameters[0].Value = caller;
        return oldest.ExecuteScalar() is long createdAt ? createdAt : null;
    }

    public override ValueTask DisposeAsync()
    {
        foreach (var command in (SqliteCommand?[])[_insertRecord, _findRecord, _pruneRecords, _oldestRecord, _upsertAlertState, _deleteAlertState, _insertAlertEvent])
        {
            command?.Dispose();
        }
        lock (_healthLock)
        {
            _health?.Dispose();
            _health = null;
        }
        // Its read connections closed, like the health one, before the checkpoint below.
        _history?.Dispose();
        _history = null;
        if (_writer is { State: System.Data.ConnectionState.Open } writer)
        {
            try
            {
                if (_log is not null && WriteFailure is null)
                {
                    // A stopped Tally leaves its counters table complete, the log empty.
                    Write(new Dictionary<string, Counter?>(), [], history: null, fold: true);
                    SqliteHistory.FoldAll(writer, _historyOptions, _clock.GetUtcNow().ToUnixTimeMilliseconds());
                }
                // Everything into the main file, so a stopped Tally leaves one self-contained file behind.
                SqliteSchema.Execute(writer, "PRAGMA wal_checkpoint(TRUNCATE)");
            }
            catch (SqliteException ex)
            {
                _logger.LogWarning(ex, "Folding or checkpointing on close failed; the logs will be replayed at the next start");
            }
        }
        _log?.Dispose();
        _log = null;
        _writer?.Dispose();
        _writer = null;
        _lockFile?.Dispose();
        _lockFile = null;
        return ValueTask.CompletedTask;
    }

    private long _loadMilliseconds;

    private void Load(SqliteConnection connection)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        // One pass along the table's key (so in name order, each name once), then the cache built in bulk.
        var stored = CounterRows.ReadAll(connection);
        var count = stored.Count;
        Cache.Load(stored);
        stored = null;
        _log!.Replay(connection, Cache);
        if (count > 100_000)
        {
            // Hand back what reading a large file left behind before serving begins.
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        }
        _loadMilliseconds = (long)System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds;
    }

    protected override IReadOnlyList<HistoryBucket> ReadStoredHistory(string name, HistoryInterval interval, long from, long to)
    {
        var history = _history ?? throw new InvalidOperationException("The SQLite store is not open.");
        try
        {
            return history.Read(name, interval, from, to);
        }
        catch (SqliteException ex)
        {
            throw new StoreUnavailableException($"The SQLite file cannot be read ({ex.Message}).", ex);
        }
    }

    protected override int PruneStoredHistory(HistoryInterval interval, long before, int limit)
    {
        var history = _history ?? throw new InvalidOperationException("The SQLite store is not open.");
        return history.Prune(_writer!, interval, before, limit);
    }

    private void PrepareWrites(SqliteConnection connection)
    {
        _log = new CounterLog(connection, _options.Value.CounterLogFoldAfter);
        _history = new SqliteHistory(connection, DatabasePath, _options.Value.CounterLogFoldAfter, _historyOptions, _clock.GetUtcNow().ToUnixTimeMilliseconds());

        // A record that is older than the retention window is replaced, not refused. Format 1: an OutcomeCodec encoding.
        _insertRecord = SqliteSchema.Prepare(connection,
            "INSERT OR REPLACE INTO idempotency (caller, key, fingerprint, status, etag, body, created_at, format, size) VALUES ($caller, $key, $fingerprint, 0, NULL, $outcome, $created, 1, $size)",
            "$caller", "$key", "$fingerprint", "$outcome", "$size", "$created");
        _findRecord = SqliteSchema.Prepare(connection,
            "SELECT fingerprint, status, etag, body, created_at, format FROM idempotency WHERE caller = $caller AND key = $key AND created_at >= $notBefore",
            "$caller", "$key", "$notBefore");
        // Oldest first, a bounded step at a time (the created_at index finds them).
        _pruneRecords = SqliteSchema.Prepare(connection, """
            DELETE FROM idempotency WHERE (caller, key) IN
                (SELECT caller, key FROM idempotency WHERE created_at < $cutoff ORDER BY created_at LIMIT $limit)
            RETURNING caller, size
            """, "$cutoff", "$limit");
        _oldestRecord = SqliteSchema.Prepare(connection, "SELECT min(created_at) FROM idempotency WHERE caller = $caller", "$caller");
    }

    // ---- Alerts: the firing states are loaded with the counters; a commit's state changes and outbox events are written
    // in its transaction (Write), so an event exists exactly when its change does. With Durability=async they wait for
    // the flush with the counters, and the sender (which reads the file) sees them only once they are on disk. ----

    private void PrepareAlertWrites(SqliteConnection connection)
    {
        _upsertAlertState = SqliteSchema.Prepare(connection, """
            INSERT INTO alert_states (alert_id, counter, revision) VALUES ($alert, $counter, $revision)
            ON CONFLICT (alert_id, counter) DO UPDATE SET revision = excluded.revision
            """, "$alert", "$counter", "$revision");
        _deleteAlertState = SqliteSchema.Prepare(connection, "DELETE FROM alert_states WHERE alert_id = $alert AND counter = $counter", "$alert", "$counter");
        _insertAlertEvent = SqliteSchema.Prepare(connection, """
            INSERT INTO alert_outbox (id, alert_id, type, payload, created_at, attempts, next_attempt_at)
            VALUES ($id, $alert, $type, $payload, $created, 0, $created)
            """, "$id", "$alert", "$type", "$payload", "$created");
    }

    private void LoadAlertStates(SqliteConnection connection)
    {
        // States of alerts deleted meanwhile (or under an older revision) are harmless; they go as their counters change.
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT alert_id, counter, revision FROM alert_states";
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            AlertStates.Firing[(reader.GetString(0), reader.GetString(1))] = reader.GetInt64(2);
        }
    }

    private void WriteAlerts(SqliteTransaction transaction)
    {
        if (AlertWrites.IsEmpty)
        {
            return;
        }
        _upsertAlertState!.Transaction = _deleteAlertState!.Transaction = _insertAlertEvent!.Transaction = transaction;
        foreach (var ((alertId, counter), revision) in AlertWrites.States)
        {
            var command = revision is null ? _deleteAlertState : _upsertAlertState;
            command.Parameters[0].Value = alertId;
            command.Parameters[1].Value = counter;
            if (revision is { } firing)
            {
                command.Parameters[2].Value = firing;
            }
            command.ExecuteNonQuery();
        }
        foreach (var e in AlertWrites.Events)
        {
            var p = _insertAlertEvent.Parameters;
            p[0].Value = e.Id;
            p[1].Value = e.AlertId;
            p[2].Value = e.TypeName;
            p[3].Value = e.Payload;
            p[4].Value = e.CreatedAt;
            _insertAlertEvent.ExecuteNonQuery();
        }
    }
}
