using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;
using Tally.Server.Alerts;
using Tally.Server.Configuration;
using Tally.Server.Counters;
using Tally.Server.History;
using Tally.Server.Idempotency;
using Tally.Server.Observability;
using Tally.Server.Pipeline;

namespace Tally.Server.Storage.Postgres;

/// <summary>
/// Counters in PostgreSQL, shared by any number of stateless instances. There is no authoritative cache:
/// every read asks the database, and a commit locks the rows it touches (in name order, so two instances
/// never deadlock on each other's batches), loads what the <see cref="BatchApplier"/> needs, and writes the
/// plan back with array parameters in one round trip before it commits. Many increments of one hot counter
/// in a batch are one row update. A 2xx means PostgreSQL committed it (with its <c>synchronous_commit</c>).
/// </summary>
/// <param name="events">Sends each commit's changes to the other instances (live events); none in store-only tests.</param>
internal sealed class PostgresCounterStore(
    NpgsqlDataSource dataSource, IOptions<TallyOptions> options, IOptions<QuotaOptions> quotas, IOptions<HistoryOptions> history,
    TimeProvider clock, TallyMetrics metrics, ILogger<PostgresCounterStore> logger, AlertCatalog alerts, PostgresEventRelay? events = null)
    : ICounterStore, IStoreUpkeep
{
    private const string Columns = "name, value, initial, min, max, version, created_at, updated_at, created_by";

    /// <summary>Serialization failures, deadlocks and a key committed meanwhile by another instance: retried here, never a 503.</summary>
    private const int MaxAttempts = 10;

    private const int PruneStep = 5000;
    private static readonly TimeSpan PruneEvery = TimeSpan.FromMinutes(1);

    private readonly BatchApplier _applier = new(quotas.Value, options.Value.IdempotencyRetention);
    private readonly PostgresCommitState _state = new();
    private readonly HistoryWrites _history = new();
    private readonly AlertStateMap _alertStates = new();
    private long _count;
    private long _nextPruneAt;
    private long _nextHistoryPruneAt;

    /// <summary>Expired history buckets deleted per interval and step.</summary>
    private const int HistoryPruneStep = 2000;

    /// <summary>The advisory lock a fold step holds (transaction-scoped): one folder at a time over all instances.</summary>
    internal const long FoldLock = 0x54414C59_00000002; // "TALY", 2

    /// <summary>
    /// How often, under load, an instance folds the history log: each counter's entries of that long become one upsert
    /// per interval (over 10,000 names at 2,000 increments/s, one for about 6 increments), and a read scans about that
    /// much log. Once commits stop, upkeep folds a step about every second.
    /// </summary>
    private const long FoldEveryMs = 30_000;

    /// <summary>
    /// A fold step, a transaction of its own, takes the oldest log rows (commits) up to this many entries (counters
    /// changed or deleted; a commit's row is never split) or <see cref="FoldStepRows"/> rows.
    /// </summary>
    internal const int FoldStepEntries = 50_000;

    internal const int FoldStepRows = 10_000;

    private readonly CancellationTokenSource _stopping = new();
    private readonly BackgroundFold _fold = new(FoldEveryMs);
    private long _commits;
    private long _commitsAtUpkeep;

    public long Count => Interlocked.Read(ref _count);

    public async Task OpenAsync(CancellationToken cancellationToken)
    {
        try
        {
            await PostgresSchema.MigrateAsync(dataSource, cancellationToken);
            await RefreshCountAsync(cancellationToken);
        }
        catch (NpgsqlException ex)
        {
            throw new StoreStartupException($"PostgreSQL cannot be used ({ex.Message}). Check the Postgres connection string and that the server answers.", ex);
        }
        var connection = new NpgsqlConnectionStringBuilder(dataSource.ConnectionString);
        logger.LogInformation("PostgreSQL store open ({Host}, database {Database}) with {Count} counters", connection.Host, connection.Database, Count);
    }

    public async ValueTask<Counter?> GetAsync(string name, CancellationToken cancellationToken)
    {
        try
        {
            await using var command = dataSource.CreateCommand($"SELECT {Columns} FROM counters WHERE name = $1 AND value IS NOT NULL");
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = name });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            return await reader.ReadAsync(cancellationToken) ? ReadCounter(reader) : null;
        }
        catch (Exception ex) when (IsUnavailable(ex, cancellationToken))
        {
            throw Unavailable(ex);
        }
    }

    public async ValueTask<IReadOnlyList<Counter>> ListAsync(string prefix, string? after, int limit, CancellationToken cancellationToken)
    {
        try
        {
            // Names are ASCII below '~', so [prefix, prefix + '~') is exactly the names that start with prefix, in index order.
            await using var command = dataSource.CreateCommand($"""
                SELECT {Columns} FROM counters
                WHERE name >= $1 AND name < $1 || '~' AND ($2::text IS NULL OR name > $2) AND value IS NOT NULL
                ORDER BY name LIMIT $3
                """);
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = prefix });
            command.Parameters.Add(new NpgsqlParameter { Value = (object?)after ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
            command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = limit });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            var page = new List<Counter>(Math.Min(limit, 1024));
            while (await reader.ReadAsync(cancellationToken))
            {
                page.Add(ReadCounter(reader));
            }
            return page;
        }
        catch (Exception ex) when (IsUnavailable(ex, cancellationToken))
        {
            throw Unavailable(ex);
        }
    }

    /// <summary>
    /// The highest values under the prefix. There is no index on value (it would make every increment update an index
    /// and lose PostgreSQL's HOT updates), so this reads the prefix's rows: a query for dashboards, not for every request.
    /// </summary>
    public async ValueTask<IReadOnlyList<Counter>> TopAsync(string prefix, int limit, CancellationToken cancellationToken)
    {
        try
        {
            await using var command = dataSource.CreateCommand($"""
                SELECT {Columns} FROM counters
                WHERE name >= $1 AND name < $1 || '~' AND value IS NOT NULL
                ORDER BY value DESC, name LIMIT $2
                """);
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = prefix });
            command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = limit });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            var top = new List<Counter>(Math.Min(limit, 1024));
            while (await reader.ReadAsync(cancellationToken))
            {
                top.Add(ReadCounter(reader));
            }
            return top;
        }
        catch (Exception ex) when (IsUnavailable(ex, cancellationToken))
        {
            throw Unavailable(ex);
        }
    }

    public async ValueTask<IReadOnlyList<RequestOutcome>> CommitAsync(IReadOnlyList<PendingRequest> batch, CancellationToken cancellationToken)
    {
        var names = NamesOf(batch);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                var outcomes = await CommitOnceAsync(batch, names, cancellationToken);
                metrics.RecordStoreWrite();
                _commits++;
                _fold.StartIfDue(clock.GetUtcNow().ToUnixTimeMilliseconds(), () => FoldAsync(_stopping.Token));
                await PruneIfDueAsync(cancellationToken);
                return outcomes;
            }
            catch (PostgresException ex) when (attempt < MaxAttempts && IsRetryable(ex))
            {
                // Another instance got there first (a deadlock, or the same Idempotency-Key committed meanwhile):
                // the batch is applied again from scratch on what is now committed.
                logger.LogDebug("Commit attempt {Attempt} met {SqlState}; retrying", attempt, ex.SqlState);
                await Task.Delay(Random.Shared.Next(1, 5 * attempt), cancellationToken);
            }
        }
    }

    public async ValueTask MaintainAsync(CancellationToken cancellationToken)
    {
        try
        {
            await RefreshCountAsync(cancellationToken);
        }
        catch (Exception ex) when (IsUnavailable(ex, cancellationToken))
        {
            // Readiness reports the outage; upkeep simply waits for the database to answer again.
            logger.LogDebug("Upkeep skipped: PostgreSQL does not answer ({Reason})", ex.Message);
            return;
        }
        // Upkeep also runs in the short pauses of a busy loop: a fold there would hold up the next commit, and fold a
        // second of log, too little to add many commits of a counter together. Only once commits stopped (none since
        // the last upkeep), one step here, so an idle database ends with no log.
        var committing = _commits != _commitsAtUpkeep;
        _commitsAtUpkeep = _commits;
        if (_fold.IsRunning)
        {
            // A background fold under way: upkeep runs on the commit loop, so it never waits for one; what that fold
            // writes (its rows uncommitted, invisible to a prune now) is folded and pruned at the next upkeep.
            return;
        }
        if (!committing)
        {
            await _fold.Run(FoldAsync(cancellationToken, steps: 1));
        }
        await PruneIfDueAsync(cancellationToken);
    }

    /// <summary>
    /// Once a minute (under steady load the loop is never idle, so also after commits), a step of pruning in
    /// a transaction of its own. It never decides a commit's answer: the commit is durable before it runs.
    /// </summary>
    private async Task PruneIfDueAsync(CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
        await PruneHistoryIfDueAsync(now, cancellationToken);
        if (now < _nextPruneAt)
        {
            return;
        }
        try
        {
            await PruneAsync(now, cancellationToken);
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
        {
            logger.LogDebug("Pruning expired idempotency records failed; it is tried again later ({Reason})", ex.Message);
        }
    }

    public async ValueTask<StoreHealth> CheckHealthAsync(CancellationToken cancellationToken)
    {
        try
        {
            await using var command = dataSource.CreateCommand("SELECT live FROM counter_totals WHERE id = 1");
            var live = (long)(await command.ExecuteScalarAsync(cancellationToken))!;
            Interlocked.Exchange(ref _count, live);
            return new StoreHealth(true, $"PostgreSQL store with {live} counters");
        }
        catch (Exception ex) when (ex is NpgsqlException or InvalidOperationException or TimeoutException)
        {
            return new StoreHealth(false, $"PostgreSQL does not answer: {ex.Message}");
        }
    }

    /// <summary>Stops a background fold (its step rolls back; the log stays for the next fold). The data source is the container's.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_stopping.IsCancellationRequested)
        {
            return;
        }
        await _stopping.CancelAsync();
        await _fold.Current;
    }

    private async Task<IReadOnlyList<RequestOutcome>> CommitOnceAsync(IReadOnlyList<PendingRequest> batch, string[] names, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
        var notBefore = now - (long)_applier.IdempotencyRetention.TotalMilliseconds;
        _state.Clear();
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);

        var (callers, keys) = IdempotencyKeysOf(batch);
        var alertSet = alerts.Current;
        var watched = WatchedNames(alertSet, names);
        var placeholders = await LoadAsync(connection, transaction, names, callers, keys, notBefore, watched, cancellationToken);

        // A commit that may create or delete counters locks the quota counts (after the rows, in one fixed order).
        if (placeholders.Length > 0 || HasDeletion(batch))
        {
            await LockQuotaCountsAsync(connection, transaction, batch, cancellationToken);
        }

        var plan = _applier.Apply(batch, _state, now);
        var changes = CounterChanges.Of(batch, plan.Outcomes); // once, for history and alerts
        RecordHistory(changes, now);
        var alertOutcome = watched.Length > 0 ? AlertEvaluator.Evaluate(alertSet, changes, _alertStates, now) : null;
        await WriteAsync(connection, transaction, plan, placeholders, notBefore, _history, HistoryIntervals.StartOf(HistoryInterval.Minute, now),
            alertOutcome, events, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        Interlocked.Add(ref _count, plan.CounterDelta);
        if (alertOutcome is not null)
        {
            alerts.Committed(alertOutcome);
        }
        return plan.Outcomes;
    }

    /// <summary>
    /// One round trip: a placeholder row for every name that does not exist yet, every name's row locked in
    /// name order (one global order, so commits on different instances never deadlock on counters), the named
    /// idempotency records, the callers' record bytes. Returns the names that got a placeholder (not counters yet).
    /// </summary>
    private async Task<string[]> LoadAsync(
        NpgsqlConnection connection, NpgsqlTransaction transaction, string[] names, string[] callers, string[] keys, long notBefore,
        string[] watched, CancellationToken cancellationToken)
    {
        await using var load = new NpgsqlBatch(connection, transaction);
        // A concurrent creation of the same name on another instance waits here for this commit, or this one for it.
        load.BatchCommands.Add(Command("INSERT INTO counters (name) SELECT unnest($1::text[]) ORDER BY 1 ON CONFLICT (name) DO NOTHING", [names]));
        load.BatchCommands.Add(Command($"SELECT {Columns} FROM counters WHERE name = ANY($1) ORDER BY name FOR UPDATE", [names]));
        if (callers.Length > 0)
        {
            load.BatchCommands.Add(Command("""
                SELECT caller, key, fingerprint, outcome, created_at FROM idempotency
                WHERE (caller, key) IN (SELECT * FROM unnest($1::text[], $2::text[])) AND created_at >= $3
                """, [callers, keys, notBefore]));
            load.BatchCommands.Add(Command("""
                SELECT u.caller, u.bytes, (SELECT min(created_at) FROM idempotency AS i WHERE i.caller = u.caller)
                FROM idempotency_usage AS u WHERE u.caller = ANY($1)
                """, [callers.Distinct(StringComparer.Ordinal).ToArray()]));
        }
        AddAlertStateLoad(load, watched);
        await using var reader = await load.ExecuteReaderAsync(cancellationToken);
        var placeholders = new List<string>();
        while (await reader.ReadAsync(cancellationToken))
        {
            if (reader.IsDBNull(1))
            {
                placeholders.Add(reader.GetString(0)); // this commit's own placeholder: the counter does not exist
                continue;
            }
            var counter = ReadCounter(reader);
            _state.Counters[counter.Name] = counter;
        }
        if (callers.Length > 0)
        {
            await reader.NextResultAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                var record = new IdempotencyRecord(reader.GetString(0), reader.GetString(1), (byte[])reader[2], (byte[])reader[3], reader.GetInt64(4));
                _state.Records[(record.Caller, record.Key)] = record;
            }
            await reader.NextResultAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                _state.Usage[reader.GetString(0)] = (reader.GetInt64(1), reader.IsDBNull(2) ? null : reader.GetInt64(2));
            }
        }
        await ReadAlertStatesAsync(reader, watched, cancellationToken);
        return [.. placeholders];
    }

    /// <summary>
    /// A commit that may create or delete counters locks the store's total, then the requesting keys' and the
    /// deleted counters' creators' counts (in key order), so that quotas hold across instances: two instances
    /// cannot both take the last free place, and deletions update the counts in the same order.
    /// </summary>
    private async Task LockQuotaCountsAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, IReadOnlyList<PendingRequest> batch, CancellationToken cancellationToken)
    {
        var owners = batch.Select(request => request.Requester.KeyId)
            .Concat(_state.Counters.Values.Select(counter => counter?.CreatedBy))
            .OfType<string>().Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
        await using var counts = new NpgsqlBatch(connection, transaction);
        counts.BatchCommands.Add(Command("SELECT live FROM counter_totals WHERE id = 1 FOR UPDATE"));
        counts.BatchCommands.Add(Command("SELECT key_id, live FROM counter_owners WHERE key_id = ANY($1) ORDER BY key_id FOR UPDATE", [owners]));
        await using var reader = await counts.ExecuteReaderAsync(cancellationToken);
        if (await reader.ReadAsync(cancellationToken))
        {
            _state.Total = reader.GetInt64(0);
        }
        await reader.NextResultAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            _state.Owned[reader.GetString(0)] = reader.GetInt64(1);
        }
    }

    /// <summary>The commit's history, from its changes (a retried attempt starts again from its own outcomes).</summary>
    private void RecordHistory(IReadOnlyList<CounterChange> changes, long now)
    {
        _history.Clear();
        _history.Record(changes, now, history.Value.Enabled);
    }

    /// <summary>One round trip: changed rows, deletions, unused placeholders, records, history, the quotas' counts, and the commit's notification.</summary>
    private static async Task WriteAsync(
        NpgsqlConnection connection, NpgsqlTransaction transaction, CommitPlan plan, string[] placeholders, long notBefore, HistoryWrites history,
        long minute, AlertOutcome? alerts, PostgresEventRelay? events, CancellationToken cancellationToken)
    {
        await using var write = new NpgsqlBatch(connection, transaction);
        var changed = plan.Changes.Values.OfType<Counter>().ToArray();
        if (changed.Length > 0)
        {
            write.BatchCommands.Add(Command("""
                UPDATE counters SET value = u.value, initial = u.initial, min = u.min, max = u.max, version = u.version,
                    created_at = u.created_at, updated_at = u.updated_at, created_by = u.created_by
                FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], $9::text[])
                    AS u (name, value, initial, min, max, version, created_at, updated_at, created_by)
                WHERE counters.name = u.name
                """, [changed.Select(c => c.Name).ToArray(), changed.Select(c => c.Value).ToArray(), changed.Select(c => c.Initial).ToArray(),
                changed.Select(c => c.Min).ToArray(), changed.Select(c => c.Max).ToArray(), changed.Select(c => c.Version).ToArray(),
                changed.Select(c => c.CreatedAt).ToArray(), changed.Select(c => c.UpdatedAt).ToArray(), changed.Select(c => c.CreatedBy).ToArray()]));
        }
        var deleted = plan.Changes.Where(change => change.Value is null).Select(change => change.Key).ToArray();
        if (deleted.Length > 0)
        {
            write.BatchCommands.Add(Command("DELETE FROM counters WHERE name = ANY($1)", [deleted]));
        }
        if (placeholders.Length > 0)
        {
            write.BatchCommands.Add(Command("DELETE FROM counters WHERE name = ANY($1) AND value IS NULL", [placeholders]));
        }
        AddHistoryLog(write, history, minute);
        if (plan.Records.Count > 0)
        {
            var records = plan.Records.Values.ToArray();
            var callers = records.Select(r => r.Caller).ToArray();
            var keys = records.Select(r => r.Key).ToArray();
            // An expired record of the same key is replaced; a live one committed meanwhile by another
            // instance makes the insert fail, and the retry replays it instead of applying twice.
            write.BatchCommands.Add(Command("""
                WITH gone AS (
                    DELETE FROM idempotency WHERE (caller, key) IN (SELECT * FROM unnest($1::text[], $2::text[])) AND created_at < $3
                    RETURNING caller, size
                )
                UPDATE idempotency_usage AS u SET bytes = u.bytes - g.total
                FROM (SELECT caller, sum(size) AS total FROM gone GROUP BY caller) AS g WHERE u.caller = g.caller
                """, [callers, keys, notBefore]));
            write.BatchCommands.Add(Command("""
                INSERT INTO idempotency (caller, key, fingerprint, outcome, size, created_at)
                SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bytea[], $5::bigint[], $6::bigint[])
                """, [callers, keys, records.Select(r => r.Fingerprint).ToArray(), records.Select(r => r.Outcome).ToArray(),
                records.Select(r => r.Size).ToArray(), records.Select(r => r.CreatedAt).ToArray()]));
            write.BatchCommands.Add(Command("""
                INSERT INTO idempotency_usage (caller, bytes) SELECT * FROM unnest($1::text[], $2::bigint[]) ORDER BY 1
                ON CONFLICT (caller) DO UPDATE SET bytes = idempotency_usage.bytes + excluded.bytes
                """, [plan.RecordBytes.Keys.ToArray(), plan.RecordBytes.Values.ToArray()]));
        }
        if (plan.Owners.Count > 0)
        {
            write.BatchCommands.Add(Command("""
                INSERT INTO counter_owners (key_id, live) SELECT * FROM unnest($1::text[], $2::bigint[]) ORDER BY 1
                ON CONFLICT (key_id) DO UPDATE SET live = counter_owners.live + excluded.live
                """, [plan.Owners.Keys.ToArray(), plan.Owners.Values.ToArray()]));
        }
        if (plan.CounterDelta != 0)
        {
            write.BatchCommands.Add(Command("UPDATE counter_totals SET live = live + $1 WHERE id = 1", [plan.CounterDelta]));
        }
        AddAlertWrites(write, alerts);
        events?.AddNotifications(write, plan.Changes, alerts);
        if (write.BatchCommands.Count > 0)
        {
            await write.ExecuteNonQueryAsync(cancellationToken);
        }
    }

    /// <summary>
    /// The history of the commit, in its write round trip: one row appended to <c>history_log</c> with the commit's minute
    /// buckets and its deletions. A read drops what was stored or logged of a deleted counter before its deletion, and
    /// the fold that reaches the row deletes the stored buckets: a commit never writes <c>history</c>, so it never waits
    /// for a fold's row locks. Upserting the minute, hour and day buckets of every changed counter here
    /// cost three index probes and row versions per counter; the log row is one insert per commit, however many
    /// counters it changed, and <see cref="FoldAsync"/> adds it to the buckets later, many commits of a counter at once.
    /// </summary>
    private static void AddHistoryLog(NpgsqlBatch write, HistoryWrites history, long minute)
    {
        if (history.IsEmpty)
        {
            return;
        }
        var cleared = new List<string>();
        var count = 0;
        foreach (var counter in history.Counters)
        {
            if (counter.ClearsStored)
            {
                cleared.Add(counter.Name);
            }
            count += counter.Deltas.Count(delta => delta.Interval == HistoryInterval.Minute);
        }
        var names = new string[count];
        var increments = new long[count];
        var decrements = new long[count];
        var sets = new long[count];
        var ends = new long[count];
        var i = 0;
        foreach (var counter in history.Counters)
        {
            foreach (var delta in counter.Deltas)
            {
                if (delta.Interval != HistoryInterval.Minute)
                {
                    continue;
                }
                names[i] = counter.Name;
                increments[i] = delta.Bucket.Increments;
                decrements[i] = delta.Bucket.Decrements;
                sets[i] = delta.Bucket.Sets;
                ends[i] = delta.Bucket.Value;
                i++;
            }
        }
        write.BatchCommands.Add(Command("""
            INSERT INTO history_log (minute, cleared, names, increments, decrements, sets, ends)
            VALUES ($1, NULLIF($2::text[], '{}'), $3, $4, $5, $6, $7)
            """, [minute, cleared.ToArray(), names, increments, decrements, sets, ends]));
    }

    /// <summary>
    /// A fold's writes into the buckets: the history of deleted counters, then every bucket delta as one upsert of arrays
    /// (sums saturate at 2^63-1 rather than overflow), in name order.
    /// </summary>
    private static void AddHistoryWrites(NpgsqlBatch write, HistoryWrites history)
    {
        if (history.IsEmpty)
        {
            return;
        }
        var cleared = history.Counters.Where(counter => counter.ClearsStored).Select(counter => counter.Name).ToArray();
        if (cleared.Length > 0)
        {
            write.BatchCommands.Add(Command("DELETE FROM history WHERE name = ANY($1)", [cleared]));
        }
        var count = history.DeltaCount;
        if (count == 0)
        {
            return;
        }
        var names = new string[count];
        var periods = new short[count];
        var starts = new long[count];
        var increments = new long[count];
        var decrements = new long[count];
        var sets = new long[count];
        var values = new long[count];
        var i = 0;
        foreach (var counter in history.Counters.OrderBy(counter => counter.Name, StringComparer.Ordinal))
        {
            foreach (var delta in counter.Deltas)
            {
                names[i] = counter.Name;
                periods[i] = (short)delta.Interval;
                starts[i] = delta.Bucket.Start;
                increments[i] = delta.Bucket.Increments;
                decrements[i] = delta.Bucket.Decrements;
                sets[i] = delta.Bucket.Sets;
                values[i] = delta.Bucket.Value;
                i++;
            }
        }
        write.BatchCommands.Add(Command("""
            INSERT INTO history AS h (name, period, start, increments, decrements, sets, value)
            SELECT * FROM unnest($1::text[], $2::smallint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[])
            ON CONFLICT (name, period, start) DO UPDATE SET
                increments = CASE WHEN h.increments > 9223372036854775807 - excluded.increments THEN 9223372036854775807 ELSE h.increments + excluded.increments END,
                decrements = CASE WHEN h.decrements > 9223372036854775807 - excluded.decrements THEN 9223372036854775807 ELSE h.decrements + excluded.decrements END,
                sets = CASE WHEN h.sets > 9223372036854775807 - excluded.sets THEN 9223372036854775807 ELSE h.sets + excluded.sets END,
                value = excluded.value
            """, [names, periods, starts, increments, decrements, sets, values]));
    }

    /// <summary>
    /// The stored buckets with the log's entries of the counter added, in one statement (one snapshot: a fold that
    /// commits meanwhile moved entries from the log to the buckets either wholly before it or wholly after). The log
    /// part scans the log, which folding keeps to about <see cref="FoldEveryMs"/> of commits.
    /// </summary>
    public async ValueTask<IReadOnlyList<HistoryBucket>> ReadHistoryAsync(
        string name, HistoryInterval interval, long from, long to, CancellationToken cancellationToken)
    {
        try
        {
            await using var command = dataSource.CreateCommand("""
                SELECT false, 0::bigint AS seq, start, increments, decrements, sets, value, false FROM history
                WHERE name = $1 AND period = $2 AND start >= $3 AND start < $4
                UNION ALL
                SELECT true, seq, minute, increments[at], decrements[at], sets[at], ends[at], coalesce($1 = ANY(cleared), false)
                FROM (SELECT seq, minute, cleared, increments, decrements, sets, ends, array_position(names, $1::text) AS at FROM history_log) AS l
                WHERE at IS NOT NULL OR $1 = ANY(cleared)
                ORDER BY 1, 2, 3
                """);
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = name });
            command.Parameters.Add(new NpgsqlParameter<short> { TypedValue = (short)interval });
            command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = from });
            command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = to });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            var buckets = new List<HistoryBucket>();
            HistoryWrites? logged = null;
            while (await reader.ReadAsync(cancellationToken))
            {
                if (!reader.GetBoolean(0))
                {
                    buckets.Add(new HistoryBucket(reader.GetInt64(2), reader.GetInt64(3), reader.GetInt64(4), reader.GetInt64(5), reader.GetInt64(6)));
                    continue;
                }
                logged ??= new HistoryWrites();
                if (reader.GetBoolean(7))
                {
                    logged.Add(name, null);
                }
                if (!reader.IsDBNull(3))
                {
                    logged.Add(name, new HistoryBucket(reader.GetInt64(2), reader.GetInt64(3), reader.GetInt64(4), reader.GetInt64(5), reader.GetInt64(6)));
                }
            }
            if (logged?.Find(name) is not { } write)
            {
                return buckets;
            }
            // As a fold would: a bucket past its retention is never written from the log.
            logged.DropBefore(interval, history.Value.OldestKept(interval, clock.GetUtcNow().ToUnixTimeMilliseconds()));
            return write.Over(interval, buckets, from, to);
        }
        catch (Exception ex) when (IsUnavailable(ex, cancellationToken))
        {
            throw Unavailable(ex);
        }
    }

    /// <summary>
    /// Fold steps (at most <paramref name="steps"/>) until the log is shorter than a step, or another instance is folding.
    /// Failures wait for the next fold.
    /// </summary>
    private async Task FoldAsync(CancellationToken cancellationToken, int steps = int.MaxValue)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopping.Token);
        try
        {
            for (var step = 0; step < steps && await FoldStepAsync(linked.Token) is { Full: true }; step++)
            {
            }
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException or OperationCanceledException or InvalidOperationException)
        {
            logger.LogDebug("Folding the history log failed; it is tried again later ({Reason})", ex.Message);
        }
    }

    /// <summary>
    /// One fold step, one transaction: under the fold lock (taken without waiting: another instance folding skips this
    /// one), the oldest <see cref="FoldStepRows"/> log rows are deleted and added to the buckets, per counter the sums of
    /// all its entries and the last entry's value. A kill rolls the whole step back. Taking a prefix of the committed
    /// rows in seq order is safe though commits in flight hold lower seqs: a counter's entries commit in seq order (its
    /// row lock comes first), so a step never holds a counter's later entry without its earlier ones, and a later step
    /// only later ones. Buckets already past their retention are left out (a prune may have deleted them).
    /// Returns the rows folded (-1 when another instance holds the lock), and whether the step was as large as allowed.
    /// </summary>
    internal async Task<(int Rows, bool Full)> FoldStepAsync(CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using (var locking = new NpgsqlCommand($"SELECT pg_try_advisory_xact_lock({FoldLock})", connection, transaction))
        {
            if (!(bool)(await locking.ExecuteScalarAsync(cancellationToken))!)
            {
                return (-1, false);
            }
        }
        var rows = new List<(long Seq, long Minute, string[]? Cleared, string[] Names, long[] Increments, long[] Decrements, long[] Sets, long[] Ends)>();
        var entries = 0L;
        await using (var take = new NpgsqlCommand("""
            WITH oldest AS (
                SELECT seq, sum(cardinality(names) + coalesce(cardinality(cleared), 0)) OVER (ORDER BY seq) AS upto,
                    cardinality(names) + coalesce(cardinality(cleared), 0) AS own
                FROM history_log ORDER BY seq LIMIT $1
            )
            DELETE FROM history_log WHERE seq IN (SELECT seq FROM oldest WHERE upto - own < $2)
            RETURNING seq, minute, cleared, names, increments, decrements, sets, ends
            """, connection, transaction))
        {
            take.Parameters.Add(new NpgsqlParameter<int> { TypedValue = FoldStepRows });
            take.Parameters.Add(new NpgsqlParameter<long> { TypedValue = FoldStepEntries });
            await using var reader = await take.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                rows.Add((reader.GetInt64(0), reader.GetInt64(1), reader.IsDBNull(2) ? null : reader.GetFieldValue<string[]>(2),
                    reader.GetFieldValue<string[]>(3), reader.GetFieldValue<long[]>(4), reader.GetFieldValue<long[]>(5),
                    reader.GetFieldValue<long[]>(6), reader.GetFieldValue<long[]>(7)));
            }
        }
        if (rows.Count == 0)
        {
            return (0, false);
        }
        rows.Sort((a, b) => a.Seq.CompareTo(b.Seq));
        var folded = new HistoryWrites();
        foreach (var row in rows)
        {
            foreach (var name in row.Cleared ?? [])
            {
                folded.Add(name, null);
            }
            entries += row.Names.Length + (row.Cleared?.Length ?? 0);
            for (var i = 0; i < row.Names.Length; i++)
            {
                folded.Add(row.Names[i], new HistoryBucket(row.Minute, row.Increments[i], row.Decrements[i], row.Sets[i], row.Ends[i]));
            }
        }
        foreach (var interval in HistoryIntervals.All)
        {
            folded.DropBefore(interval, history.Value.OldestKept(interval, now));
        }
        await using (var write = new NpgsqlBatch(connection, transaction))
        {
            AddHistoryWrites(write, folded);
            if (write.BatchCommands.Count > 0)
            {
                await write.ExecuteNonQueryAsync(cancellationToken);
            }
        }
        await transaction.CommitAsync(cancellationToken);
        return (rows.Count, rows.Count == FoldStepRows || entries >= FoldStepEntries);
    }

    /// <summary>
    /// Once a minute (again a second later while steps come back full), a bounded step of deleting history buckets past
    /// their retention, oldest first, in a transaction of its own; instances pruning at once skip each other's rows.
    /// </summary>
    private async Task PruneHistoryIfDueAsync(long now, CancellationToken cancellationToken)
    {
        if (now < _nextHistoryPruneAt)
        {
            return;
        }
        _nextHistoryPruneAt = now + 60_000;
        try
        {
            await using var prune = dataSource.CreateBatch();
            foreach (var interval in HistoryIntervals.All)
            {
                prune.BatchCommands.Add(Command("""
                    WITH doomed AS (
                        SELECT name, period, start FROM history WHERE period = $1 AND start < $2 ORDER BY start LIMIT $3 FOR UPDATE SKIP LOCKED
                    )
                    DELETE FROM history AS h USING doomed AS d WHERE h.name = d.name AND h.period = d.period AND h.start = d.start
                    """, [(short)interval, history.Value.OldestKept(interval, now), HistoryPruneStep]));
            }
            await prune.ExecuteNonQueryAsync(cancellationToken);
            foreach (var command in prune.BatchCommands)
            {
                if (command.RecordsAffected == HistoryPruneStep)
                {
                    _nextHistoryPruneAt = now + 1000;
                }
            }
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
        {
            logger.LogDebug("Pruning history failed; it is tried again later ({Reason})", ex.Message);
        }
    }

    /// <summary>Deletes expired idempotency records, a bounded step, oldest first; instances pruning at once skip each other's rows.</summary>
    private async Task PruneAsync(long now, CancellationToken cancellationToken)
    {
        _nextPruneAt = now + (long)PruneEvery.TotalMilliseconds;
        await using var command = dataSource.CreateCommand("""
            WITH doomed AS (
                SELECT caller, key FROM idempotency WHERE created_at < $1 ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED
            ), gone AS (
                DELETE FROM idempotency AS i USING doomed AS d WHERE i.caller = d.caller AND i.key = d.key RETURNING i.caller, i.size
            ), freed AS (
                UPDATE idempotency_usage AS u SET bytes = u.bytes - g.total
                FROM (SELECT caller, sum(size) AS total FROM gone GROUP BY caller) AS g WHERE u.caller = g.caller
            )
            SELECT count(*) FROM gone
            """);
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = now - (long)_applier.IdempotencyRetention.TotalMilliseconds });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = PruneStep });
        var pruned = (long)(await command.ExecuteScalarAsync(cancellationToken))!;
        if (pruned == PruneStep)
        {
            _nextPruneAt = now; // more expired than one step: go on at the next chance
        }
    }

    private async Task RefreshCountAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("SELECT live FROM counter_totals WHERE id = 1");
        Interlocked.Exchange(ref _count, (long)(await command.ExecuteScalarAsync(cancellationToken))!);
    }

    private static string[] NamesOf(IReadOnlyList<PendingRequest> batch)
    {
        var names = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var request in batch)
        {
            if (request.Command is { } command)
            {
                names.Add(command.Name);
            }
            else
            {
                foreach (var operation in request.Batch!.Operations)
                {
                    names.Add(operation.Name);
                }
            }
        }
        return [.. names];
    }

    private static bool HasDeletion(IReadOnlyList<PendingRequest> batch) => batch.Any(request =>
        request.Command?.Kind == CommandKind.Delete || request.Batch?.Operations.Any(operation => operation.Kind == CommandKind.Delete) == true);

    private static (string[] Callers, string[] Keys) IdempotencyKeysOf(IReadOnlyList<PendingRequest> batch)
    {
        var keyed = batch.Where(request => request.Idempotency is not null).Select(request => request.Idempotency!).ToArray();
        return (keyed.Select(key => key.Caller).ToArray(), keyed.Select(key => key.Key).ToArray());
    }

    private static Counter ReadCounter(NpgsqlDataReader reader) => new(
        reader.GetString(0), reader.GetInt64(1), reader.GetInt64(2),
        reader.IsDBNull(3) ? null : reader.GetInt64(3),
        reader.IsDBNull(4) ? null : reader.GetInt64(4),
        reader.GetInt64(5), reader.GetInt64(6), reader.GetInt64(7),
        reader.IsDBNull(8) ? null : reader.GetString(8));

    /// <summary>A statement with positional parameters ($1, $2…); arrays become PostgreSQL arrays.</summary>
    private static NpgsqlBatchCommand Command(string sql, object[]? parameters = null)
    {
        var command = new NpgsqlBatchCommand(sql);
        foreach (var parameter in parameters ?? [])
        {
            command.Parameters.Add(new NpgsqlParameter { Value = parameter });
        }
        return command;
    }

    /// <summary>40001 serialization failure, 40P01 deadlock, 23505 a unique key committed meanwhile by another instance.</summary>
    private static bool IsRetryable(PostgresException ex) =>
        ex.SqlState is PostgresErrorCodes.SerializationFailure or PostgresErrorCodes.DeadlockDetected or PostgresErrorCodes.UniqueViolation;

    private static bool IsUnavailable(Exception ex, CancellationToken cancellationToken) =>
        !cancellationToken.IsCancellationRequested && ex is NpgsqlException or TimeoutException or InvalidOperationException { Source: "Npgsql" };

    private static StoreUnavailableException Unavailable(Exception ex) =>
        new($"PostgreSQL does not answer ({ex.Message}).", ex);

    // ---- Alerts (Alerts/AlertEvaluator). The firing states of the names an alert watches are read in the locking round
    // trip, after the row locks (statements of a batch run in order), so commits touching a counter take turns on its
    // states too; the commit's state changes and outbox events go into the write batch, in the same transaction. ----

    private static string[] WatchedNames(AlertSet alerts, string[] names) =>
        alerts.IsEmpty ? [] : [.. names.Where(alerts.Watches)];

    private void AddAlertStateLoad(NpgsqlBatch load, string[] watched)
    {
        _alertStates.Firing.Clear();
        if (watched.Length > 0)
        {
            load.BatchCommands.Add(Command("SELECT alert_id, counter, revision FROM alert_states WHERE counter = ANY($1)", [watched]));
        }
    }

    private async Task ReadAlertStatesAsync(NpgsqlDataReader reader, string[] watched, CancellationToken cancellationToken)
    {
        if (watched.Length == 0)
        {
            return;
        }
        await reader.NextResultAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            _alertStates.Firing[(reader.GetString(0), reader.GetString(1))] = reader.GetInt64(2);
        }
    }

    private static void AddAlertWrites(NpgsqlBatch write, AlertOutcome? alerts)
    {
        if (alerts is null)
        {
            return;
        }
        var ok = alerts.States.Where(state => state.Value is null).Select(state => state.Key).ToArray();
        if (ok.Length > 0)
        {
            write.BatchCommands.Add(Command("""
                DELETE FROM alert_states AS s USING unnest($1::text[], $2::text[]) AS d (alert_id, counter)
                WHERE s.alert_id = d.alert_id AND s.counter = d.counter
                """, [ok.Select(pair => pair.AlertId).ToArray(), ok.Select(pair => pair.Counter).ToArray()]));
        }
        var firing = alerts.States.Where(state => state.Value is not null).ToArray();
        if (firing.Length > 0)
        {
            write.BatchCommands.Add(Command("""
                INSERT INTO alert_states (alert_id, counter, revision) SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
                ON CONFLICT (alert_id, counter) DO UPDATE SET revision = excluded.revision
                """, [firing.Select(state => state.Key.AlertId).ToArray(), firing.Select(state => state.Key.Counter).ToArray(),
                firing.Select(state => state.Value!.Value).ToArray()]));
        }
        var events = alerts.Events;
        if (events.Count > 0)
        {
            write.BatchCommands.Add(Command("""
                INSERT INTO alert_outbox (id, alert_id, type, payload, created_at, attempts, next_attempt_at)
                SELECT e.id, e.alert_id, e.type, e.payload, e.created_at, 0, e.created_at
                FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[]) AS e (id, alert_id, type, payload, created_at)
                """, [events.Select(e => e.Id).ToArray(), events.Select(e => e.AlertId).ToArray(), events.Select(e => e.TypeName).ToArray(),
                events.Select(e => e.Payload).ToArray(), events.Select(e => e.CreatedAt).ToArray()]));
        }
    }
}
