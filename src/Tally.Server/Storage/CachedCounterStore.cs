using Tally.Server.Batch;
using Tally.Server.Configuration;
using Tally.Server.Counters;
using Tally.Server.Idempotency;
using Tally.Server.Pipeline;

namespace Tally.Server.Storage;

/// <summary>
/// A store whose process owns the data (embedded SQLite, memory): the committed state lives in a
/// <see cref="CounterCache"/>, so reads never touch the disk. A batch is applied to an overlay of
/// the cache, persisted as one unit with its idempotency records, and only then published, so
/// readers see committed state only. Quotas are decided here, in the same single-threaded apply:
/// the counters each API key has created, the store's total, and the idempotency bytes each key keeps.
/// </summary>
internal abstract class CachedCounterStore(TimeProvider clock, TimeSpan idempotencyRetention, QuotaOptions quotas) : ICounterStore
{
    private static readonly TimeSpan PruneEvery = TimeSpan.FromMinutes(1);

    /// <summary>Expired records deleted per step, so that a large backlog never stalls the commit loop.</summary>
    private const int PruneStep = 5000;

    // Reused across batches: only the pipeline's single loop calls CommitAsync, FlushAsync and MaintainAsync.
    private readonly Dictionary<string, Counter?> _changes = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Counter?> _atomicScratch = new(StringComparer.Ordinal);
    private readonly Dictionary<(string Caller, string Key), IdempotencyRecord> _records = [];
    private readonly Dictionary<string, Counter?> _unflushed = new(StringComparer.Ordinal);
    private readonly Dictionary<(string Caller, string Key), IdempotencyRecord> _unflushedRecords = [];
    private readonly CounterOwnership _ownership = new();
    private readonly Dictionary<string, long> _recordBytes = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _pendingRecordBytes = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _oldestRecord = new(StringComparer.Ordinal);
    private bool _usageLoaded;
    private long _nextPruneAt;
    private bool _pruneBacklog;

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

    public async Task CommitAsync(IReadOnlyList<PendingRequest> batch, CancellationToken cancellationToken)
    {
        LoadUsage();
        _changes.Clear();
        _records.Clear();
        _pendingRecordBytes.Clear();
        _ownership.BeginCommit();
        var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
        foreach (var request in batch)
        {
            request.Outcome = Apply(request, now);
        }
        if (_changes.Count == 0 && _records.Count == 0)
        {
            return;
        }

        if (AcknowledgeBeforeWrite)
        {
            if (WriteFailure is { } failure)
            {
                // Acknowledging more while the disk refuses would widen the loss window without bound.
                throw new IOException($"Acknowledged changes cannot be written: {failure}");
            }
            Publish();
            foreach (var (name, counter) in _changes)
            {
                _unflushed[name] = counter;
            }
            foreach (var (key, record) in _records)
            {
                _unflushedRecords[key] = record;
            }
            UnflushedSince ??= System.Diagnostics.Stopwatch.GetTimestamp();
        }
        else
        {
            await WriteAsync(_changes, _records.Values, cancellationToken);
            Publish();
        }
        if (now >= _nextPruneAt)
        {
            // Under steady load the loop is never idle: pruning rides along with commits once a minute.
            Prune(now);
        }
    }

    public async ValueTask FlushAsync(CancellationToken cancellationToken)
    {
        if (_unflushed.Count == 0 && _unflushedRecords.Count == 0)
        {
            return;
        }
        await WriteAsync(_unflushed, _unflushedRecords.Values, cancellationToken);
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
        return ValueTask.CompletedTask;
    }

    public abstract ValueTask<StoreHealth> CheckHealthAsync(CancellationToken cancellationToken);

    public abstract ValueTask DisposeAsync();

    /// <summary>Writes atomically and durably: the final state of every changed counter (null = deleted) and the new idempotency records.</summary>
    protected abstract ValueTask PersistAsync(
        IReadOnlyDictionary<string, Counter?> changes,
        IReadOnlyCollection<IdempotencyRecord> records,
        CancellationToken cancellationToken);

    /// <summary>A committed idempotency record created at or after <paramref name="notBefore"/>, or null.</summary>
    protected abstract IdempotencyRecord? FindIdempotencyRecord(string caller, string key, long notBefore);

    /// <summary>The bytes (<see cref="IdempotencyRecord.Size"/>) of the stored records of each API key.</summary>
    protected abstract IEnumerable<KeyValuePair<string, long>> LoadIdempotencyUsage();

    /// <summary>Deletes up to <paramref name="limit"/> records created before <paramref name="cutoff"/>, oldest first; returns who they belonged to and their sizes.</summary>
    protected abstract IReadOnlyList<(string Caller, long Size)> PruneIdempotencyRecords(long cutoff, int limit);

    /// <summary>When the oldest stored record of <paramref name="caller"/> was created, or null when it has none.</summary>
    protected abstract long? OldestIdempotencyRecord(string caller);

    private async ValueTask WriteAsync(
        IReadOnlyDictionary<string, Counter?> changes, IReadOnlyCollection<IdempotencyRecord> records, CancellationToken cancellationToken)
    {
        try
        {
            await PersistAsync(changes, records, cancellationToken);
            WriteFailure = null;
        }
        catch (Exception ex)
        {
            WriteFailure = ex.Message;
            throw;
        }
    }

    /// <summary>The commit's changes become visible, and what it used of the quotas is counted.</summary>
    private void Publish()
    {
        Cache.Publish(_changes);
        _ownership.EndCommit();
        foreach (var (caller, bytes) in _pendingRecordBytes)
        {
            _recordBytes[caller] = _recordBytes.GetValueOrDefault(caller) + bytes;
        }
    }

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
        _ownership.Load(Cache);
        _usageLoaded = true;
    }

    private void Prune(long now)
    {
        _nextPruneAt = now + (long)PruneEvery.TotalMilliseconds;
        var pruned = PruneIdempotencyRecords(now - (long)idempotencyRetention.TotalMilliseconds, PruneStep);
        foreach (var (caller, size) in pruned)
        {
            var left = _recordBytes.GetValueOrDefault(caller) - size;
            if (left > 0)
            {
                _recordBytes[caller] = left;
            }
            else
            {
                _recordBytes.Remove(caller);
            }
            _oldestRecord.Remove(caller);
        }
        // A full step means more may have expired: the next idle moment goes on at once.
        _pruneBacklog = pruned.Count == PruneStep;
    }

    private RequestOutcome Apply(PendingRequest request, long now)
    {
        var idempotency = request.Idempotency;
        if (idempotency is not null)
        {
            var existing = FindRecord(idempotency, now);
            if (existing is not null)
            {
                if (!idempotency.SameRequest(existing.Fingerprint))
                {
                    return new RequestOutcome(CommandResult.Fail(ErrorCodes.IdempotencyKeyReused,
                        "This Idempotency-Key was already used for a different request (method, path or body). Use a new key for a new request."));
                }
                return existing.Legacy is { } legacy
                    ? new RequestOutcome(default, Response: legacy, Replayed: true)
                    : OutcomeCodec.Decode(existing.Outcome, request.Command, request.Batch, existing.CreatedAt) with { Replayed = true };
            }
            if (IdempotencyQuotaExceeded(idempotency.Caller, now) is { } refused)
            {
                return new RequestOutcome(refused);
            }
        }

        var outcome = request.Batch is { } batch
            ? new RequestOutcome(default, ApplyBatch(batch, request.Requester, now))
            : new RequestOutcome(ApplyCommand(request.Command!, _changes, null, request.Requester, now));

        if (idempotency is not null && !RefusedByQuota(outcome))
        {
            var record = new IdempotencyRecord(idempotency.Caller, idempotency.Key, idempotency.Fingerprint, OutcomeCodec.Encode(outcome, now), now);
            _records[(idempotency.Caller, idempotency.Key)] = record;
            _pendingRecordBytes[idempotency.Caller] = _pendingRecordBytes.GetValueOrDefault(idempotency.Caller) + record.Size;
        }
        return outcome;
    }

    /// <summary>
    /// A key that keeps more than its share of records may not add another until some expire.
    /// The last record admitted may go past the limit by its own size (at most one batch's outcome).
    /// </summary>
    private CommandResult? IdempotencyQuotaExceeded(string caller, long now)
    {
        var used = _recordBytes.GetValueOrDefault(caller) + _pendingRecordBytes.GetValueOrDefault(caller);
        if (used < quotas.IdempotencyBytesPerKey)
        {
            return null;
        }
        if (!_oldestRecord.TryGetValue(caller, out var oldest))
        {
            oldest = OldestIdempotencyRecord(caller) ?? now;
            _oldestRecord[caller] = oldest;
        }
        var retention = (long)idempotencyRetention.TotalMilliseconds;
        var seconds = Math.Clamp((oldest + retention - now + 999) / 1000, 1, retention / 1000 + 1);
        var error = new CounterError(ErrorCodes.IdempotencyQuotaExceeded,
            $"This API key keeps {used} bytes of idempotency records, its limit is {quotas.IdempotencyBytesPerKey}; nothing was applied. Records expire after the retention window: retry then, or send requests without an Idempotency-Key.")
        {
            RetryAfterSeconds = (int)seconds,
        };
        return new CommandResult(CommandStatus.Failed, null, error, false);
    }

    /// <summary>A request refused for a quota applied nothing, so its key is not spent: a retry may succeed once there is room.</summary>
    private static bool RefusedByQuota(in RequestOutcome outcome)
    {
        var error = outcome.Batch is { Aborted: true } aborted ? aborted.Results[aborted.FailedIndex].Error : outcome.Result.Error;
        return outcome.Batch is not { Aborted: false } && error?.Code is ErrorCodes.CounterQuotaExceeded or ErrorCodes.IdempotencyQuotaExceeded;
    }

    private IdempotencyRecord? FindRecord(IdempotencyKey key, long now)
    {
        var id = (key.Caller, key.Key);
        if (_records.TryGetValue(id, out var pending) || _unflushedRecords.TryGetValue(id, out pending))
        {
            return pending;
        }
        return FindIdempotencyRecord(key.Caller, key.Key, now - (long)idempotencyRetention.TotalMilliseconds);
    }

    private BatchResult ApplyBatch(BatchCommand batch, Requester requester, long now)
    {
        var results = new CommandResult[batch.Operations.Count];
        if (!batch.Atomic)
        {
            for (var i = 0; i < results.Length; i++)
            {
                results[i] = ApplyCommand(batch.Operations[i], _changes, null, requester, now);
            }
            return new BatchResult(results);
        }

        // All or nothing: apply to a scratch overlay, merged only if every operation succeeds.
        _atomicScratch.Clear();
        _ownership.BeginScratch();
        for (var i = 0; i < results.Length; i++)
        {
            results[i] = ApplyCommand(batch.Operations[i], _atomicScratch, _changes, requester, now);
            if (!results[i].Succeeded)
            {
                _ownership.DiscardScratch();
                return new BatchResult(results, i);
            }
        }
        foreach (var (name, counter) in _atomicScratch)
        {
            _changes[name] = counter;
        }
        _ownership.KeepScratch();
        return new BatchResult(results);
    }

    private CommandResult ApplyCommand(
        CounterCommand command, Dictionary<string, Counter?> target, Dictionary<string, Counter?>? below, Requester requester, long now)
    {
        var name = command.Name;
        Counter? current;
        if (!target.TryGetValue(name, out current) && (below is null || !below.TryGetValue(name, out current)))
        {
            current = Cache.Get(name);
        }
        var result = CounterRules.Apply(command, current, now);
        if (!result.Changed)
        {
            return result;
        }
        if (result.Status == CommandStatus.Deleted)
        {
            _ownership.Deleted(current!);
            target[name] = null;
            return result;
        }
        if (current is null)
        {
            if (_ownership.RefuseCreation(requester, Cache.Count, quotas.MaxCounters) is { } refused)
            {
                return CommandResult.Fail(ErrorCodes.CounterQuotaExceeded, refused);
            }
            _ownership.Created(requester.KeyId);
        }

        // The creator stays with the counter through every change (import included), and a new one is the requester's.
        var owner = current is null ? requester.KeyId : current.CreatedBy;
        if (!string.Equals(result.Counter!.CreatedBy, owner, StringComparison.Ordinal))
        {
            result = result with { Counter = result.Counter with { CreatedBy = owner } };
        }
        target[name] = result.Counter;
        return result;
    }
}
