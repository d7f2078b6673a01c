using StackExchange.Redis;
using Tally.Server.Storage.Redis;
using Tally.Server.Tests.Infrastructure;
using Tally.Server.Tests.Process;

namespace Tally.Server.Tests.Redis;

/// <summary>
/// The durability check at start: with <c>Durability=sync</c> (the only durability <c>Store=redis</c> takes), a Redis
/// that would lose acknowledged writes stops the start, with exit code 2 and one line saying what to change, and
/// Tally writes nothing into it; <c>RedisAllowDataLoss=true</c> starts anyway, warning loudly.
/// </summary>
[Trait("Layer", "Process")]
public sealed class RedisStartupTests
{
    private const string Refusal = "Store=redis with Durability=sync refuses to start: this Redis would lose acknowledged changes: ";

    [Theory]
    [InlineData("appendonly", "no", "appendonly is no (needs yes)")]
    [InlineData("appendfsync", "everysec", "appendfsync is everysec (needs always")]
    [InlineData("maxmemory-policy", "allkeys-lru", "maxmemory-policy is allkeys-lru (needs noeviction")]
    public async Task ARedisThatWouldLoseAcknowledgedWritesStopsTheStart(string setting, string value, string named)
    {
        await using var server = await RedisServer.StartNewAsync(new Dictionary<string, string> { [setting] = value });
        using var dataDir = new TempDirectory();
        await using var tally = TallyProcess.Start(dataDir.Path, "--Store", "redis", "--Redis", server.ConfigurationString);

        await tally.AssertFailedStartAsync(Refusal + named);
        Assert.Contains("RedisAllowDataLoss=true", tally.StandardError, StringComparison.Ordinal);
        // Nothing of the store: no function library, no counter, no key, and no heartbeat (the store opens first).
        await using var connection = await ConnectionMultiplexer.ConnectAsync($"{server.ConfigurationString},allowAdmin=true");
        var database = connection.GetDatabase();
        var functions = (RedisResult[])(await database.ExecuteAsync("FUNCTION", "LIST"))!;
        var written = ((RedisResult[])(await database.ExecuteAsync("KEYS", "*"))!)
            .Select(key => (string)key!).ToList();
        Assert.True(functions.Length == 0 && written.Count == 0,
            $"A refused start wrote into Redis: {functions.Length} function libraries, keys {string.Join(", ", written)}.\n{server.Describe()}");
    }

    [Fact]
    public async Task RedisAllowDataLossStartsAnywayWithALoudWarning()
    {
        await using var server = await RedisServer.StartNewAsync(new Dictionary<string, string> { ["appendfsync"] = "everysec" });
        using var dataDir = new TempDirectory();
        await using var tally = TallyProcess.Start(dataDir.Path, "--Store", "redis", "--Redis", server.ConfigurationString, "--RedisAllowDataLoss", "true");

        await tally.WaitUntilReadyAsync();
        using var client = tally.CreateClient();
        Assert.Equal(1, (await (await client.IncrementAsync("works")).ReadCounterAsync()).Value);
        var log = tally.StandardOutput + tally.StandardError;
        Assert.True(log.Contains("RedisAllowDataLoss=true: this Redis would lose acknowledged changes: appendfsync is everysec", StringComparison.Ordinal)
            && log.Contains("A 2xx does NOT mean the change survives a crash of Redis", StringComparison.Ordinal),
            $"No warning that acknowledged changes may be lost.\n{tally.Describe()}");
    }
}
