using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Tally.Server.Tests.Events;
using Tally.Server.Tests.Idempotency;
using Tally.Server.Tests.Infrastructure;
using Tally.Server.Tests.Process;

namespace Tally.Server.Tests.Redis;

/// <summary>
/// Real Tally processes sharing one real Redis (<c>Store=redis</c>), as PostgreSQL's <c>ClusterTests</c> does for
/// PostgreSQL: exact under concurrent load on both instances, a bound that admits exactly <c>max</c>, a retry on the
/// other instance replayed, key changes seen by the other instance within a second, exactly one first admin key,
/// a rate limit for the cluster, and live events from one instance on the other's streams. Each test empties the class's Redis and starts instances of its own; the clients
/// talk to each instance directly, so both serve every test. Redis killed under load is in
/// <see cref="RedisOutageTests"/>.
/// </summary>
[Trait("Layer", "Process")]
public sealed class RedisClusterTests(RedisFixture redis) : IClassFixture<RedisFixture>
{
    [Fact]
    public async Task ConcurrentIncrementsOnTwoInstancesAreExactAndABoundAdmitsExactlyMax()
    {
        await using var cluster = await StartAsync(2);
        using (var client = cluster[0].CreateClient())
        {
            await client.SetUpCounterAsync("stock", """{"value": 0, "max": 100}""");
        }
        var accepted = 0;
        var refused = 0;
        var unexpected = new List<string>();
        // 8 clients, half on each instance, each 40 times: the hot counter +1, then the bounded one +1.
        await Task.WhenAll(Enumerable.Range(0, 8).Select(worker => Task.Run(async () =>
        {
            using var http = cluster[worker % 2].CreateClient();
            for (var i = 0; i < 40; i++)
            {
                var hot = await http.IncrementAsync("hot");
                if (hot.StatusCode != HttpStatusCode.OK)
                {
                    Record(unexpected, $"hot on {http.BaseAddress}: {(int)hot.StatusCode} {await hot.Content.ReadAsStringAsync()}");
                }
                var stock = await http.IncrementAsync("stock");
                switch (stock.StatusCode)
                {
                    case HttpStatusCode.OK:
                        Interlocked.Increment(ref accepted);
                        break;
                    case HttpStatusCode.Conflict:
                        Interlocked.Increment(ref refused);
                        break;
                    default:
                        Record(unexpected, $"stock on {http.BaseAddress}: {(int)stock.StatusCode} {await stock.Content.ReadAsStringAsync()}");
                        break;
                }
            }
        })));

        Assert.True(unexpected.Count == 0, $"{unexpected.Count} unexpected answers:\n{string.Join("\n", unexpected.Take(5))}");
        Assert.Equal(320, await cluster.ValueOnEveryInstanceAsync("hot"));
        Assert.True((accepted, refused) == (100, 220), $"stock (max 100): {accepted} increments accepted, {refused} refused, of 320");
        Assert.Equal(100, await cluster.ValueOnEveryInstanceAsync("stock"));
    }

    [Fact]
    public async Task ARetryOnTheOtherInstanceIsReplayedAndTheSameKeyOnBothAtOnceAppliesOnce()
    {
        await using var cluster = await StartAsync(2);
        using var a = cluster[0].CreateClient();
        using var b = cluster[1].CreateClient();

        var first = await a.SendKeyedAsync(HttpMethod.Post, "/counters/orders/increment", "retry-1");
        var retry = await b.SendKeyedAsync(HttpMethod.Post, "/counters/orders/increment", "retry-1");
        IdempotencyTesting.AssertStatus(first, HttpStatusCode.OK);
        IdempotencyTesting.AssertReplayOf(first, retry);
        Assert.Equal(1, await cluster.ValueOnEveryInstanceAsync("orders"));

        for (var round = 0; round < 20; round++)
        {
            var key = $"race-{round}";
            var answers = await Task.WhenAll(a.SendKeyedAsync(HttpMethod.Post, "/counters/raced/increment", key),
                b.SendKeyedAsync(HttpMethod.Post, "/counters/raced/increment", key));
            Assert.All(answers, answer => IdempotencyTesting.AssertStatus(answer, HttpStatusCode.OK));
            Assert.True(answers.Count(answer => !answer.IsReplay) == 1,
                $"{key}: {answers.Count(answer => !answer.IsReplay)} of the two answers were not replays: {answers[0].Text} / {answers[1].Text}");
        }
        Assert.Equal(20, await cluster.ValueOnEveryInstanceAsync("raced"));
    }

    [Fact]
    public async Task AKeyCreatedOnOneInstanceWorksOnTheOtherAndItsRevocationHoldsThereWithinASecond()
    {
        await using var cluster = await StartAsync(2);
        using var admin = cluster[0].CreateClient();
        var created = await admin.PostAsync("/admin/keys", Api.JsonBody("""{"name": "shop", "scopes": ["read", "write"]}"""));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var json = JsonNode.Parse(await created.Content.ReadAsStringAsync())!;
        var secret = (string)json["key"]!;

        var clock = Stopwatch.StartNew();
        await cluster.UntilEveryInstanceAnswersAsync(secret, HttpStatusCode.OK);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), $"the new key worked on both instances only after {clock.Elapsed}");

        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync($"/admin/keys/{(string)json["id"]!}")).StatusCode);
        clock.Restart();
        await cluster.UntilEveryInstanceAnswersAsync(secret, HttpStatusCode.Unauthorized);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), $"the revoked key was refused on both instances only after {clock.Elapsed}");
    }

    [Fact]
    public async Task InstancesStartingTogetherWithoutAnAdminKeyCreateExactlyOneFirstKey()
    {
        await using var cluster = await StartAsync(3, "--AdminKey=");

        // Exactly one instance printed it; every instance knows that one key and no other.
        await cluster.SingleFirstAdminKeyAsync();
    }

    [Fact]
    public async Task ARateLimitHoldsForTheClusterNotPerInstance()
    {
        // 20/s with a burst of 20 per key for the cluster: 10 and 10/s on each instance once each counts two. A low
        // rate, so that even a slow machine sends far more than either instance would admit on its own.
        await using var cluster = await StartAsync(2, "--RateLimit:PermitsPerSecond", "20");
        await cluster.UntilEveryInstanceCountsAsync(2);

        var (admitted, sent, elapsed) = await cluster.CountAdmittedAsync("/counters/limited/increment", TimeSpan.FromSeconds(2));

        // One bucket of 20 plus 20/s for the cluster; per instance it would be twice that.
        var expected = 20 + 20 * elapsed.TotalSeconds;
        var outcome = $"{admitted} of {sent} increments admitted in {elapsed.TotalSeconds:0.00} s by two instances sharing 20/s with a burst of 20 (expected about {expected:0})";
        Assert.True(sent >= 4 * expected, $"too few requests to tell a cluster's limit from an instance's: {outcome}");
        // The upper bound is the point (each instance alone would admit twice as many). The lower one only catches a
        // share too small, such as one counting four instances (half): on a loaded machine the two buckets fill unevenly.
        Assert.True(admitted >= expected * 0.6 && admitted <= expected * 1.25, outcome);
    }

    /// <summary>Empties the class's Redis, then starts <paramref name="count"/> instances on it together.</summary>
    [Fact]
    public async Task AChangeOnOneInstanceReachesTheEventStreamsOfTheOtherOnce()
    {
        await using var cluster = await StartAsync(2);
        using var a = cluster[0].CreateClient();
        using var b = cluster[1].CreateClient();

        await CrossInstanceEvents.ChangesOnAReachStreamsOnBOnceEachAsync(a, b);
    }

    [Fact]
    public async Task AnAlertCrossedOnOneInstanceReachesTheEventStreamsOfBoth()
    {
        await using var cluster = await StartAsync(2, "--Alerts:AllowedHosts", "127.0.0.1");
        using var a = cluster[0].CreateClient();
        using var b = cluster[1].CreateClient();

        await CrossInstanceEvents.AlertsOnAReachStreamsOnAAndBAsync(a, b);
    }

    private async Task<TallyCluster> StartAsync(int count, params string[] arguments) =>
        await TallyCluster.StartAsync(count, ["--Store", "redis", "--Redis", await redis.ResetAsync(), .. arguments]);

    private static void Record(List<string> unexpected, string answer)
    {
        lock (unexpected)
        {
            unexpected.Add(answer);
        }
    }
}
