using Tally.Server.Counters;

namespace Tally.Server.Storage.Memory;

/// <summary>The same rules with no persistence: for tests and ephemeral use. Everything is lost on exit.</summary>
internal sealed class MemoryCounterStore(TimeProvider clock) : CachedCounterStore(clock)
{
    public override Task OpenAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public override ValueTask<StoreHealth> CheckHealthAsync(CancellationToken cancellationToken) =>
        ValueTask.FromResult(new StoreHealth(true, "memory store"));

    public override ValueTask DisposeAsync() => ValueTask.CompletedTask;

    protected override ValueTask PersistAsync(IReadOnlyDictionary<string, Counter?> changes, CancellationToken cancellationToken) =>
        ValueTask.CompletedTask;
}
