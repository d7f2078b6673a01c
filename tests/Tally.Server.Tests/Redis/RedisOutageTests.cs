using System.Net;
using System.Text.Json.Nodes;
using Tally.Server.Tests.Infrastructure;
using Tally.Server.Tests.Process;

namespace Tally.Server.Tests.Redis;

/// <summary>
/// Redis killed (SIGKILL) or stopped under load from two Tally instances, then started again on the same files:
/// meanwhile both answer <c>503 store_unavailable</c> with <c>Retry-After</c> (never another error) and <c>/readyz</c>
/// 503; both recover without a restart; and with <c>appendfsync always</c> every acknowledged increment is still
/// there and none counted twice (acknowledged ≤ value ≤ sent). As <c>PostgresOutageTests</c> does for PostgreSQL.
/// </summary>
[Trait("Layer", "Process")]
public sealed class RedisOutageTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private const int ClientsPerInstance = 2;

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task AnOutageMidLoadIs503ThenRecoveryOnBothInstancesWithNothingAcknowledgedLost(bool kill)
    {
        await using var server = await RedisServer.StartNewAsync();
        await using var cluster = await TallyCluster.StartAsync(2, "--Store", "redis", "--Redis", server.ConfigurationString);

        long sent = 0;
        var acked = new long[2];        // per instance
        var unavailable = new long[2];
        var unexpected = new List<string>();
        using var stop = new CancellationTokenSource();
        var load = Enumerable.Range(0, 2 * ClientsPerInstance).Select(worker => Task.Run(async () =>
        {
            var instance = worker % 2;
            using var http = cluster[instance].CreateClient();
            while (!stop.IsCancellationRequested)
            {
                Interlocked.Increment(ref sent);
                string? problem;
                try
                {
                    problem = await IncrementAsync(http);
                }
                catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
                {
                    problem = $"no answer ({ex.Message})";
                }
                if (problem is null)
                {
                    Interlocked.Increment(ref acked[instance]);
                }
                else if (problem == "store_unavailable")
                {
                    Interlocked.Increment(ref unavailable[instance]);
                    await Task.Delay(20);
                }
                else
                {
                    lock (unexpected)
                    {
                        unexpected.Add($"{http.BaseAddress}: {problem}");
                    }
                    return;
                }
            }
        })).ToArray();

        string[] Unexpected()
        {
            lock (unexpected)
            {
                return [.. unexpected];
            }
        }
        void AssertNothingUnexpected(string when) =>
            Assert.True(Unexpected().Length == 0, $"{when}:\n{string.Join("\n", Unexpected().Take(5))}\n{cluster.Describe()}");
        // Waits for the load to get somewhere, failing at once (with what came) if a client got anything unexpected.
        async Task UntilAsync(Func<bool> condition, string what)
        {
            await Poll.UntilAsync(() => condition() || Unexpected().Length > 0, what);
            AssertNothingUnexpected($"while waiting for {what}");
        }

        await UntilAsync(() => Interlocked.Read(ref acked[0]) >= 50 && Interlocked.Read(ref acked[1]) >= 50, "the load to start on both instances");
        if (kill)
        {
            await server.KillAsync();
        }
        else
        {
            await server.StopAsync();
        }
        await UntilAsync(() => Interlocked.Read(ref unavailable[0]) >= 3 && Interlocked.Read(ref unavailable[1]) >= 3,
            "503 store_unavailable from both instances while Redis is down");
        foreach (var instance in cluster.Instances)
        {
            using var probe = instance.CreateClient();
            var ready = await probe.GetAsync("/readyz");
            Assert.True(ready.StatusCode == HttpStatusCode.ServiceUnavailable,
                $"{instance.BaseAddress}/readyz answered {(int)ready.StatusCode} with Redis down: {await ready.Content.ReadAsStringAsync()}");
            var read = await probe.GetAsync("/counters/outage");
            await read.ReadProblemAsync(HttpStatusCode.ServiceUnavailable, "store_unavailable");
            Assert.True(read.Headers.RetryAfter is not null, $"{instance.BaseAddress}: a read with Redis down has no Retry-After");
        }

        await server.StartAsync();
        long[] ackedAtRestart = [Interlocked.Read(ref acked[0]), Interlocked.Read(ref acked[1])];
        await UntilAsync(() => Interlocked.Read(ref acked[0]) >= ackedAtRestart[0] + 50 && Interlocked.Read(ref acked[1]) >= ackedAtRestart[1] + 50,
            "both instances to count again without a restart");
        await stop.CancelAsync();
        await Task.WhenAll(load);

        output.WriteLine($"sent {sent}, acknowledged {acked[0]} + {acked[1]}, 503 {unavailable[0]} + {unavailable[1]}");
        AssertNothingUnexpected("at the end");
        var value = await cluster.ValueOnEveryInstanceAsync("outage");
        Assert.True(acked.Sum() <= value && value <= sent,
            $"acknowledged {acked.Sum()} <= value {value} <= sent {sent} does not hold after Redis was {(kill ? "killed" : "stopped")} and restarted");
        foreach (var instance in cluster.Instances)
        {
            Assert.False(instance.HasExited, $"{instance.BaseAddress} exited.\n{instance.Describe()}");
            using var probe = instance.CreateClient();
            Assert.Equal(HttpStatusCode.OK, (await probe.GetAsync("/readyz")).StatusCode);
        }
    }

    /// <summary>Null when acknowledged; "store_unavailable" for a 503 of that code with Retry-After; otherwise what came instead.</summary>
    private static async Task<string?> IncrementAsync(HttpClient http)
    {
        using var response = await http.IncrementAsync("outage");
        if (response.StatusCode == HttpStatusCode.OK)
        {
            return null;
        }
        var body = await response.Content.ReadAsStringAsync();
        if (response.StatusCode == HttpStatusCode.ServiceUnavailable && response.Headers.RetryAfter is not null && CodeOf(body) == "store_unavailable")
        {
            return "store_unavailable";
        }
        return $"{(int)response.StatusCode} (Retry-After: {response.Headers.RetryAfter?.ToString() ?? "none"}) {body}";
    }

    private static string? CodeOf(string body)
    {
        try
        {
            return (string?)JsonNode.Parse(body)?["code"];
        }
        catch (System.Text.Json.JsonException)
        {
            return null;
        }
    }
}
