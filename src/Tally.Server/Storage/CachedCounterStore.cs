using Tally.Server.Batch;
using Tally.Server.Counters;
using Tally.Server.Http;
using Tally.Server.Idempotency;
using Tally.Server.Pipeline;

namespace Tally.Server.Storage;

/// <summary>
/// A store whose process owns the data (embedded SQLite, memory): the committed state lives in a
/// <see cref="CounterCache"/>, so reads never touch the disk. A batch is applied to an overlay of
/// the cache, persisted as one unit with its idempotency records, and only then published, so
/// readers see committed state only.
/// </summary>
internal abstract class CachedCounterStore(TimeProvider clock, TimeSpan idempotencyRetention) : ICounterStore
{
    private static readonly TimeSpan PruneEvery = TimeSpan.FromMinutes(1);

    // Reused across batches: only the pipeline's single loop calls CommitAsync and FlushAsync.
    private readonly Dictionary<string, Counter?> _changes = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Counter?> _atomicScratch = new(StringComparer.Ordinal);
    private readonly Dictionary<(string Caller, string Key), IdempotencyRecord> _records = [];
    private readonly Dictionary<string, Counter?> _unflushed = new(StringComparer.Ordinal);
    private readonly Dictionary<(string Caller, string Key), IdempotencyRecord> _unflushedRecords = [];
    private long _nextPruneAt;

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
        _changes.Clear();
        _records.Clear();
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
            Cache.Publish(_changes);
            foreach (var (name, counter) in _changes)
            {
                _unflushed[name] = counter;
            }
            foreach (var (key, record) in _records)
            {
                _unflushedRecords[key] = record;
            }
            UnflushedSince ??= System.Diagnostics.Stopwatch.GetTimestamp();
            return;
        }
        await WriteAsync(_changes, _records.Values, PruneCutoff(now), cancellationToken);
        Cache.Publish(_changes);
    }

    public async ValueTask FlushAsync(CancellationToken cancellationToken)
    {
        if (_unflushed.Count == 0 && _unflushedRecords.Count == 0)
        {
            return;
        }
        await WriteAsync(_unflushed, _unflushedRecords.Values, PruneCutoff(clock.GetUtcNow().ToUnixTimeMilliseconds()), cancellationToken);
        _unflushed.Clear();
        _unflushedRecords.Clear();
        UnflushedSince = null;
    }

    public virtual ValueTask MaintainAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public abstract ValueTask<StoreHealth> CheckHealthAsync(CancellationToken cancellationToken);

    public abstract ValueTask DisposeAsync();

    /// <summary>
    /// Writes atomically and durably: the final state of every changed counter (null = deleted), the
    /// new idempotency records, and, when <paramref name="pruneBefore"/> is set, drops records older than it.
    /// </summary>
    protected abstract ValueTask PersistAsync(
        IReadOnlyDictionary<string, Counter?> changes,
        IReadOnlyCollection<IdempotencyRecord> records,
        long? pruneBefore,
        CancellationToken cancellationToken);

    /// <summary>A committed idempotency record created at or after <paramref name="notBefore"/>, or null.</summary>
    protected abstract IdempotencyRecord? FindIdempotencyRecord(string caller, string key, long notBefore);

    private async ValueTask WriteAsync(
        IReadOnlyDictionary<string, Counter?> changes, IReadOnlyCollection<IdempotencyRecord> records, long? pruneBefore, CancellationToken cancellationToken)
    {
        try
        {
            await PersistAsync(changes, records, pruneBefore, cancellationToken);
            WriteFailure = null;
        }
        catch (Exception ex)
        {
            WriteFailure = ex.Message;
            throw;
        }
    }

    private RequestOutcome Apply(PendingRequest request, long now)
    {
        var idempotency = request.Idempotency;
        if (idempotency is not null)
        {
            var existing = FindRecord(idempotency, now);
            if (existing is not null)
            {
                return idempotency.SameRequest(existing.Fingerprint)
                    ? new RequestOutcome(default, Response: existing.Response, Replayed: true)
                    : new RequestOutcome(CommandResult.Fail(ErrorCodes.IdempotencyKeyReused,
                        "This Idempotency-Key was already used for a different request (method, path or body). Use a new key for a new request."));
            }
        }

        var outcome = request.Batch is { } batch
            ? new RequestOutcome(default, ApplyBatch(batch, now))
            : new RequestOutcome(ApplyCommand(request.Command!, _changes, null, now));

        if (idempotency is not null)
        {
            var response = ResponseRenderer.Render(outcome);
            _records[(idempotency.Caller, idempotency.Key)] = new IdempotencyRecord(idempotency.Caller, idempotency.Key, idempotency.Fingerprint, response, now);
            outcome = outcome with { Response = response };
        }
        return outcome;
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

    private BatchResult ApplyBatch(BatchCommand batch, long now)
    {
        var results = new CommandResult[batch.Operations.Count];
        if (!batch.Atomic)
        {
            for (var i = 0; i < results.Length; i++)
            {
                results[i] = ApplyCommand(batch.Operations[i], _changes, null, now);
            }
            return new BatchResult(results);
        }

        // All or nothing: apply to a scratch overlay, merged only if every operation succeeds.
        _atomicScratch.Clear();
        for (var i = 0; i < results.Length; i++)
        {
            results[i] = ApplyCommand(batch.Operations[i], _atomicScratch, _changes, now);
            if (!results[i].Succeeded)
            {
                return new BatchResult(results, i);
            }
        }
        foreach (var (name, counter) in _atomicScratch)
        {
            _changes[name] = counter;
        }
        return new BatchResult(results);
    }

    private CommandResult ApplyCommand(CounterCommand command, Dictionary<string, Counter?> target, Dictionary<string, Counter?>? below, long now)
    {
        var name = command.Name;
        Counter? current;
        if (!target.TryGetValue(name, out current) && (below is null || !below.TryGetValue(name, out current)))
        {
            current = Cache.Get(name);
        }
        var result = CounterRules.Apply(command, current, now);
        if (result.Changed)
        {
            target[name] = result.Status == CommandStatus.Deleted ? null : result.Counter;
        }
        return result;
    }

    private long? PruneCutoff(long now)
    {
        if (now < _nextPruneAt)
        {
            return null;
        }
        _nextPruneAt = now + (long)PruneEvery.TotalMilliseconds;
        return now - (long)idempotencyRetention.TotalMilliseconds;
    }
}
