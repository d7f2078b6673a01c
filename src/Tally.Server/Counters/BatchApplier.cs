using Tally.Server.Batch;
using Tally.Server.Configuration;
using Tally.Server.Idempotency;
using Tally.Server.Pipeline;

namespace Tally.Server.Counters;

/// <summary>
/// What an engine knows, for one commit, of the committed state the commit's requests touch. The engine
/// loads (and, when shared, locks) it before <see cref="BatchApplier.Apply"/>; the applier never does I/O.
/// </summary>
internal interface ICommitState
{
    /// <summary>The committed counter, or null when it does not exist.</summary>
    Counter? GetCounter(string name);

    /// <summary>The committed idempotency record of this caller and key still within retention, or null.</summary>
    IdempotencyRecord? FindRecord(string caller, string key);

    /// <summary>Live counters in the store.</summary>
    long CounterCount { get; }

    /// <summary>Live counters created by the API key <paramref name="keyId"/>.</summary>
    long CountOwnedBy(string keyId);

    /// <summary>Bytes of idempotency records kept for <paramref name="caller"/>.</summary>
    long RecordBytesOf(string caller);

    /// <summary>When the oldest record of <paramref name="caller"/> was created (for <c>Retry-After</c>), or null.</summary>
    long? OldestRecordOf(string caller);
}

/// <summary>
/// The one place where a commit's requests are applied: idempotency replays, the rules in order over an
/// overlay of the committed state, atomic batches, quotas, and new idempotency records. Pure: given the
/// same state and requests it gives the same plan, which the engine then persists atomically. Every
/// engine calls it; none has a copy of it.
/// </summary>
internal sealed class BatchApplier(QuotaOptions quotas, TimeSpan idempotencyRetention)
{
    private readonly CommitPlan _plan = new();
    private readonly Dictionary<string, Counter?> _atomicScratch = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _scratchOwners = new(StringComparer.Ordinal);
    private long _scratchCounters;
    private bool _inScratch;
    private ICommitState _state = null!;

    public TimeSpan IdempotencyRetention => idempotencyRetention;

    /// <summary>
    /// Applies <paramref name="requests"/> in order. The plan is reused: it is valid until the next call.
    /// </summary>
    public CommitPlan Apply(IReadOnlyList<PendingRequest> requests, ICommitState state, long now)
    {
        _state = state;
        _plan.Reset(requests.Count);
        for (var i = 0; i < requests.Count; i++)
        {
            _plan.Outcomes[i] = Apply(requests[i], now);
        }
        _state = null!;
        return _plan;
    }

    private RequestOutcome Apply(PendingRequest request, long now)
    {
        var idempotency = request.Idempotency;
        if (idempotency is not null)
        {
            var existing = _plan.Records.GetValueOrDefault((idempotency.Caller, idempotency.Key))
                ?? _state.FindRecord(idempotency.Caller, idempotency.Key);
            if (existing is not null)
            {
                if (!idempotency.SameRequest(existing.Fingerprint))
                {
                    return new RequestOutcome(CounterFailures.IdempotencyKeyReused());
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
            : new RequestOutcome(ApplyCommand(request.Command!, _plan.Changes, null, request.Requester, now));

        if (idempotency is not null && !RefusedByQuota(outcome))
        {
            var record = new IdempotencyRecord(idempotency.Caller, idempotency.Key, idempotency.Fingerprint, OutcomeCodec.Encode(outcome, now), now);
            _plan.Records[(idempotency.Caller, idempotency.Key)] = record;
            _plan.RecordBytes[idempotency.Caller] = _plan.RecordBytes.GetValueOrDefault(idempotency.Caller) + record.Size;
        }
        return outcome;
    }

    /// <summary>
    /// A key that keeps more than its share of records may not add another until some expire.
    /// The last record admitted may go past the limit by its own size (at most one batch's outcome).
    /// </summary>
    private CommandResult? IdempotencyQuotaExceeded(string caller, long now)
    {
        var used = _state.RecordBytesOf(caller) + _plan.RecordBytes.GetValueOrDefault(caller);
        if (used < quotas.IdempotencyBytesPerKey)
        {
            return null;
        }
        var oldest = _state.OldestRecordOf(caller) ?? now;
        var retention = (long)idempotencyRetention.TotalMilliseconds;
        var seconds = Math.Clamp((oldest + retention - now + 999) / 1000, 1, retention / 1000 + 1);
        return CounterFailures.IdempotencyQuotaExceeded(used, quotas.IdempotencyBytesPerKey, (int)seconds);
    }

    /// <summary>A request refused for a quota applied nothing, so its key is not spent: a retry may succeed once there is room.</summary>
    private static bool RefusedByQuota(in RequestOutcome outcome)
    {
        var error = outcome.Batch is { Aborted: true } aborted ? aborted.Results[aborted.FailedIndex].Error : outcome.Result.Error;
        return outcome.Batch is not { Aborted: false } && error?.Code is ErrorCodes.CounterQuotaExceeded or ErrorCodes.IdempotencyQuotaExceeded;
    }

    private BatchResult ApplyBatch(BatchCommand batch, Requester requester, long now)
    {
        var results = new CommandResult[batch.Operations.Count];
        if (!batch.Atomic)
        {
            for (var i = 0; i < results.Length; i++)
            {
                results[i] = ApplyCommand(batch.Operations[i], _plan.Changes, null, requester, now);
            }
            return new BatchResult(results);
        }

        // All or nothing: apply to a scratch overlay, merged only if every operation succeeds.
        _atomicScratch.Clear();
        _inScratch = true;
        try
        {
            for (var i = 0; i < results.Length; i++)
            {
                results[i] = ApplyCommand(batch.Operations[i], _atomicScratch, _plan.Changes, requester, now);
                if (!results[i].Succeeded)
                {
                    return new BatchResult(results, i);
                }
            }
            foreach (var (name, counter) in _atomicScratch)
            {
                _plan.Changes[name] = counter;
            }
            foreach (var (owner, change) in _scratchOwners)
            {
                _plan.Owners[owner] = _plan.Owners.GetValueOrDefault(owner) + change;
            }
            _plan.CounterDelta += _scratchCounters;
            return new BatchResult(results);
        }
        finally
        {
            _inScratch = false;
            _scratchOwners.Clear();
            _scratchCounters = 0;
        }
    }

    private CommandResult ApplyCommand(
        CounterCommand command, Dictionary<string, Counter?> target, Dictionary<string, Counter?>? below, Requester requester, long now)
    {
        var name = command.Name;
        Counter? current;
        if (!target.TryGetValue(name, out current) && (below is null || !below.TryGetValue(name, out current)))
        {
            current = _state.GetCounter(name);
        }
        var result = CounterRules.Apply(command, current, now);
        if (!result.Changed)
        {
            return result;
        }
        if (result.Status == CommandStatus.Deleted)
        {
            CountOwner(current!.CreatedBy, -1);
            target[name] = null;
            return result;
        }
        if (current is null)
        {
            if (RefuseCreation(requester) is { } refused)
            {
                return refused;
            }
            CountOwner(requester.KeyId, +1);
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

    private CommandResult? RefuseCreation(Requester requester)
    {
        if (_state.CounterCount + _plan.CounterDelta + _scratchCounters >= quotas.MaxCounters)
        {
            return CounterFailures.StoreFull(quotas.MaxCounters);
        }
        if (requester is { MaxCounters: { } limit, KeyId: { } key }
            && _state.CountOwnedBy(key) + _plan.Owners.GetValueOrDefault(key) + _scratchOwners.GetValueOrDefault(key) >= limit)
        {
            return CounterFailures.KeyCounterLimit(limit);
        }
        return null;
    }

    private void CountOwner(string? owner, int change)
    {
        if (_inScratch)
        {
            _scratchCounters += change;
        }
        else
        {
            _plan.CounterDelta += change;
        }
        if (owner is not null)
        {
            var owners = _inScratch ? _scratchOwners : _plan.Owners;
            owners[owner] = owners.GetValueOrDefault(owner) + change;
        }
    }
}

/// <summary>
/// What one commit must persist and what it answers: the final state of every changed counter (null:
/// deleted), the new idempotency records, how the quotas' counts change, and each request's outcome.
/// </summary>
internal sealed class CommitPlan
{
    private const int TrimAbove = 100_000;

    public Dictionary<string, Counter?> Changes { get; private set; } = new(StringComparer.Ordinal);

    public Dictionary<(string Caller, string Key), IdempotencyRecord> Records { get; } = [];

    /// <summary>Change of live counters per creating API key.</summary>
    public Dictionary<string, long> Owners { get; } = new(StringComparer.Ordinal);

    /// <summary>Change of live counters in the store.</summary>
    public long CounterDelta { get; set; }

    /// <summary>Bytes of new idempotency records per caller.</summary>
    public Dictionary<string, long> RecordBytes { get; } = new(StringComparer.Ordinal);

    public RequestOutcome[] Outcomes { get; private set; } = [];

    public bool HasWrites => Changes.Count > 0 || Records.Count > 0;

    public void Reset(int requests)
    {
        // A huge commit (an import) must not leave a huge table behind for every later one.
        if (Changes.Count > TrimAbove)
        {
            Changes = new Dictionary<string, Counter?>(StringComparer.Ordinal);
        }
        Changes.Clear();
        Records.Clear();
        Owners.Clear();
        RecordBytes.Clear();
        CounterDelta = 0;
        Outcomes = new RequestOutcome[requests];
    }
}
