using StackExchange.Redis;
using Tally.Server.Counters;
using Tally.Server.History;
using Tally.Server.Storage;
using Tally.Server.Tests.History;
using Tally.Server.Tests.Infrastructure;
using Tally.Server.Tests.Storage;

namespace Tally.Server.Tests.Redis;

/// <summary>
/// The history contract on a real Redis, where tally.lua writes the buckets inside the commit's function call and Redis
/// expires them by themselves: chunk hashes with a TTL, and an index per counter for deleting them with it.
/// </summary>
[Trait("Layer", "Process")]
public sealed class RedisHistoryTests(RedisFixture redis) : PersistentHistoryStoreContractTests, IClassFixture<RedisFixture>
{
    private RedisStores _stores = null!;

    public override async Task InitializeAsync()
    {
        _stores = new RedisStores(await redis.ResetAsync());
        await base.InitializeAsync();
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        await _stores.DisposeAsync();
    }

    private protected override ICounterStore CreateStore(HistoryOptions? history) => _stores.Create(Clock, history: history);

    /// <summary>
    /// Redis prunes by itself: each chunk lives until its last bucket is past the retention (by Redis's clock, relative to
    /// the write), and what is past the retention by Tally's clock is not answered meanwhile.
    /// </summary>
    [Fact]
    public override async Task UpkeepPrunesBucketsPastTheirRetention()
    {
        await Store.CommitAsync(CounterCommand.Increment("a", 1));
        await using var connection = await ConnectionMultiplexer.ConnectAsync(_stores.Configuration);
        var database = connection.GetDatabase();

        // Minute chunk of 22:00–23:00: until 23:00 + 48 h + a minute; written at 22:13:20.
        var minuteTtl = await database.KeyTimeToLiveAsync($"tally:h:m:{Hour}:a");
        var expected = TimeSpan.FromMilliseconds(Hour + HistoryIntervals.HourMs + 48 * HistoryIntervals.HourMs + HistoryIntervals.MinuteMs - T);
        Assert.InRange(minuteTtl!.Value, expected - TimeSpan.FromSeconds(10), expected);
        // Day chunk: 30 days of days from its start, then 5 × 366 days and a day.
        var dayChunk = HistoryIntervals.Floor(Day, 30 * HistoryIntervals.DayMs);
        var dayTtl = await database.KeyTimeToLiveAsync($"tally:h:d:{dayChunk}:a");
        expected = TimeSpan.FromMilliseconds(dayChunk + 31 * HistoryIntervals.DayMs + 5 * 366 * HistoryIntervals.DayMs - T);
        Assert.InRange(dayTtl!.Value, expected - TimeSpan.FromSeconds(10), expected);
        // The index lives as long as the longest-lived chunk.
        Assert.InRange((await database.KeyTimeToLiveAsync("tally:hk:a"))!.Value, expected - TimeSpan.FromSeconds(10), expected);

        // Past the retention by Tally's clock: not answered by the API, which reads from the oldest bucket kept.
        Clock.NowMs = T + 48 * HistoryIntervals.HourMs + 30 * HistoryIntervals.MinuteMs;
        var kept = new HistoryOptions().OldestKept(HistoryInterval.Minute, Clock.NowMs);
        Assert.Empty(await Store.ReadHistoryAsync("a", HistoryInterval.Minute, kept, long.MaxValue, CancellationToken.None));
        Assert.Single(await ReadAsync("a", HistoryInterval.Day));
    }

    [Fact]
    public async Task DeletingACounterDeletesEveryHistoryKeyItHad()
    {
        await Store.CommitAsync(CounterCommand.Increment("a", 1), CounterCommand.Increment("b", 1));
        Clock.NowMs = T + 3 * HistoryIntervals.HourMs;
        await Store.CommitAsync(CounterCommand.Increment("a", 1));
        await using var connection = await ConnectionMultiplexer.ConnectAsync(_stores.Configuration);
        var server = connection.GetServer(connection.GetEndPoints()[0]);
        // Two minute chunks (22:00, 01:00), two hour chunks (two days), one chunk of 30 days, and the index.
        Assert.Equal(6, server.Keys(pattern: "tally:h*:a").Count());

        await Store.CommitAsync(CounterCommand.Delete("a"));

        Assert.Empty(server.Keys(pattern: "tally:h*:a"));
        Assert.Equal(4, server.Keys(pattern: "tally:h*:b").Count());
    }

    [Fact]
    public async Task AfterRedisIsKilledMidLoadTheHistoryStillAddsUpToEveryValue()
    {
        await using var server = await RedisServer.StartNewAsync();
        await using (var before = new RedisStores(server.ConfigurationString))
        {
            var store = before.Create(Clock);
            await store.OpenAsync(CancellationToken.None);
            var committed = await HistoryCrash.CommitUntilKilledAsync(store, Clock, killAfter: 200, server.KillAsync);
            Assert.InRange(committed, 200, 20_000);
        }

        await server.StartAsync();
        await using var after = new RedisStores(server.ConfigurationString);
        var restarted = after.Create(Clock);
        await restarted.OpenAsync(CancellationToken.None);
        await HistoryCrash.AssertAddsUpAsync(restarted, "after Redis was killed and restarted");
    }

    [Fact]
    public async Task ACommitFromATallyOlderThanHistoryStillApplies()
    {
        // During a rolling upgrade, an older instance's commit document has no "history": it changes the counter, records none.
        await using var connection = await ConnectionMultiplexer.ConnectAsync(_stores.Configuration);
        var database = connection.GetDatabase();
        var document = $$"""
            {"now":"{{T}}","retention":"86400000","maxCounters":"1000","recordBytes":"65536",
             "requests":[{"batch":false,"atomic":false,"ops":[["i","old","3",false]]}]}
            """;
        await database.ExecuteAsync("FCALL", "tally_v1_commit", 0, document);

        Assert.Equal(3, (await Store.GetAsync("old"))!.Value);
        Assert.Empty(await ReadAsync("old", HistoryInterval.Minute));
    }
}

