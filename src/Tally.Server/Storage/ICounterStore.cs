using Tally.Server.Counters;
using Tally.Server.History;
using Tally.Server.Pipeline;

namespace Tally.Server.Storage;

/// <summary>
/// A counter engine: where counters live. Reads come straight from it; every change goes through the
/// commit pipeline, which hands it a batch of requests to apply (with <see cref="BatchApplier"/>) and
/// persist as one atomic commit. What only some engines can do is in small optional interfaces:
/// <see cref="IDeferredDurability"/>, <see cref="IStoreUpkeep"/>, <see cref="Backup.IBackupSource"/>.
/// </summary>
internal interface ICounterStore : IAsyncDisposable
{
    /// <summary>Opens (and if needed creates or migrates) the store. Throws <see cref="StoreStartupException"/> when it cannot.</summary>
    Task OpenAsync(CancellationToken cancellationToken);

    /// <summary>The committed state of one counter, or null. Throws <see cref="StoreUnavailableException"/> when the store does not answer.</summary>
    ValueTask<Counter?> GetAsync(string name, CancellationToken cancellationToken);

    /// <summary>Committed counters in ordinal name order. Throws <see cref="StoreUnavailableException"/> when the store does not answer.</summary>
    ValueTask<IReadOnlyList<Counter>> ListAsync(string prefix, string? after, int limit, CancellationToken cancellationToken);

    /// <summary>
    /// The committed counters under <paramref name="prefix"/> with the highest values, highest first, ties in ordinal
    /// name order (<see cref="TopCounters"/>). Throws <see cref="StoreUnavailableException"/> when the store does not answer.
    /// </summary>
    ValueTask<IReadOnlyList<Counter>> TopAsync(string prefix, int limit, CancellationToken cancellationToken);

    /// <summary>
    /// Applies the batch in order and persists the result atomically; returns each request's outcome, in
    /// order, once the batch is as durable as configured. Throws when nothing of the batch could be
    /// committed (and then nothing of it is visible).
    /// </summary>
    ValueTask<IReadOnlyList<RequestOutcome>> CommitAsync(IReadOnlyList<PendingRequest> batch, CancellationToken cancellationToken);

    /// <summary>
    /// One counter's committed history in one interval: the buckets whose start lies in [<paramref name="from"/>,
    /// <paramref name="to"/>), oldest first (none for a counter that does not exist). Buckets past the retention may
    /// still be there until upkeep prunes them; the caller leaves them out. Throws <see cref="StoreUnavailableException"/>
    /// when the store does not answer.
    /// </summary>
    ValueTask<IReadOnlyList<HistoryBucket>> ReadHistoryAsync(string name, HistoryInterval interval, long from, long to, CancellationToken cancellationToken);

    /// <summary>How many counters exist (may be approximate for shared stores); for metrics.</summary>
    long Count { get; }

    /// <summary>Whether the store answers; for readiness.</summary>
    ValueTask<StoreHealth> CheckHealthAsync(CancellationToken cancellationToken);
}

/// <summary>
/// An engine that may acknowledge before its write is durable (<c>Durability=async</c>): the pipeline
/// flushes it within the configured interval and before stopping.
/// </summary>
internal interface IDeferredDurability
{
    /// <summary>The Stopwatch timestamp of the oldest acknowledged change not yet durable, or null when there is none.</summary>
    long? UnflushedSince { get; }

    /// <summary>Writes acknowledged changes that are not yet durable. Throws if the write fails (they stay pending).</summary>
    ValueTask FlushAsync(CancellationToken cancellationToken);
}

/// <summary>An engine with upkeep that must not wait for traffic (pruning expired idempotency records, folding logs).</summary>
internal interface IStoreUpkeep
{
    /// <summary>
    /// One bounded step of upkeep. The commit loop calls it between commits when no request is waiting,
    /// about every <see cref="CommitPipeline.MaintenanceInterval"/>, never concurrently with a commit.
    /// </summary>
    ValueTask MaintainAsync(CancellationToken cancellationToken);
}

internal readonly record struct StoreHealth(bool Healthy, string Description);

/// <summary>The store cannot be opened (not Tally's file, corrupt, newer schema…). Start-up stops with this message.</summary>
internal sealed class StoreStartupException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>The store does not answer (a shared database down or unreachable): the request gets <c>503 store_unavailable</c>.</summary>
internal sealed class StoreUnavailableException(string message, Exception? inner = null) : Exception(message, inner);
