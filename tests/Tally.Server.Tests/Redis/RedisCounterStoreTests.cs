using StackExchange.Redis;
using Tally.Server.Counters;
using Tally.Server.Pipeline;
using Tally.Server.Storage;
using Tally.Server.Tests.Infrastructure;
using Tally.Server.Tests.Quotas;
using Tally.Server.Tests.Storage;
using static Tally.Server.Tests.Storage.StoreTesting;

namespace Tally.Server.Tests.Redis;

/// <summary>The store contract on a real Redis, plus what only the Redis engine must do (its rules run in Lua).</summary>
[Trait("Layer", "Process")]
public sealed class RedisCounterStoreTests(RedisFixture redis) : CounterStoreContractTests, IClassFixture<RedisFixture>
{
    private RedisStores _stores = null!;

    private protected override string Kind => "redis";

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

    private protected override ICounterStore CreateStore() => _stores.Create(Clock);

    [Fact]
    public async Task ValuesAtTheEdgesOf64BitsAreExactAndNeverWrap()
    {
        // Past 2^53 a Lua number is not exact: these go through INCRBY and decimal comparisons.
        var results = await Store.CommitAsync(
            CounterCommand.Put("max", Fields(value: long.MaxValue - 2)),
            CounterCommand.Increment("max", 1),
            CounterCommand.Increment("max", 1),
            CounterCommand.Increment("max", 1),
            CounterCommand.Decrement("min", long.MaxValue),
            CounterCommand.Decrement("min", 1),
            CounterCommand.Decrement("min", 1),
            CounterCommand.Put("near53", Fields(value: (1L << 53) - 1)),
            CounterCommand.Increment("near53", 2),
            CounterCommand.Put("bounded", Fields(value: long.MaxValue - 10, initial: long.MaxValue - 10, min: long.MaxValue - 10, max: long.MaxValue - 1)),
            CounterCommand.Increment("bounded", 9),
            CounterCommand.Increment("bounded", 1));

        Assert.Equal(long.MaxValue, results[2].Counter!.Value);
        Assert.Equal(ErrorCodes.OutOfRange, results[3].Error!.Code);
        Assert.Equal(long.MaxValue, results[3].Error!.Current!.Value);
        Assert.Equal(long.MinValue, results[5].Counter!.Value);
        Assert.Equal(ErrorCodes.OutOfRange, results[6].Error!.Code);
        Assert.Equal((1L << 53) + 1, results[8].Counter!.Value);
        Assert.Equal(long.MaxValue - 1, results[10].Counter!.Value);
        Assert.Equal(ErrorCodes.OutOfRange, results[11].Error!.Code);
        Assert.Equal(new Counter("max", long.MaxValue, 0, null, null, 3, T1, T1), await Store.GetAsync("max"));
        Assert.Equal(new Counter("min", long.MinValue, 0, null, null, 2, T1, T1), await Store.GetAsync("min"));
        Assert.Equal((1L << 53) + 1, (await Store.GetAsync("near53"))!.Value);
    }

    [Fact]
    public async Task AVersionNearTheTopIsExactAndTheLastOneIsFinal()
    {
        var imported = new Counter("v", 5, 0, null, null, long.MaxValue - 1, T1, T1);
        var results = await Store.CommitAsync(
            CounterCommand.Import(imported),
            CounterCommand.Increment("v", 1, Precondition.IfMatch(long.MaxValue - 1)),
            CounterCommand.Increment("v", 1),
            CounterCommand.Reset("v"));

        Assert.Equal(long.MaxValue, results[1].Counter!.Version);
        Assert.Equal(ErrorCodes.VersionExhausted, results[2].Error!.Code);
        Assert.Equal(ErrorCodes.VersionExhausted, results[3].Error!.Code);
        Assert.Equal(new Counter("v", 6, 0, null, null, long.MaxValue, T1, T1), await Store.GetAsync("v"));
    }

    [Fact]
    public async Task ACommitOnOneInstanceIsReadAtOnceOnAnother()
    {
        var other = _stores.Create(Clock);
        await other.OpenAsync(CancellationToken.None);

        await Store.CommitAsync(CounterCommand.Increment("shared", 5));
        Assert.Equal(5, (await other.GetAsync("shared"))!.Value);
        await other.CommitAsync(CounterCommand.Increment("shared", 2));
        Assert.Equal(7, (await Store.GetAsync("shared"))!.Value);
    }

    [Fact]
    public async Task ConcurrentCommitsFromManyInstancesAreExactAndABoundAdmitsExactlyMax()
    {
        await Store.CommitAsync(CounterCommand.Put("seats", Fields(value: 0, max: 50)));
        var instances = new List<ICounterStore>();
        for (var i = 0; i < 3; i++)
        {
            var instance = _stores.Create(Clock);
            await instance.OpenAsync(CancellationToken.None);
            instances.Add(instance);
        }
        var taken = 0;
        var work = instances.Select((store, i) => Task.Run(async () =>
        {
            for (var round = 0; round < 40; round++)
            {
                var results = await store.CommitAsync(CounterCommand.Increment("x", 1), CounterCommand.Increment("y", 2), CounterCommand.Increment("seats", 1));
                if (results[2].Succeeded)
                {
                    Interlocked.Increment(ref taken);
                }
            }
        }));
        await Task.WhenAll(work);

        Assert.Equal(120, (await Store.GetAsync("x"))!.Value);
        Assert.Equal(240, (await Store.GetAsync("y"))!.Value);
        Assert.Equal(50, taken);
        Assert.Equal(50, (await Store.GetAsync("seats"))!.Value);
    }

    [Fact]
    public async Task ListingsAreInOrdinalNameOrderLikeTheOtherStores()
    {
        string[] names = ["b", "B", "a", "a.b", "a:b", "a-b", "a_b", "Z9", "0"];
        await Store.CommitAsync([.. names.Select(name => CounterCommand.Increment(name, 1))]);

        Assert.Equal(names.Order(StringComparer.Ordinal), await Store.ListNamesAsync());
        Assert.Equal(["a", "a-b", "a.b", "a:b", "a_b"], await Store.ListNamesAsync(prefix: "a"));
        Assert.Equal(["a:b", "a_b"], await Store.ListNamesAsync(prefix: "a", after: "a.b"));
    }

    [Fact]
    public async Task AKeyReusedAfterItExpiredDoesNotCountTwice()
    {
        var clock = new ManualClock(T1);
        var store = _stores.Create(clock, new Tally.Server.Configuration.QuotaOptions { IdempotencyBytesPerKey = 4096 });
        await store.OpenAsync(CancellationToken.None);
        await Tally.Server.Tests.Quotas.IdempotencyQuotaTests.AssertExpiredKeysGiveTheirBytesBackAsync(store, clock);
    }

    [Fact]
    public async Task PastItsRecordQuotaAKeyIsRefusedWithRetryAfterAppliesNothingAndIsNotSpent()
    {
        var clock = new ManualClock(T1);
        var store = _stores.Create(clock, new Tally.Server.Configuration.QuotaOptions { IdempotencyBytesPerKey = 1000 });
        await store.OpenAsync(CancellationToken.None);
        var requester = new Tally.Server.Pipeline.Requester("key_a", null);
        var accepted = 0;
        Tally.Server.Pipeline.RequestOutcome refused;
        while (true)
        {
            refused = await store.SendAsync(CounterCommand.Increment("a", 1), requester, $"key-{accepted}");
            if (!refused.Result.Succeeded)
            {
                break;
            }
            accepted++;
        }

        Assert.InRange(accepted, 3, 10);
        Assert.Equal(ErrorCodes.IdempotencyQuotaExceeded, refused.Result.Error!.Code);
        Assert.Equal(24 * 3600, refused.Result.Error.RetryAfterSeconds);
        Assert.Equal(accepted, (await store.GetAsync("a"))!.Value);
        clock.NowMs += (long)TimeSpan.FromHours(24).TotalMilliseconds + 1;
        var retried = await store.SendAsync(CounterCommand.Increment("a", 1), requester, $"key-{accepted}");
        Assert.True(retried.Result.Succeeded);
        Assert.False(retried.Replayed);
        Assert.Equal(accepted + 1, (await store.GetAsync("a"))!.Value);
    }

    [Theory]
    [InlineData("appendfsync", "everysec")]
    [InlineData("appendonly", "no")]
    [InlineData("no-appendfsync-on-rewrite", "yes")]
    [InlineData("maxmemory-policy", "allkeys-lru")]
    public async Task ARedisThatWouldLoseAcknowledgedWritesIsRefusedUnlessAllowed(string setting, string value)
    {
        await using var server = await RedisServer.StartNewAsync(new Dictionary<string, string> { [setting] = value });
        await using var stores = new RedisStores(server.ConfigurationString);

        var refused = await Assert.ThrowsAsync<StoreStartupException>(() => stores.Create(Clock).OpenAsync(CancellationToken.None));
        Assert.Contains($"{setting} is {value}", refused.Message, StringComparison.Ordinal);
        Assert.Contains("RedisAllowDataLoss", refused.Message, StringComparison.Ordinal);

        var allowed = stores.Create(Clock, allowDataLoss: true);
        await allowed.OpenAsync(CancellationToken.None);
        Assert.Equal(1, (await allowed.CommitAsync(CounterCommand.Increment("a", 1)))[0].Counter!.Value);
    }

    [Fact]
    public async Task ACommitWhoseAnswerTimedOutIsAnsweredFromWhatRedisKeptNotCalledFailed()
    {
        // A command timeout far shorter than the call: the client gives up on the answer while Redis applies it.
        await using var impatient = new RedisStores(redis.Server.ConfigurationString + ",asyncTimeout=50,syncTimeout=50");
        var store = impatient.Create(Clock);
        await store.OpenAsync(CancellationToken.None);
        var operations = Enumerable.Range(0, 40_000).Select(i => CounterCommand.Increment($"n{i}", 2)).ToList();

        var outcome = (await store.CommitAsync([PendingRequest.For(new Tally.Server.Batch.BatchCommand(operations, Atomic: true))], CancellationToken.None))[0];

        Assert.True(outcome.Batch is { Aborted: false }, $"{outcome.Result.Error?.Code}: {outcome.Result.Error?.Detail}");
        Assert.All(outcome.Batch!.Results, result => Assert.Equal(2, result.Counter!.Value));
        Assert.Equal(2, (await Store.GetAsync("n39999"))!.Value);
    }

    [Fact]
    public async Task AGroupCommitOfManyOperationsIsSeveralCallsEachApplied()
    {
        var requests = Enumerable.Range(0, 25).Select(r => PendingRequest.For(new Tally.Server.Batch.BatchCommand(
            [.. Enumerable.Range(0, 1000).Select(i => CounterCommand.Increment($"r{r}-{i % 10}", 1))], Atomic: r % 2 == 0))).ToList();
        await using var admin = await ConnectionMultiplexer.ConnectAsync(redis.Server.ConfigurationString + ",allowAdmin=true");
        await admin.GetDatabase().ExecuteAsync("CONFIG", "RESETSTAT");

        var outcomes = await Store.CommitAsync(requests, CancellationToken.None);

        Assert.All(outcomes, outcome => Assert.False(outcome.Batch!.Aborted));
        Assert.Equal(100, (await Store.GetAsync("r24-9"))!.Value);
        var stats = (string)(await admin.GetDatabase().ExecuteAsync("INFO", "commandstats"))!;
        // Three commit calls of at most 10,000 operations (and perhaps one call of the upkeep's prune function).
        var calls = int.Parse(System.Text.RegularExpressions.Regex.Match(stats, @"cmdstat_fcall:calls=(\d+),").Groups[1].Value);
        Assert.InRange(calls, 3, 4);
    }

    [Fact]
    public async Task ANameOfManySegmentsIsIndexedByValueUnderItsFirstTwoPrefixesOnly()
    {
        await Store.CommitAsync(CounterCommand.Put("a:b:c:d:e", Fields(value: 7)));
        await using var admin = await ConnectionMultiplexer.ConnectAsync(redis.Server.ConfigurationString);
        var db = admin.GetDatabase();
        Assert.True(await db.KeyExistsAsync("tally:top:a:b:"));
        Assert.False(await db.KeyExistsAsync("tally:top:a:b:c:"));
        Assert.Equal(["a:b:c:d:e"], (await Store.TopAsync("a:b:c:", 5, CancellationToken.None)).Select(counter => counter.Name));
    }

    [Fact]
    public async Task ARedisClusterIsRefused()
    {
        await using var server = await RedisServer.StartNewAsync(new Dictionary<string, string> { ["cluster-enabled"] = "yes" });
        await using var stores = new RedisStores(server.ConfigurationString);
        var refused = await Assert.ThrowsAsync<StoreStartupException>(() => stores.Create(Clock).OpenAsync(CancellationToken.None));
        Assert.Contains("Redis Cluster", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ReadinessFailsWhenRedisSettingsChangeToLoseWritesAfterTheStart()
    {
        await using var admin = await ConnectionMultiplexer.ConnectAsync(redis.Server.ConfigurationString + ",allowAdmin=true");
        await admin.GetDatabase().ExecuteAsync("CONFIG", "SET", "appendfsync", "everysec");
        try
        {
            var health = await Store.CheckHealthAsync(CancellationToken.None);
            Assert.False(health.Healthy);
            Assert.Contains("appendfsync is everysec", health.Description, StringComparison.Ordinal);
        }
        finally
        {
            await admin.GetDatabase().ExecuteAsync("CONFIG", "SET", "appendfsync", "always");
        }
        Assert.True((await Store.CheckHealthAsync(CancellationToken.None)).Healthy);
    }

    [Fact]
    public async Task FunctionsFlushedFromRedisAreLoadedAgain()
    {
        await Store.CommitAsync(CounterCommand.Increment("a", 1));
        await using (var admin = await ConnectionMultiplexer.ConnectAsync(redis.Server.ConfigurationString))
        {
            await admin.GetDatabase().ExecuteAsync("FUNCTION", "FLUSH");
        }
        var results = await Store.CommitAsync(CounterCommand.Increment("a", 1));
        Assert.Equal(2, results[0].Counter!.Value);

        // A history read calls a function too (for the unfolded log).
        await using (var admin = await ConnectionMultiplexer.ConnectAsync(redis.Server.ConfigurationString))
        {
            await admin.GetDatabase().ExecuteAsync("FUNCTION", "FLUSH");
        }
        var day = await Store.ReadHistoryAsync("a", Tally.Server.History.HistoryInterval.Day, 0, long.MaxValue, CancellationToken.None);
        Assert.Equal(2, day.Sum(bucket => bucket.Increments));
    }

    [Fact]
    public async Task TheScratchKeyOfExactArithmeticIsNeverLeftBehind()
    {
        await Store.CommitAsync(CounterCommand.Put("big", Fields(value: long.MaxValue - 5)), CounterCommand.Increment("big", 1));
        await using var admin = await ConnectionMultiplexer.ConnectAsync(redis.Server.ConfigurationString);
        Assert.False(await admin.GetDatabase().KeyExistsAsync("tally:scratch"));
    }
}
