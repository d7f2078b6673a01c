using Tally.Server.Alerts;
using Tally.Server.Configuration;
using Tally.Server.Counters;
using Tally.Server.History;
using Tally.Server.Idempotency;
using Tally.Server.Pipeline;

namespace Tally.Server.Storage;

/// <summary>
/// An engine whose process owns the data (embedded SQLite, memory): the committed state lives in a
/// <see cref="CounterCache"/>, so reads never touch the disk. A batch is applied by the
/// <see cref="BatchApplier"/> over the cache, persisted as one unit with its idempotency records, and
/// only then published, so readers see committed state only. The counts quotas need (counters per
/// creating key, idempotency bytes per caller) are kept here, updated as commits are published. A commit's history
/// is written with it (with <c>Durability=async</c>, with the flush that writes it).
/// </summary>
internal abstract class CachedCounterStore(TimeProvider clock, TimeSpan idempotencyRetention, QuotaOptions quotas, HistoryOptions historyOptions)
    : ICounterStore, IDeferredDurability, IStoreUpkeep, ICommitState
{
    private static readonly TimeSpan PruneEvery = TimeSpan.FromMinutes(1);

    /// <summary>Expired records deleted per step, so that a large backlog never stalls the commit loop.</summary>
    private const int PruneStep = 5000;

    // Used by the pipeline's single loop alone: CommitAsync, FlushAsync and MaintainAsync never overlap.
    private readonly BatchApplier _applier = new(quotas, idempotencyRetention);
    private readonly Dictionary<string, Counter?> _unflushed = new(StringComparer.Ordinal);
    private readonly Dictionary<(string Caller, string Key), IdempotencyRecord> _unflushedRecords = [];
    private readonly Dictionary<string, long> _owned = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _recordBytes = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _oldestRecord = new(StringComparer.Ordinal);
    private readonly Dictionary<(string Caller, string Key), long> _expired = [];
    private bool _usageLoaded;
    private long _nextPruneAt;
    private bool _pruneBacklog;
    private long _now;

    // History: the commit's own (sync), or all acknowledged since the last flush (async), which readers then
    // see under _historyLock. The gate keeps a reader from seeing a flush half done (written, not yet cleared).
    private readonly HistoryWrites _history = new();
    private readonly Lock _historyLock = new();
    private readonly SemaphoreSlim _historyGate = new(1, 1);
    private long _nextHistoryPruneAt;

    /// <summary>Expired history buckets deleted per interval and step.</summary>
    private const int HistoryPruneStep = 2000;

    /// <summary>
    /// Durability=async: publish and acknowledge a batch as soon as it is applied in memory, and let
    /// <see cref="FlushAsync"/> write the accumulated changes (one row per counter, however often it changed).
    /// </summary>
    protected bool AcknowledgeBeforeWrite { get; init; }

    protected CounterCache Cache { get; } = new();

    public long? UnflushedSince { get; private set; }

    /// <summary>The last write to disk failed (disk full, read-only file…); cleared by the next one that succeeds.</summary>
    protected string? WriteFailure { get; private set; }

    /// <summary>A test write succeeded: writes work again (the next commit would have shown it too).</summary>
    protected void WritesRecovered() => WriteFailure = null;

    public long Count => Cache.Count;

    public abstract Task OpenAsync(CancellationToken cancellationToken);

    public ValueTask<Counter?> GetAsync(string name, CancellationToken cancellationToken) => ValueTask.FromResult(Cache.Get(name));

    public ValueTask<IReadOnlyList<Counter>> ListAsync(string prefix, string? after, int limit, CancellationToken cancellationToken) =>
        ValueTask.FromResult(Cache.List(prefix, after, limit));

    public ValueTask<IReadOnlyList<Counter>> TopAsync(string prefix, int limit, CancellationToken cancellationToken) =>
        ValueTask.FromResult(Cache.Top(prefix, limit));

    public async ValueTask<IReadOnlyList<RequestOutcome>> CommitAsync(IReadOnlyList<PendingRequest> batch, CancellationToken cancellationToken)
    {
        LoadUsage();
        _now = clock.GetUtcNow().ToUnixTimeMilliseconds();
        _expired.Clear();
        var plan = _applier.Apply(batch, this, _now);
        if (!plan.HasWrites)
        {
            return plan.Outcomes;
        }
        var changes = CounterChanges.Of(batch, plan.Outcomes); // once, for alerts and history
        var alerts = EvaluateAlerts(changes);

        if (AcknowledgeBeforeWrite)
        {
            if (WriteFailure is { } failure)
            {
                // Acknowledging more while the disk refuses would widen the loss window without bound.
                throw new IOException($"Acknowledged changes cannot be written: {failure}");
            }
            Publish(plan);
            PublishAlerts(alerts);
            foreach (var (name, counter) in plan.Changes)
            {
                _unflushed[name] = counter;
            }
            foreach (var (key, record) in plan.Records)
            {
                _unflushedRecords[key] = record;
            }
            lock (_historyLock)
            {
                RecordHistory(changes);
            }
            UnflushedSince ??= System.Diagnostics.Stopwatch.GetTimestamp();
        }
        else
        {
            RecordHistory(changes);
            if (alerts is not null)
            {
                AlertWrites.Add(alerts);
            }
            try
            {
                await WriteAsync(plan.Changes, plan.Records.Values, _history, cancellationToken);
            }
            catch
            {
                AlertWrites.Clear(); // the commit failed whole: its alert writes with it
                throw;
            }
            finally
            {
                _history.Clear();
            }
            Publish(plan);
            PublishAlerts(alerts);
        }
        if (_now >= _nextPruneAt)
        {
            // Under steady load the loop is never idle: pruning rides along with commits once a minute.
            Prune(_now);
        }
        if (_now >= _nextHistoryPruneAt)
        {
            PruneHistoryAlongside(_now);
        }
        return plan.Outcomes;
    }

    /// <summary>The commit's history, from its changes, into the pending writes.</summary>
    private void RecordHistory(IReadOnlyList<CounterChange> changes) =>
        _history.Record(changes, _now, historyOptions.Enabled);

    public async ValueTask<IReadOnlyList<HistoryBucket>> ReadHistoryAsync(
        string name, HistoryInterval interval, long from, long to, CancellationToken cancellationToken)
    {
        if (!AcknowledgeBeforeWrite)
        {
            return ReadStoredHistory(name, interval, from, to);
        }
        // Durability=async: what is stored, with what was acknowledged since the last flush written over it.
        await _historyGate.WaitAsync(cancellationToken);
        try
        {
            CounterHistoryWrite? pending;
            lock (_historyLock)
            {
                pending = _history.Find(name)?.Copy();
            }
            if (pending is null)
            {
                return ReadStoredHistory(name, interval, from, to);
            }
            return pending.Over(interval, pending.ClearsStored ? [] : ReadStoredHistory(name, interval, from, to), from, to);
        }
        finally
        {
            _historyGate.Release();
        }
    }

    public async ValueTask FlushAsync(CancellationToken cancellationToken)
    {
        if (_unflushed.Count == 0 && _unflushedRecords.Count == 0)
        {
            return;
        }
        await _historyGate.WaitAsync(cancellationToken);
        try
        {
            await WriteAsync(_unflushed, _unflushedRecords.Values, _history, cancellationToken);
            lock (_historyLock)
            {
                _history.Clear();
            }
        }
        finally
        {
            _historyGate.Release();
        }
        _unflushed.Clear();
        _unflushedRecords.Clear();
        UnflushedSince = null;
    }

    /// <summary>Idle upkeep: expired idempotency records go even when no request arrives.</summary>
    public virtual ValueTask MaintainAsync(CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
        if (now >= _nextPruneAt || _pruneBacklog)
        {
            LoadUsage();
            Prune(now);
        }
        if (now >= _nextHistoryPruneAt)
        {
            PruneHistory(now);
        }
        return ValueTask.CompletedTask;
    }

    public abstract ValueTask<StoreHealth> CheckHealthAsync(CancellationToken cancellationToken);

    public abstract ValueTask DisposeAsync();

    Counter? ICommitState.GetCounter(string name) => Cache.Get(name);

    IdempotencyRecord? ICommitState.FindRecord(string caller, string key)
    {
        var record = _unflushedRecords.GetValueOrDefault((caller, key)) ?? FindIdempotencyRecord(caller, key, notBefore: long.MinValue);
        if (record is null || record.CreatedAt >= _now - (long)idempotencyRetention.TotalMilliseconds)
        {
            return record;
        }
        // Expired but not yet pruned: a new record with this key replaces it, and its bytes stop counting then.
        _expired[(caller, key)] = record.Size;
        return null;
    }

    long ICommitState.CounterCount => Cache.Count;

    long ICommitState.CountOwnedBy(string keyId) => _owned.GetValueOrDefault(keyId);

    long ICommitState.RecordBytesOf(string caller) => _recordBytes.GetValueOrDefault(caller);

    long? ICommitState.OldestRecordOf(string caller)
    {
        if (!_oldestRecord.TryGetValue(caller, out var oldest))
        {
            oldest = OldestIdempotencyRecord(caller) ?? _now;
            _oldestRecord[caller] = oldest;
        }
        return oldest;
    }

    /// <summary>
    /// Writes atomically and durably: the final state of every changed counter (null = deleted), the new idempotency
    /// records, and the history of the same commits (each counter's stored history deleted first where it says so).
    /// </summary>
    protected abstract ValueTask PersistAsync(
        IReadOnlyDictionary<string, Counter?> changes,
        IReadOnlyCollection<IdempotencyRecord> records,
        HistoryWrites history,
        CancellationToken cancellationToken);

    /// <summary>The stored buckets of one counter and interval starting in [<paramref name="from"/>, <paramref name="to"/>), oldest first. Called on request threads.</summary>
    protected abstract IReadOnlyList<HistoryBucket> ReadStoredHistory(string name, HistoryInterval interval, long from, long to);

    /// <summary>Deletes up to <paramref name="limit"/> stored buckets of <paramref name="interval"/> starting before <paramref name="before"/>; returns how many.</summary>
    protected abstract int PruneStoredHistory(HistoryInterval interval, long before, int limit);

    /// <summary>The committed idempotency record created at or after <paramref name="notBefore"/>, or null.</summary>
    protected abstract IdempotencyRecord? FindIdempotencyRecord(string caller, string key, long notBefore);

    /// <summary>The bytes (<see cref="IdempotencyRecord.Size"/>) of the stored records of each API key.</summary>
    protected abstract IEnumerable<KeyValuePair<string, long>> LoadIdempotencyUsage();

    /// <summary>Deletes up to <paramref name="limit"/> records created before <paramref name="cutoff"/>, oldest first; returns who they belonged to and their sizes.</summary>
    protected abstract IReadOnlyList<(string Caller, long Size)> PruneIdempotencyRecords(long cutoff, int limit);

    /// <summary>When the oldest stored record of <paramref name="caller"/> was created, or null when it has none.</summary>
    protected abstract long? OldestIdempotencyRecord(string caller);

    private async ValueTask WriteAsync(
        IReadOnlyDictionary<string, Counter?> changes, IReadOnlyCollection<IdempotencyRecord> records, HistoryWrites history,
        CancellationToken cancellationToken)
    {
        try
        {
            await PersistAsync(changes, records, history, cancellationToken);
            WriteFailure = null;
        }
        catch (Exception ex)
        {
            WriteFailure = ex.Message;
            throw;
        }
        WroteAlerts();
    }

    // ---- Alerts (Alerts/AlertEvaluator). The firing states live here in memory, like the counters. A commit's state
    // changes and events wait in AlertWrites, which PersistAsync writes with the counters, in the same transaction; with
    // Durability=async they accumulate until the flush, like the counters. ----

    /// <summary>The alert definitions the commits evaluate; the engine sets it.</summary>
    protected AlertCatalog? Alerts { get; init; }

    /// <summary>Every firing (alert, counter) pair, as committed (or, with Durability=async, acknowledged).</summary>
    protected AlertStateMap AlertStates { get; } = new();

    /// <summary>Alert states and outbox events that <see cref="PersistAsync"/> must write with the counters.</summary>
    protected AlertOutcome AlertWrites { get; } = new();

    private AlertOutcome? EvaluateAlerts(IReadOnlyList<CounterChange> changes) =>
        Alerts?.Current is { IsEmpty: false } alerts ? AlertEvaluator.Evaluate(alerts, changes, AlertStates, _now) : null;

    /// <summary>The commit is acknowledged: its states count from now on (and with Durability=async, wait for the flush).</summary>
    private void PublishAlerts(AlertOutcome? alerts)
    {
        if (alerts is null)
        {
            return;
        }
        AlertStates.Apply(alerts);
        if (AcknowledgeBeforeWrite)
        {
            AlertWrites.Add(alerts);
        }
        Alerts!.Committed(alerts);
    }

    /// <summary>The alert writes reached the store: the sender may find the events now.</summary>
    private void WroteAlerts()
    {
        if (AlertWrites.IsEmpty)
        {
            return;
        }
        var events = AlertWrites.Events.Count > 0;
        AlertWrites.Clear();
        if (events)
        {
            Alerts?.Wake();
        }
    }

    /// <summary>The commit's changes become visible, and what it used of the quotas is counted.</summary>
    private void Publish(CommitPlan plan)
    {
        Cache.Publish(plan.Changes);
        Add(_owned, plan.Owners);
        Add(_recordBytes, plan.RecordBytes);
        foreach (var ((caller, key), size) in _expired)
        {
            if (plan.Records.ContainsKey((caller, key)))
            {
                Add(_recordBytes, caller, -size);
            }
        }
    }

    private static void Add(Dictionary<string, long> totals, Dictionary<string, long> changes)
    {
        foreach (var (key, change) in changes)
        {
            Add(totals, key, change);
        }
    }

    private static void Add(Dictionary<string, long> totals, string key, long change)
    {
        var total = totals.GetValueOrDefault(key) + change;
        if (total > 0)
        {
            totals[key] = total;
        }
        else
        {
            totals.Remove(key);
        }
    }

    /// <summary>Counts, once, the creators of the stored counters and the stored records' bytes.</summary>
    private void LoadUsage()
    {
        if (_usageLoaded)
        {
            return;
        }
        foreach (var (caller, bytes) in LoadIdempotencyUsage())
        {
            _recordBytes[caller] = bytes;
        }
        // Straight through the table, not in name order: the single writer runs this, so nothing changes meanwhile.
        foreach (var counter in Cache.All)
        {
            if (counter.CreatedBy is { } owner)
            {
                _owned[owner] = _owned.GetValueOrDefault(owner) + 1;
            }
        }
        _usageLoaded = true;
    }

    private void Prune(long now)
    {
        _nextPruneAt = now + (long)PruneEvery.TotalMilliseconds;
        var pruned = PruneIdempotencyRecords(now - (long)idempotencyRetention.TotalMilliseconds, PruneStep);
        foreach (var (caller, size) in pruned)
        {
            Add(_recordBytes, caller, -size);
            _oldestRecord.Remove(caller);
        }
        // A full step means more may have expired: the next idle moment goes on at once.
        _pruneBacklog = pruned.Count == PruneStep;
    }

    /// <summary>
    /// One bounded step of deleting history buckets past their retention, once a minute; while steps come back full,
    /// again a second later, so that a backlog drains without one long pause.
    /// </summary>
    private void PruneHistory(long now)
    {
        _nextHistoryPruneAt = now + 60_000;
        var full = false;
        foreach (var interval in HistoryIntervals.All)
        {
            full |= PruneStoredHistory(interval, historyOptions.OldestKept(interval, now), HistoryPruneStep) == HistoryPruneStep;
        }
        if (full)
        {
            _nextHistoryPruneAt = now + 1000;
        }
    }

    /// <summary>
    /// History pruning riding along with a commit that is already durable: a failure must not turn its answer into an
    /// error. It is tried again a minute later, with a commit or at idle upkeep (where a failure is logged).
    /// </summary>
    private void PruneHistoryAlongside(long now)
    {
        try
        {
            PruneHistory(now);
        }
        catch (Exception ex) when (ex is IOException or System.Data.Common.DbException)
        {
            _nextHistoryPruneAt = now + 60_000;
        }
    }
}
