using StackExchange.Redis;
using Tally.Server.Storage.Redis;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Redis;

/// <summary>Instances counting each other by heartbeats in a real Redis, for the cluster-wide rate limit.</summary>
[Trait("Layer", "Process")]
public class RedisClusterMembershipTests(RedisFixture redis) : IClassFixture<RedisFixture>
{
    [Fact]
    public async Task TwoInstancesCountTwoThenOneAfterOneStops()
    {
        await using var instances = new RedisInstances(await redis.ResetAsync());
        var a = instances.CreateMembership();
        var b = instances.CreateMembership();
        Assert.Equal(1, a.Instances);

        await a.StartAsync(CancellationToken.None);
        await b.StartAsync(CancellationToken.None);
        await RedisInstances.UntilAsync(() => a.Instances == 2 && b.Instances == 2, TimeSpan.FromSeconds(3), "both counting 2");

        await b.StopAsync(CancellationToken.None);
        // b signed off: a counts 1 at its next beat.
        await RedisInstances.UntilAsync(() => a.Instances == 1, TimeSpan.FromSeconds(2), "a counting 1 after b stopped");
        var members = await instances.Connect().GetDatabase().SortedSetRangeByRankAsync(RedisClusterMembership.InstancesKey);
        Assert.Single(members);
    }

    [Fact]
    public async Task AnInstanceThatStopsBeatingWithoutSigningOffIsCountedForFiveSecondsThenNot()
    {
        await using var instances = new RedisInstances(await redis.ResetAsync());
        var a = instances.CreateMembership();
        var b = instances.CreateMembership();
        await a.StartAsync(CancellationToken.None);
        await b.StartAsync(CancellationToken.None);
        await RedisInstances.UntilAsync(() => a.Instances == 2, TimeSpan.FromSeconds(3), "a counting 2");

        // As when b's process dies: its loop ends, nothing signs off.
        b.Dispose();
        await b.ExecuteTask!;
        var gone = await RedisInstances.UntilAsync(() => a.Instances == 1, TimeSpan.FromSeconds(8), "a counting 1 after b went silent");

        Assert.True(gone > TimeSpan.FromSeconds(3), $"b dropped out after {gone}: a silent instance counts for five beats");
    }

    [Fact]
    public async Task EntriesAMinuteOldArePrunedAndTheSetExpiresWhenEveryoneIsGone()
    {
        await using var instances = new RedisInstances(await redis.ResetAsync());
        var database = instances.Connect().GetDatabase();
        var time = (RedisResult[])(await database.ExecuteAsync("TIME"))!;
        var now = (long)time[0] * 1000;
        await database.SortedSetAddAsync(RedisClusterMembership.InstancesKey, "long-gone", now - 120_000);
        await database.SortedSetAddAsync(RedisClusterMembership.InstancesKey, "silent-for-ten-seconds", now - 10_000);

        var a = instances.CreateMembership();
        await a.StartAsync(CancellationToken.None);
        await RedisInstances.UntilAsync(() => database.SortedSetScore(RedisClusterMembership.InstancesKey, "long-gone") is null,
            TimeSpan.FromSeconds(2), "the entry two minutes old pruned");

        Assert.Equal(1, a.Instances);
        Assert.NotNull(await database.SortedSetScoreAsync(RedisClusterMembership.InstancesKey, "silent-for-ten-seconds"));
        var ttl = await database.KeyTimeToLiveAsync(RedisClusterMembership.InstancesKey);
        Assert.InRange(ttl!.Value, TimeSpan.FromSeconds(55), TimeSpan.FromSeconds(60));
    }

    [Fact]
    public async Task WhileRedisDoesNotAnswerTheLastCountStays()
    {
        await using var server = await RedisServer.StartNewAsync();
        await using var instances = new RedisInstances(server.ConfigurationString);
        var a = instances.CreateMembership();
        var b = instances.CreateMembership();
        await a.StartAsync(CancellationToken.None);
        await b.StartAsync(CancellationToken.None);
        await RedisInstances.UntilAsync(() => a.Instances == 2 && b.Instances == 2, TimeSpan.FromSeconds(3), "both counting 2");

        await server.KillAsync();
        await Task.Delay(TimeSpan.FromSeconds(2.5));
        Assert.Equal((2, 2), (a.Instances, b.Instances));

        await server.StartAsync();
        await b.StopAsync(CancellationToken.None);
        await RedisInstances.UntilAsync(() => a.Instances == 1, TimeSpan.FromSeconds(8), "a counting 1 once Redis answers and b has gone");
    }
}
