using StackExchange.Redis;
using Tally.Server.Configuration;

namespace Tally.Server.Storage.Redis;

/// <summary>
/// What Redis promises about an acknowledged write, read from its settings at start. With <c>appendonly yes</c>
/// and <c>appendfsync always</c>, Redis writes and fsyncs its AOF before it replies, so a 2xx is on disk; with
/// anything less a crash of Redis loses acknowledged changes. An eviction policy other than <c>noeviction</c>
/// would let Redis drop counters (or idempotency records, which carry a TTL) when memory runs short.
/// </summary>
internal static class RedisPersistence
{
    /// <summary>Why this Redis would lose acknowledged changes, or null when it would not.</summary>
    public static async Task<string?> CheckAsync(IDatabase database)
    {
        string appendOnly, appendFsync, eviction, noFsyncOnRewrite;
        try
        {
            appendOnly = await ConfigAsync(database, "appendonly");
            appendFsync = await ConfigAsync(database, "appendfsync");
            eviction = await ConfigAsync(database, "maxmemory-policy");
            noFsyncOnRewrite = await ConfigAsync(database, "no-appendfsync-on-rewrite");
        }
        catch (RedisServerException ex)
        {
            return $"Tally cannot read Redis's persistence settings (CONFIG GET answered: {ex.Message}), so it cannot tell whether an acknowledged change is on disk";
        }
        var problems = new List<string>();
        if (!string.Equals(appendOnly, "yes", StringComparison.OrdinalIgnoreCase))
        {
            problems.Add($"appendonly is {appendOnly} (needs yes)");
        }
        else if (!string.Equals(appendFsync, "always", StringComparison.OrdinalIgnoreCase))
        {
            problems.Add($"appendfsync is {appendFsync} (needs always: with everysec a crash of Redis loses up to a second of acknowledged changes)");
        }
        if (string.Equals(noFsyncOnRewrite, "yes", StringComparison.OrdinalIgnoreCase))
        {
            problems.Add("no-appendfsync-on-rewrite is yes (needs no: Redis skips the fsync while it rewrites its AOF, so a crash then loses acknowledged changes)");
        }
        if (!string.Equals(eviction, "noeviction", StringComparison.OrdinalIgnoreCase))
        {
            problems.Add($"maxmemory-policy is {eviction} (needs noeviction: Redis would drop counters or idempotency records when memory runs short)");
        }
        return problems.Count == 0 ? null : $"this Redis would lose acknowledged changes: {string.Join("; ", problems)}";
    }

    /// <summary>The message that stops the start, or null: with <see cref="TallyOptions.RedisAllowDataLoss"/> the caller warns instead.</summary>
    public static string Refusal(string problem) =>
        $"Store=redis with Durability=sync refuses to start: {problem}. Set them in redis.conf (or CONFIG SET appendonly yes, appendfsync always, " +
        "maxmemory-policy noeviction), or set RedisAllowDataLoss=true to run anyway.";

    private static async Task<string> ConfigAsync(IDatabase database, string name)
    {
        var reply = await database.ExecuteAsync("CONFIG", "GET", name);
        var values = (RedisResult[])reply!;
        return values.Length >= 2 ? (string)values[1]! : "(unknown)";
    }
}
