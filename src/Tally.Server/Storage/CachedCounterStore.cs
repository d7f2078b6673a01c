using Tally.Server.Counters;
using Tally.Server.Pipeline;

namespace Tally.Server.Storage;

/// <summary>
/// A store whose process owns the data (embedded SQLite, memory): the committed state lives in a
/// <see cref="CounterCache"/>, so reads never touch the disk. A batch is applied to an overlay of
/// the cache, persisted as one unit, and only then published, so readers see committed state only.
/// </summary>
internal abstract class CachedCounterStore(TimeProvider clock) : ICounterStore
{
    // Reused across batches: only the pipeline's single loop calls CommitAsync and FlushAsync.
    private readonly Dictionary<string, Counter?> _changes = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Counter?> _unflushed = new(StringComparer.Ordinal);

    /// <summary>
    /// Durability=async: publish and acknowledge a batch as soon as it is applied in memory, and let
    /// <see cref="FlushAsync"/> write the accumulated changes (one row per counter, however often it changed).
    /// </summary>
    protected bool AcknowledgeBeforeWrite { get; init; }

    public long? UnflushedSince { get; private set; }

    protected CounterCache Cache { get; } = new();

    public long Count => Cache.Count;

    public abstract Task OpenAsync(CancellationToken cancellationToken);

    public ValueTask<Counter?> GetAsync(string name, CancellationToken cancellationToken) => ValueTask.FromResult(Cache.Get(name));

    public ValueTask<IReadOnlyList<Counter>> ListAsync(string prefix, string? after, int limit, CancellationToken cancellationToken) =>
        ValueTask.FromResult(Cache.List(prefix, after, limit));

    public async Task CommitAsync(IReadOnlyList<PendingCommand> batch, CancellationToken cancellationToken)
    {
        _changes.Clear();
        var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
        foreach (var pending in batch)
        {
            var name = pending.Command.Name;
            var current = _changes.TryGetValue(name, out var changed) ? changed : Cache.Get(name);
            var result = CounterRules.Apply(pending.Command, current, now);
            pending.Result = result;
            if (result.Changed)
            {
                _changes[name] = result.Status == CommandStatus.Deleted ? null : result.Counter;
            }
        }

        if (_changes.Count == 0)
        {
            return;
        }
        if (AcknowledgeBeforeWrite)
        {
            Cache.Publish(_changes);
            foreach (var (name, counter) in _changes)
            {
                _unflushed[name] = counter;
            }
            UnflushedSince ??= System.Diagnostics.Stopwatch.GetTimestamp();
            return;
        }
        await PersistAsync(_changes, cancellationToken);
        Cache.Publish(_changes);
    }

    public async ValueTask FlushAsync(CancellationToken cancellationToken)
    {
        if (_unflushed.Count == 0)
        {
            return;
        }
        await PersistAsync(_unflushed, cancellationToken);
        _unflushed.Clear();
        UnflushedSince = null;
    }

    public abstract ValueTask<StoreHealth> CheckHealthAsync(CancellationToken cancellationToken);

    public abstract ValueTask DisposeAsync();

    /// <summary>Writes the final state of every changed counter (null = deleted) atomically and durably.</summary>
    protected abstract ValueTask PersistAsync(IReadOnlyDictionary<string, Counter?> changes, CancellationToken cancellationToken);
}
