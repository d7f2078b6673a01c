using System.Text.Json;
using System.Globalization;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using Tally.Server.Alerts;
using Tally.Server.Events;
using Tally.Server.Configuration;
using Tally.Server.Counters;
using Tally.Server.History;
using Tally.Server.Observability;
using Tally.Server.Pipeline;

namespace Tally.Server.Storage.Redis;

/// <summary>
/// Counters in Redis, shared by any number of stateless instances. A commit is one call of the
/// <c>tally_v1_commit</c> function (tally.lua), which applies the batch's rules atomically inside Redis (no other
/// client's command runs in between) and writes the counters and idempotency records it produced; a read asks
/// Redis. A 2xx means Redis applied it, and with <c>appendfsync always</c> that its AOF is on disk.
/// </summary>
internal sealed class RedisCounterStore(
    IConnectionMultiplexer redis, IOptions<TallyOptions> options, IOptions<QuotaOptions> quotas, IOptions<HistoryOptions> history,
    TimeProvider clock, TallyMetrics metrics, ILogger<RedisCounterStore> logger, AlertCatalog alerts, RedisEventRelay? relay = null)
    : ICounterStore, IStoreUpkeep
{
    private static readonly RedisValue[] Fields = ["v", "i", "lo", "hi", "ver", "ca", "ua", "by"];
    private static readonly RedisKey CountKey = "tally:count";
    private static readonly TimeSpan UpkeepEvery = TimeSpan.FromSeconds(10);
    private const int PruneCallersPerStep = 100;

    /// <summary>
    /// How often, under load, an instance folds the history log in the background: a counter's records of that long
    /// become one write per bucket, and reads, which scan the unfolded log, stay cheap.
    /// </summary>
    internal long FoldEveryMs { get => _fold.EveryMs; set => _fold.EveryMs = value; }

    /// <summary>
    /// Bytes of entries one round of the fold takes from the head of the log, at most (whole entries, at least one):
    /// 10 s of 10,000 increments/s over 10,000 names is about 3 MB.
    /// </summary>
    internal int FoldBytesPerRound { get; set; } = 4 << 20;

    /// <summary>Counters one round adds up, at most (whole entries, at least one): what it holds in memory, a few tens of MB.</summary>
    internal int FoldCountersPerRound { get; set; } = 50_000;

    /// <summary>
    /// Counters one tally_v1_history_fold_apply call adds to their chunks, during which Redis serves no one else: a read
    /// and a write of each chunk, three a counter when its records span one hour (more after a long backlog), 3–5 ms for
    /// 100 over 10,000 busy counters.
    /// </summary>
    internal int FoldCountersPerCall { get; set; } = 100;

    /// <summary>How long a fold's lease lasts without a call from its folder; then another instance finishes the fold.</summary>
    internal long FoldLeaseMs { get; set; } = 30_000;

    /// <summary>Entries one read of the log takes (a commit of 1,000 operations is an entry of about 25 KB, of 10,000 a few hundred KB).</summary>
    private const int FoldReadPage = 25;

    /// <summary>Records one call of revision 3's part fold takes (what a revision-3 Tally left in its log parts).</summary>
    internal const int FoldPartStepRecords = 2_000;

    /// <summary>Operations per function call: a few milliseconds of Redis's time, during which it serves no one else.</summary>
    private const int MaxOperationsPerCall = 10_000;

    /// <summary>How long a commit whose answer was lost waits for Redis to tell whether it applied it (the commit loop waits too).</summary>
    private static readonly TimeSpan RecoverFor = TimeSpan.FromSeconds(10);

    private readonly RedisCommitWriter _writer = new();
    private readonly long _retentionMs = (long)options.Value.IdempotencyRetention.TotalMilliseconds;
    private long _count;
    private long _nextUpkeepAt;
    private string _pruneCursor = "0";
    private readonly CancellationTokenSource _stopping = new();
    private readonly BackgroundFold _fold = new(10_000);
    private long _commits;
    private long _commitsAtUpkeep;
    // _commits when the last fold that reached the log's end began (-1: none yet, so the first idle upkeep folds what
    // earlier instances left); an idle instance with nothing logged since then calls no fold at all.
    private long _commitsFolded = -1;

    private IDatabase Database => redis.GetDatabase();

    public long Count => Interlocked.Read(ref _count);

    public async Task OpenAsync(CancellationToken cancellationToken)
    {
        try
        {
            await Database.PingAsync();
            var cluster = await Database.ExecuteAsync("INFO", "cluster");
            if (cluster.ToString().Contains("cluster_enabled:1", StringComparison.Ordinal))
            {
                throw new StoreStartupException("Store=redis does not support Redis Cluster: a commit touches keys in many hash slots. Use a standalone Redis (with replicas and Sentinel for failover).");
            }
            if (await RedisPersistence.CheckAsync(Database) is { } problem)
            {
                if (!options.Value.RedisAllowDataLoss)
                {
                    throw new StoreStartupException(RedisPersistence.Refusal(problem));
                }
                logger.LogWarning("RedisAllowDataLoss=true: {Problem}. A 2xx does NOT mean the change survives a crash of Redis.", problem);
            }
            await RedisLibrary.LoadAsync(Database);
            await RefreshCountAsync();
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            throw new StoreStartupException($"Redis cannot be used ({ex.Message}). Check the Redis configuration string and that the server answers.", ex);
        }
        logger.LogInformation("Redis store open ({Endpoints}) with {Count} counters",
            string.Join(", ", redis.GetEndPoints().Select(endpoint => endpoint.ToString())), Count);
    }

    public async ValueTask<Counter?> GetAsync(string name, CancellationToken cancellationToken)
    {
        try
        {
            var fields = await Database.HashGetAsync(CounterKey(name), Fields);
            return fields[0].IsNull ? null : ReadCounter(name, fields);
        }
        catch (Exception ex) when (IsUnavailable(ex))
        {
            throw Unavailable(ex);
        }
    }

    public async ValueTask<IReadOnlyList<Counter>> ListAsync(string prefix, string? after, int limit, CancellationToken cancellationToken)
    {
        // Names are ASCII below '~', so [prefix, prefix + '~') is exactly the names that start with prefix, in ordinal order.
        var from = after is not null && string.CompareOrdinal(after, prefix) >= 0 ? "(" + after : "[" + prefix;
        var to = prefix.Length == 0 ? "+" : "(" + prefix + "~";
        try
        {
            var reply = (RedisValue[])(await CallAsync(RedisLibrary.List, readOnly: true, from, to, limit.ToString(CultureInfo.InvariantCulture)))!;
            return ReadCounters(reply);
        }
        catch (Exception ex) when (IsUnavailable(ex))
        {
            throw Unavailable(ex);
        }
    }

    /// <summary>
    /// The empty prefix and a name's first two prefixes ending at a ':' have an index of their own in Redis
    /// (tally:top:&lt;prefix&gt;), read in one call; another prefix is read page by page from the name index, every counter under it.
    /// </summary>
    public async ValueTask<IReadOnlyList<Counter>> TopAsync(string prefix, int limit, CancellationToken cancellationToken)
    {
        var top = new TopCounters(limit);
        try
        {
            if (IsIndexed(prefix))
            {
                var reply = (RedisValue[])(await CallAsync(RedisLibrary.Top, readOnly: true, prefix, limit.ToString(CultureInfo.InvariantCulture)))!;
                foreach (var counter in ReadCounters(reply))
                {
                    top.Offer(counter);
                }
                return top.Result();
            }
        }
        catch (Exception ex) when (IsUnavailable(ex))
        {
            throw Unavailable(ex);
        }
        string? after = null;
        while (true)
        {
            var page = await ListAsync(prefix, after, 1000, cancellationToken);
            foreach (var counter in page)
            {
                top.Offer(counter);
            }
            if (page.Count < 1000)
            {
                return top.Result();
            }
            after = page[^1].Name;
        }
    }

    /// <summary>
    /// Applies the batch in function calls of at most <see cref="MaxOperationsPerCall"/> operations (whole requests; one
    /// larger request, such as an import, is one call), since Redis runs nothing else while a function runs. When a call
    /// after the first fails, the requests of that call and after are answered 503 and the earlier ones stand.
    /// </summary>
    public async ValueTask<IReadOnlyList<RequestOutcome>> CommitAsync(IReadOnlyList<PendingRequest> batch, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
        var outcomes = new RequestOutcome[batch.Count];
        var start = 0;
        while (start < batch.Count)
        {
            var end = start;
            var operations = 0;
            do
            {
                operations += batch[end].Batch?.Operations.Count ?? 1;
                end++;
            }
            while (end < batch.Count && operations + (batch[end].Batch?.Operations.Count ?? 1) <= MaxOperationsPerCall);
            var part = start == 0 && end == batch.Count ? batch : batch.Skip(start).Take(end - start).ToList();
            try
            {
                var answers = await CommitPartAsync(part, now);
                for (var i = 0; i < part.Count; i++)
                {
                    outcomes[start + i] = RedisOutcomeReader.Read(answers[i], part[i], now);
                }
            }
            catch (StoreUnavailableException) when (start > 0)
            {
                for (var i = start; i < batch.Count; i++)
                {
                    outcomes[i] = new RequestOutcome(CommandResult.Fail(ErrorCodes.StoreUnavailable,
                        "Redis did not confirm the change, so it was not acknowledged. Retry shortly, with the same Idempotency-Key if you sent one."));
                }
                break;
            }
            start = end;
        }
        _commits++;
        _fold.StartIfDue(now, FoldAsync);
        if (now >= _nextUpkeepAt)
        {
            await UpkeepAsync(now);
        }
        return outcomes;
    }

    /// <summary>
    /// One <c>FCALL tally_v1_commit</c>. Its answers are also kept in Redis under the call's id for a while, so when the
    /// answer is lost (a timeout while Redis runs a long call, a cut connection) <see cref="RecoverAsync"/> reads them
    /// rather than calling a commit failed that Redis applied.
    /// </summary>
    private async Task<string[]> CommitPartAsync(IReadOnlyList<PendingRequest> part, long now)
    {
        var watching = AlertsWatching(alerts.Current, part);
        var commitId = Guid.NewGuid().ToString("N");
        var document = _writer.Write(part, now, _retentionMs, quotas.Value.MaxCounters, quotas.Value.IdempotencyBytesPerKey, history.Value, watching, commitId);
        string[] answers;
        try
        {
            answers = (string[])(await CallAsync(RedisLibrary.Commit, readOnly: false, document))!;
        }
        catch (Exception ex) when (IsUnavailable(ex) && NeverSent(ex))
        {
            throw Unavailable(ex);
        }
        catch (Exception ex) when (IsUnavailable(ex))
        {
            answers = await RecoverAsync(commitId, ex);
        }
        metrics.RecordStoreWrite();
        if (watching is not null && answers.Length > part.Count)
        {
            CommittedAlerts(answers.AsSpan(part.Count));
        }
        return answers;
    }

    /// <summary>Whether tally.lua keeps a value index for this prefix: "" and a name's first two prefixes ending at ':'.</summary>
    private static bool IsIndexed(string prefix) =>
        prefix.Length == 0 || (prefix[^1] == ':' && prefix.Count(c => c == ':') <= 2);

    /// <summary>A command that failed before it was written to the connection (Redis disconnected): it cannot have run.</summary>
    private static bool NeverSent(Exception ex) => ex switch
    {
        RedisConnectionException connection => connection.CommandStatus is StackExchange.Redis.CommandStatus.WaitingToBeSent or StackExchange.Redis.CommandStatus.WaitingInBacklog,
        RedisTimeoutException timeout => timeout.Commandstatus is StackExchange.Redis.CommandStatus.WaitingToBeSent or StackExchange.Redis.CommandStatus.WaitingInBacklog,
        _ => false,
    };

    /// <summary>
    /// After a commit's answer was lost: asks Redis (every 250 ms, for up to <see cref="RecoverFor"/>) for the answers the
    /// call kept. Found: the commit was applied, and these are its answers. Redis answers without them: the call never
    /// ran, and 503 is the truth. No answer in time: the outcome is unknown, and the 503 says so.
    /// </summary>
    private async Task<string[]> RecoverAsync(string commitId, Exception lost)
    {
        var waiting = System.Diagnostics.Stopwatch.StartNew(); // wall time: the store's clock may be a test's, standing still
        while (true)
        {
            try
            {
                var kept = await Database.StringGetAsync("tally:done:" + commitId);
                if (kept.IsNull)
                {
                    throw Unavailable(lost);
                }
                logger.LogWarning("A commit's answer was lost ({Reason}); Redis had applied it, and its kept answers were used", lost.Message);
                return JsonSerializer.Deserialize(kept.ToString(), RedisJsonContext.Default.StringArray)!;
            }
            catch (Exception ex) when (IsUnavailable(ex) && waiting.Elapsed < RecoverFor)
            {
                await Task.Delay(250);
            }
            catch (Exception ex) when (IsUnavailable(ex))
            {
                throw new StoreUnavailableException(
                    $"Redis did not answer for {RecoverFor.TotalSeconds:0} s after a commit's answer was lost ({lost.Message}); whether it was applied is unknown.", ex);
            }
        }
    }

    /// <summary>History from the chunks and the unfolded log (RedisHistory); Redis expires the chunks itself, so there is no pruning here.</summary>
    public async ValueTask<IReadOnlyList<HistoryBucket>> ReadHistoryAsync(
        string name, HistoryInterval interval, long from, long to, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
        try
        {
            return await RedisHistory.ReadAsync(Database, name, interval, from, to, now, history.Value);
        }
        catch (Exception ex) when (IsUnavailable(ex))
        {
            throw Unavailable(ex);
        }
    }

    /// <summary>
    /// Upkeep between commits. Once commits stopped (none since the last upkeep) and something was logged since the last
    /// fold, the history log is folded to its end in the background, never on the commit loop: each call of a round holds
    /// Redis (and so this loop's next commit) for a few milliseconds, and a burst leaves many. So an idle Redis ends with no log.
    /// </summary>
    public async ValueTask MaintainAsync(CancellationToken cancellationToken)
    {
        var committing = _commits != _commitsAtUpkeep;
        _commitsAtUpkeep = _commits;
        if (!committing && !_fold.IsRunning && Volatile.Read(ref _commitsFolded) != _commits)
        {
            var commits = _commits;
            _fold.Start(async () =>
            {
                if (await FoldAsync())
                {
                    Volatile.Write(ref _commitsFolded, commits);
                }
            });
        }
        var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
        if (now >= _nextUpkeepAt)
        {
            await UpkeepAsync(now);
        }
    }

    /// <summary>
    /// Folds what the log held when the fold began, round after round (chasing the commits that arrive meanwhile would
    /// fold each counter's few new records again and again), first what a revision-3 Tally left in its log parts.
    /// Returns whether the log was empty after the last round; false also when another instance holds the fold. A
    /// failure is logged and waits for the next fold.
    /// </summary>
    private async Task<bool> FoldAsync()
    {
        try
        {
            if (await Database.KeyExistsAsync(RedisHistory.LogPartKeys) > 0)
            {
                await FoldPartsAsync();
            }
            var backlog = await Database.ListLengthAsync(RedisHistory.LogKey);
            var left = backlog;
            while (backlog > 0 && !_stopping.IsCancellationRequested)
            {
                (var entries, left) = await FoldRoundAsync();
                if (left < 0 || entries == 0)
                {
                    return false; // another instance folds (or died folding, or this one stops): tried again later
                }
                backlog -= entries;
            }
            return left == 0;
        }
        catch (Exception ex) when (IsUnavailable(ex) || ex is ObjectDisposedException)
        {
            logger.LogDebug("Folding the history log skipped: Redis does not answer ({Reason})", ex.Message);
            return true;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // A log entry this version cannot read (a newer library's) must not end the fold silently: it is tried again.
            logger.LogError(ex, "Folding the history log failed; it is tried again later");
            return true;
        }
    }

    /// <summary>
    /// One round of the fold (tally.lua, "History"): takes the lease and the first entries of the log, whole ones up to
    /// <see cref="FoldBytesPerRound"/> and <see cref="FoldCountersPerRound"/> (or the entries of a round whose folder
    /// stopped half way), reads and adds them up here, hands the sums to Redis
    /// <see cref="FoldCountersPerCall"/> counters a call, then trims the entries. <paramref name="afterCall"/> runs after
    /// each of those calls (tests read there, or stop the round half done). Returns the entries folded and the entries
    /// left in the log, or (0, -1) when another instance holds the fold.
    /// </summary>
    internal async Task<(long Entries, long Left)> FoldRoundAsync(Func<Task>? afterCall = null)
    {
        var lease = Guid.NewGuid().ToString("N");
        var leaseMs = FoldLeaseMs.ToString(CultureInfo.InvariantCulture);
        var begun = (long[])(await CallAsync(RedisLibrary.HistoryFoldBegin, readOnly: false, lease, leaseMs))!;
        var (length, resumed) = (begun[0], begun[1] == 1);
        if (length <= 0)
        {
            return (0, length);
        }
        // A new round takes whole entries up to its bounds; one going on with a stopped folder's round takes its k.
        var fold = new RedisHistoryFold();
        long k = 0, bytes = 0;
        while (k < length)
        {
            var page = await Database.ListRangeAsync(RedisHistory.LogKey, k, Math.Min(length, k + FoldReadPage) - 1);
            if (page.Length == 0)
            {
                break; // the log is shorter than it was (deleted by hand)
            }
            foreach (var value in page)
            {
                if (!resumed && k > 0 && (bytes >= FoldBytesPerRound || fold.Counters >= FoldCountersPerRound))
                {
                    length = k;
                    break;
                }
                var entry = value.ToString();
                fold.Add(entry);
                bytes += entry.Length;
                k++;
            }
        }
        if (resumed)
        {
            logger.LogInformation("Finishing a fold of the history log ({Entries} entries) that another instance stopped half way", k);
        }
        // A round going on with a stopped folder's keeps its k even when the log is shorter now (deleted by hand): what
        // is there is applied, and the end trims it all.
        var entries = (resumed ? begun[0] : k).ToString(CultureInfo.InvariantCulture);
        var now = clock.GetUtcNow().ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture);
        foreach (var counters in fold.Calls(FoldCountersPerCall))
        {
            if (_stopping.IsCancellationRequested)
            {
                return (0, -1); // stopping: the lease lapses, and another instance (or this one, restarted) finishes the round
            }
            if ((long)(await CallAsync(RedisLibrary.HistoryFoldApply, readOnly: false, [lease, leaseMs, entries, now, .. counters])) == 0)
            {
                logger.LogWarning("This instance lost the history fold's lease half way through a round (paused past {LeaseMs} ms?); another instance finishes it", FoldLeaseMs);
                return (0, -1);
            }
            if (afterCall is not null)
            {
                await afterCall();
            }
        }
        var left = (long)(await CallAsync(RedisLibrary.HistoryFoldEnd, readOnly: false, lease, entries));
        return left < 0 ? (0, -1) : (k, left);
    }

    /// <summary>Folds until the log is empty, as idle upkeep does (tests, with no commits meanwhile).</summary>
    internal async Task<bool> FoldToEndAsync()
    {
        for (var fold = 0; fold < 100; fold++)
        {
            if (await FoldAsync())
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>Folds what a revision-3 Tally left in its log parts, part after part.</summary>
    private async Task FoldPartsAsync()
    {
        for (var part = 0; part < RedisHistory.LogParts; part++)
        {
            while (!_stopping.IsCancellationRequested && (await FoldPartStepAsync(part, FoldPartStepRecords)).Records >= FoldPartStepRecords)
            {
            }
        }
    }

    /// <summary>
    /// One call of tally_v1_history_fold: whole entries from the head of one part of revision 3's log, until they hold
    /// at least <paramref name="records"/> records, added to the buckets and removed from the log in one atomic step.
    /// Returns the entries and records folded, and the entries left in the part.
    /// </summary>
    internal async Task<(long Entries, long Records, long Left)> FoldPartStepAsync(int part, int records)
    {
        var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
        var reply = (long[])(await CallAsync(RedisLibrary.HistoryFoldPart, readOnly: false,
            now.ToString(CultureInfo.InvariantCulture), records.ToString(CultureInfo.InvariantCulture), part.ToString(CultureInfo.InvariantCulture)))!;
        return (reply[0], reply[1], reply[2]);
    }

    public async ValueTask<StoreHealth> CheckHealthAsync(CancellationToken cancellationToken)
    {
        try
        {
            await RefreshCountAsync();
            // Redis may have been restarted with other settings since the start: readiness says so (and the log, loudly).
            if (!options.Value.RedisAllowDataLoss && await RedisPersistence.CheckAsync(Database) is { } problem)
            {
                logger.LogError("Redis's settings changed since the start: {Problem}", problem);
                return new StoreHealth(false, $"Redis {problem}");
            }
            return new StoreHealth(true, $"Redis store with {Count} counters");
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException)
        {
            return new StoreHealth(false, $"Redis does not answer: {ex.Message}");
        }
    }

    /// <summary>The fold under way, if any (tests wait for it).</summary>
    internal Task FoldUnderWay => _fold.Current;

    /// <summary>Lets a background fold finish its call under way (a round stopped half way is finished by the next fold, from any instance). The connection is the container's, shared with the key store.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_stopping.IsCancellationRequested)
        {
            return;
        }
        await _stopping.CancelAsync();
        await _fold.Current;
    }

    /// <summary>
    /// Every few seconds, after a commit or when idle: the count for metrics, and a step of giving back the bytes of
    /// expired idempotency records (Redis deletes the records themselves by their TTL). It never decides an answer.
    /// </summary>
    private async Task UpkeepAsync(long now)
    {
        _nextUpkeepAt = now + (long)UpkeepEvery.TotalMilliseconds;
        try
        {
            await RefreshCountAsync();
            var cursor = await CallAsync(RedisLibrary.Prune, readOnly: false,
                _pruneCursor, now.ToString(CultureInfo.InvariantCulture), _retentionMs.ToString(CultureInfo.InvariantCulture),
                PruneCallersPerStep.ToString(CultureInfo.InvariantCulture));
            _pruneCursor = (string)cursor!;
            if (_pruneCursor != "0")
            {
                _nextUpkeepAt = now; // more callers to visit: go on at the next chance
            }
        }
        catch (Exception ex) when (IsUnavailable(ex))
        {
            logger.LogDebug("Redis upkeep skipped: Redis does not answer ({Reason})", ex.Message);
        }
        catch (Exception ex) when (ex is RedisException)
        {
            // Upkeep runs after a commit was applied: it must never turn that commit's answer into a failure.
            logger.LogWarning(ex, "Redis upkeep failed; it is tried again later");
        }
    }

    private async Task RefreshCountAsync()
    {
        var count = await Database.StringGetAsync(CountKey);
        Interlocked.Exchange(ref _count, count.IsNull ? 0 : (long)count);
    }

    /// <summary>FCALL (or FCALL_RO); if Redis lost its functions (FUNCTION FLUSH, a new empty server), loads them again once.</summary>
    private async Task<RedisResult> CallAsync(string function, bool readOnly, params object[] arguments)
    {
        object[] command = [function, 0, .. arguments];
        try
        {
            return await Database.ExecuteAsync(readOnly ? "FCALL_RO" : "FCALL", command);
        }
        catch (RedisServerException ex) when (RedisLibrary.IsMissing(ex))
        {
            logger.LogWarning("Redis has no {Function} function (its functions were flushed?); loading the tally library again", function);
            await RedisLibrary.LoadAsync(Database);
            return await Database.ExecuteAsync(readOnly ? "FCALL_RO" : "FCALL", command);
        }
    }

    private static RedisKey CounterKey(string name) => "tally:c:" + name;

    /// <summary>A flat reply of the list and top functions: each name followed by its fields.</summary>
    private static List<Counter> ReadCounters(RedisValue[] reply)
    {
        var counters = new List<Counter>(reply.Length / (Fields.Length + 1));
        for (var i = 0; i < reply.Length; i += Fields.Length + 1)
        {
            counters.Add(ReadCounter(reply[i]!, reply.AsSpan(i + 1, Fields.Length)));
        }
        return counters;
    }

    private static Counter ReadCounter(string name, ReadOnlySpan<RedisValue> f) => new(
        name, (long)f[0], (long)f[1], Bound(f[2]), Bound(f[3]), (long)f[4], (long)f[5], (long)f[6],
        f[7].IsNullOrEmpty ? null : f[7].ToString());

    private static long? Bound(RedisValue value) => value.IsNullOrEmpty ? null : (long)value;

    /// <summary>
    /// Redis unreachable, timing out, still loading its data after a restart, or refusing writes (a replica, out of
    /// memory): the request gets 503 and may be retried. A function's own error is a bug, not an outage.
    /// </summary>
    private static bool IsUnavailable(Exception ex) => ex switch
    {
        RedisConnectionException or RedisTimeoutException or TimeoutException => true,
        RedisServerException server => server.Message.StartsWith("LOADING", StringComparison.Ordinal)
            || server.Message.StartsWith("BUSY", StringComparison.Ordinal)
            || server.Message.StartsWith("READONLY", StringComparison.Ordinal)
            || server.Message.StartsWith("MASTERDOWN", StringComparison.Ordinal)
            || server.Message.StartsWith("OOM", StringComparison.Ordinal)
            || server.Message.StartsWith("MISCONF", StringComparison.Ordinal),
        _ => false,
    };

    private static StoreUnavailableException Unavailable(Exception ex) => new($"Redis does not answer ({ex.Message}).", ex);

    // ---- Alerts: the state machine runs inside tally_v1_commit (tally.lua's evaluate_alerts, which agrees with
    // Alerts/AlertEvaluator), over the alerts this instance knows that watch a name of the batch; the events go to the
    // outbox stream in the same atomic call. ----

    /// <summary>The alerts watching a name of the batch, exact ones then prefixes, each in id order (as AlertSet.Matching); null when none.</summary>
    private static List<AlertDefinition>? AlertsWatching(AlertSet set, IReadOnlyList<PendingRequest> batch)
    {
        if (set.IsEmpty)
        {
            return null;
        }
        var names = new HashSet<string>(StringComparer.Ordinal);
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
        var watching = set.All.Where(alert => alert.Counter is not null && names.Contains(alert.Counter))
            .Concat(set.All.Where(alert => alert.Counter is null && names.Any(alert.Watches)))
            .ToList();
        return watching.Count > 0 ? watching : null;
    }

    /// <summary>The commit's alert replies: <c>A&lt;firing&gt;,&lt;resolved&gt;</c>, then each event as <c>E&lt;counter&gt;\n&lt;payload&gt;</c>.</summary>
    private void CommittedAlerts(ReadOnlySpan<string> replies)
    {
        var counts = replies[0].AsSpan(1);
        var comma = counts.IndexOf(',');
        var firing = int.Parse(counts[..comma], CultureInfo.InvariantCulture);
        var resolved = int.Parse(counts[(comma + 1)..], CultureInfo.InvariantCulture);
        alerts.Committed(firing, resolved);
        if (replies.Length == 1)
        {
            return;
        }
        var published = new List<RemoteAlert>(replies.Length - 1);
        foreach (var reply in replies[1..])
        {
            var newline = reply.IndexOf('\n', StringComparison.Ordinal);
            published.Add(new RemoteAlert(reply[1..newline], reply[(newline + 1)..]));
        }
        alerts.Published(published);
        relay?.PublishAlerts(published);
    }
}
