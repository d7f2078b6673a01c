using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using Tally.Server.Alerts;
using Tally.Server.Configuration;
using Tally.Server.Counters;
using Tally.Server.History;
using Tally.Server.Idempotency;

namespace Tally.Server.Storage.Memory;

/// <summary>The same rules with no persistence: for tests and ephemeral use. Everything is lost on exit.</summary>
internal sealed class MemoryCounterStore : CachedCounterStore
{
    private readonly ConcurrentDictionary<(string, string), IdempotencyRecord> _records = new();
    private readonly MemoryHistory _history = new();
    private readonly MemoryAlertStore _alertStore;

    public MemoryCounterStore(
        IOptions<TallyOptions> options, IOptions<QuotaOptions> quotas, IOptions<HistoryOptions> history, TimeProvider clock,
        AlertCatalog alerts, MemoryAlertStore alertStore)
        : base(clock, options.Value.IdempotencyRetention, quotas.Value, history.Value)
    {
        Alerts = alerts;
        _alertStore = alertStore;
    }

    public override Task OpenAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public override ValueTask<StoreHealth> CheckHealthAsync(CancellationToken cancellationToken) =>
        ValueTask.FromResult(new StoreHealth(true, "memory store"));

    public override ValueTask DisposeAsync() => ValueTask.CompletedTask;

    protected override ValueTask PersistAsync(
        IReadOnlyDictionary<string, Counter?> changes, IReadOnlyCollection<IdempotencyRecord> records, HistoryWrites history,
        CancellationToken cancellationToken)
    {
        foreach (var record in records)
        {
            _records[(record.Caller, record.Key)] = record;
        }
        _history.Write(history);
        _alertStore.Append(AlertWrites.Events);
        return ValueTask.CompletedTask;
    }

    protected override IReadOnlyList<HistoryBucket> ReadStoredHistory(string name, HistoryInterval interval, long from, long to) =>
        _history.Read(name, interval, from, to);

    protected override int PruneStoredHistory(HistoryInterval interval, long before, int limit) => _history.Prune(interval, before, limit);

    protected override IdempotencyRecord? FindIdempotencyRecord(string caller, string key, long notBefore) =>
        _records.TryGetValue((caller, key), out var record) && record.CreatedAt >= notBefore ? record : null;

    protected override IEnumerable<KeyValuePair<string, long>> LoadIdempotencyUsage() => [];

    protected override IReadOnlyList<(string Caller, long Size)> PruneIdempotencyRecords(long cutoff, int limit)
    {
        var pruned = new List<(string, long)>();
        foreach (var (key, record) in _records.Where(entry => entry.Value.CreatedAt < cutoff).OrderBy(entry => entry.Value.CreatedAt).Take(limit).ToList())
        {
            if (_records.TryRemove(key, out _))
            {
                pruned.Add((record.Caller, record.Size));
            }
        }
        return pruned;
    }

    protected override long? OldestIdempotencyRecord(string caller) =>
        _records.Values.Where(record => record.Caller == caller).Select(record => (long?)record.CreatedAt).Min();
}
