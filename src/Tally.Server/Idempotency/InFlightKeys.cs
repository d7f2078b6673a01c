using System.Collections.Concurrent;

namespace Tally.Server.Idempotency;

/// <summary>
/// Keys whose first request is still being processed. A second request with the same key gets
/// 409 instead of waiting or applying twice; once the first is answered, retries replay it.
/// </summary>
internal sealed class InFlightKeys
{
    private readonly ConcurrentDictionary<(string Caller, string Key), byte> _keys = new();

    public bool TryEnter(IdempotencyKey key) => _keys.TryAdd((key.Caller, key.Key), 0);

    public void Exit(IdempotencyKey key) => _keys.TryRemove((key.Caller, key.Key), out _);
}
