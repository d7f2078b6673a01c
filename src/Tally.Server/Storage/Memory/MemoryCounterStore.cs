using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using Tally.Server.Configuration;
using Tally.Server.Counters;
using Tally.Server.Idempotency;

namespace Tally.Server.Storage.Memory;

/// <summary>The same rules with no persistence: for tests and ephemeral use. Everything is lost on exit.</summary>
internal sealed class MemoryCounterStore(IOptions<TallyOptions> options, TimeProvider clock)
    : CachedCounterStore(clock, options.Value.IdempotencyRetention)
{
    private readonly ConcurrentDictionary<(string, string), IdempotencyRecord> _records = new();

    public override Task OpenAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public override ValueTask<StoreHealth> CheckHealthAsync(CancellationToken cancellationToken) =>
        ValueTask.FromResult(new StoreHealth(true, "memory store"));

    public override ValueTask DisposeAsync() => ValueTask.CompletedTask;

    protected override ValueTask PersistAsync(
        IReadOnlyDictionary<string, Counter?> changes, IReadOnlyCollection<IdempotencyRecord> records, long? pruneBefore, CancellationToken cancellationToken)
    {
        foreach (var record in records)
        {
            _records[(record.Caller, record.Key)] = record;
        }
        if (pruneBefore is { } cutoff)
        {
            foreach (var (key, record) in _records)
            {
                if (record.CreatedAt < cutoff)
                {
                    _records.TryRemove(key, out _);
                }
            }
        }
        return ValueTask.CompletedTask;
    }

    protected override IdempotencyRecord? FindIdempotencyRecord(string caller, string key, long notBefore) =>
        _records.TryGetValue((caller, key), out var record) && record.CreatedAt >= notBefore ? record : null;
}
