using Tally.Server.Counters;
using Tally.Server.Pipeline;

namespace Tally.Server.Storage;

/// <summary>
/// Where counters live. Reads come straight from the store; every change goes through the
/// commit pipeline, which hands the store a batch of commands to apply as one atomic commit.
/// </summary>
internal interface ICounterStore : IAsyncDisposable
{
    /// <summary>Opens (and if needed creates or migrates) the store. Throws <see cref="StoreStartupException"/> when it cannot.</summary>
    Task OpenAsync(CancellationToken cancellationToken);

    /// <summary>The committed state of one counter, or null.</summary>
    ValueTask<Counter?> GetAsync(string name, CancellationToken cancellationToken);

    /// <summary>Committed counters in name order.</summary>
    ValueTask<IReadOnlyList<Counter>> ListAsync(string prefix, string? after, int limit, CancellationToken cancellationToken);

    /// <summary>
    /// Applies the batch in order with <see cref="CounterRules"/> and persists the outcome atomically.
    /// Sets each request's outcome; returns once the batch is as durable as configured.
    /// Throws when nothing of the batch could be committed (and then nothing of it is visible).
    /// </summary>
    Task CommitAsync(IReadOnlyList<PendingRequest> batch, CancellationToken cancellationToken);

    /// <summary>
    /// With <c>Durability=async</c>: the Stopwatch timestamp of the oldest acknowledged change not yet
    /// on disk, or null when everything acknowledged is durable.
    /// </summary>
    long? UnflushedSince { get; }

    /// <summary>Writes acknowledged changes that are not yet on disk. Throws if the write fails (they stay pending).</summary>
    ValueTask FlushAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Upkeep that must not wait for traffic (pruning expired idempotency records, folding logs).
    /// The commit loop calls it between commits when no request is waiting, about every
    /// <see cref="CommitPipeline.MaintenanceInterval"/>; it should do a bounded step and return.
    /// </summary>
    ValueTask MaintainAsync(CancellationToken cancellationToken);

    /// <summary>How many counters exist (may be approximate for shared stores); for metrics.</summary>
    long Count { get; }

    /// <summary>Whether the store answers; for readiness.</summary>
    ValueTask<StoreHealth> CheckHealthAsync(CancellationToken cancellationToken);
}

internal readonly record struct StoreHealth(bool Healthy, string Description);

/// <summary>The store cannot be opened (not Tally's file, corrupt, newer schema…). Start-up stops with this message.</summary>
internal sealed class StoreStartupException(string message, Exception? inner = null) : Exception(message, inner);
