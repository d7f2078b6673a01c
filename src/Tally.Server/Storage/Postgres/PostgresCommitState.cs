using Tally.Server.Counters;
using Tally.Server.Idempotency;

namespace Tally.Server.Storage.Postgres;

/// <summary>
/// What one PostgreSQL commit loaded, inside its transaction and under its row locks: the counters it
/// touches, the idempotency records it names, and the counts its quotas need. The applier reads only this.
/// </summary>
internal sealed class PostgresCommitState : ICommitState
{
    public Dictionary<string, Counter?> Counters { get; } = new(StringComparer.Ordinal);

    public Dictionary<(string Caller, string Key), IdempotencyRecord> Records { get; } = [];

    public Dictionary<string, long> Owned { get; } = new(StringComparer.Ordinal);

    public Dictionary<string, (long Bytes, long? Oldest)> Usage { get; } = new(StringComparer.Ordinal);

    public long Total { get; set; }

    public void Clear()
    {
        Counters.Clear();
        Records.Clear();
        Owned.Clear();
        Usage.Clear();
        Total = 0;
    }

    public Counter? GetCounter(string name) => Counters.GetValueOrDefault(name);

    public IdempotencyRecord? FindRecord(string caller, string key) => Records.GetValueOrDefault((caller, key));

    public long CounterCount => Total;

    public long CountOwnedBy(string keyId) => Owned.GetValueOrDefault(keyId);

    public long RecordBytesOf(string caller) => Usage.TryGetValue(caller, out var usage) ? usage.Bytes : 0;

    public long? OldestRecordOf(string caller) => Usage.TryGetValue(caller, out var usage) ? usage.Oldest : null;
}
