using System.Net;
using System.Text.Json.Nodes;
using Tally.Server.Tests.Infrastructure;
using Tally.Server.Tests.Process;

namespace Tally.Server.Tests.Postgres;

/// <summary>
/// PostgreSQL stopped (or killed) under load and started again: Tally answers 503 store_unavailable with
/// Retry-After meanwhile (never a 500, never a stale value), recovers without a restart, and loses nothing acknowledged.
/// </summary>
[Trait("Layer", "Process")]
public sealed class PostgresOutageTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private static readonly TimeSpan OutageTimeout = TimeSpan.FromSeconds(40);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task AnOutageMidLoadIs503ThenRecoveryWithNothingAcknowledgedLost(bool kill)
    {
        await using var postgres = await PostgresServer.StartNewAsync();
        var connectionString = await postgres.CreateDatabaseAsync();
        using var dataDir = new TempDirectory();
        await using var tally = TallyProcess.Start(dataDir.Path, "--Store", "postgres", "--Postgres", connectionString);
        await tally.WaitUntilReadyAsync();

        long sent = 0;
        long acked = 0;
        long unavailable = 0;
        var unexpected = new List<string>();
        using var stop = new CancellationTokenSource();
        var load = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            using var http = tally.CreateClient();
            while (!stop.IsCancellationRequested)
            {
                Interlocked.Increment(ref sent);
                var response = await http.PostAsync("/counters/outage/increment", null);
                switch (response.StatusCode)
                {
                    case HttpStatusCode.OK:
                        Interlocked.Increment(ref acked);
                        break;
                    case HttpStatusCode.ServiceUnavailable when response.Headers.RetryAfter is not null:
                        Interlocked.Increment(ref unavailable);
                        await Task.Delay(20);
                        break;
                    default:
                        var body = await response.Content.ReadAsStringAsync();
                        lock (unexpected)
                        {
                            unexpected.Add($"{(int)response.StatusCode} {body}");
                        }
                        break;
                }
            }
        })).ToArray();

        await Poll.UntilAsync(() => Interlocked.Read(ref acked) >= 100, "the load to start", OutageTimeout);
        if (kill)
        {
            await postgres.KillAsync();
        }
        else
        {
            await postgres.StopAsync();
        }
        await Poll.UntilAsync(() => Interlocked.Read(ref unavailable) >= 5, "503s while PostgreSQL is down", OutageTimeout);
        using (var probe = tally.CreateClient())
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, (await probe.GetAsync("/readyz")).StatusCode);
            var read = await probe.GetAsync("/counters/outage");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, read.StatusCode);
            Assert.Equal("store_unavailable", (string?)JsonNode.Parse(await read.Content.ReadAsStringAsync())!["code"]);
        }

        await postgres.StartAsync();
        var ackedAtRestart = Interlocked.Read(ref acked);
        await Poll.UntilAsync(() => Interlocked.Read(ref acked) >= ackedAtRestart + 100, "recovery without a restart of Tally", OutageTimeout);
        await stop.CancelAsync();
        await Task.WhenAll(load);

        output.WriteLine($"sent {sent}, acknowledged {acked}, 503 {unavailable}");
        Assert.True(unexpected.Count == 0, string.Join("\n", unexpected.Take(5)) + "\n" + tally.Describe());
        using var client = tally.CreateClient();
        var value = (long)JsonNode.Parse(await client.GetStringAsync("/counters/outage"))!["value"]!;
        Assert.InRange(value, Interlocked.Read(ref acked), Interlocked.Read(ref sent));
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/readyz")).StatusCode);
    }
}
