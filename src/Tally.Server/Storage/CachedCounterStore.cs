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
    // Reused across batches: only the pipeline's single loop calls CommitAsync.
    private readonly Dictionary<string, Counter?> _changes = new(StringComparer.Ordinal);

    protected CounterCache Cache { get; } = new();

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

        if (_changes.Count > 0)
        {
            await PersistAsync(_changes, cancellationToken);
            Cache.Publish(_changes);
        }
    }

    public abstract ValueTask<StoreHealth> CheckHealthAsync(CancellationToken cancellationToken);

    public abstract ValueTask DisposeAsync();

    /// <summary>Writes the final state of every changed counter (null = deleted) atomically and durably.</summary>
    protected abstract ValueTask PersistAsync(IReadOnlyDictionary<string, Counter?> changes, CancellationToken cancellationToken);
}
