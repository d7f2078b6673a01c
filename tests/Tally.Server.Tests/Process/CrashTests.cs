using System.Diagnostics;
using System.Net;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Process;

/// <summary>
/// The real server, killed with SIGKILL in the middle of a load and started again on the same data:
/// with Durability=sync every acknowledged increment is there, and nothing that was never sent.
/// </summary>
[Trait("Layer", "Process")]
public class CrashTests
{
    private const int Clients = 6;

    [Fact]
    public async Task KillMidLoadLosesNoAcknowledgedIncrement()
    {
        using var dataDir = new TempDirectory();
        var sent = new long[Clients + 1];   // [i]: client i's own counter; [Clients]: the shared hot counter
        var acked = new long[Clients + 1];
        var unexpected = new List<string>();

        await using (var tally = TallyProcess.Start(dataDir.Path))
        {
            await tally.WaitUntilReadyAsync();
            var load = Enumerable.Range(0, Clients).Select(client => Task.Run(async () =>
            {
                using var http = tally.CreateClient();
                for (var round = 0; ; round++)
                {
                    var slot = round % 2 == 0 ? client : Clients;
                    var name = slot == Clients ? "crash:hot" : $"crash:c{client}";
                    Interlocked.Increment(ref sent[slot]);
                    HttpResponseMessage response;
                    try
                    {
                        response = await http.PostAsync($"/counters/{name}/increment", null);
                    }
                    catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
                    {
                        return; // the server is gone
                    }
                    if (response.StatusCode != HttpStatusCode.OK)
                    {
                        var body = await response.Content.ReadAsStringAsync();
                        lock (unexpected)
                        {
                            unexpected.Add($"{name}: {(int)response.StatusCode} {body}");
                        }
                        return;
                    }
                    Interlocked.Increment(ref acked[slot]);
                }
            })).ToArray();

            // Pull the plug once the load is well under way.
            var clock = Stopwatch.StartNew();
            while (acked.Sum() < 400 && clock.Elapsed < TimeSpan.FromSeconds(20) && !load.All(task => task.IsCompleted))
            {
                await Task.Delay(10);
            }
            tally.Kill();
            await tally.WaitForExitAsync();
            await Task.WhenAll(load).WaitAsync(TimeSpan.FromSeconds(30));
            Assert.True(acked.Sum() >= 400, $"The load never got going: {acked.Sum()} acknowledged.\n{tally.Describe()}");
        }
        Assert.Empty(unexpected);

        await using var restarted = TallyProcess.Start(dataDir.Path);
        await restarted.WaitUntilReadyAsync();
        using var client = restarted.CreateClient();
        for (var slot = 0; slot <= Clients; slot++)
        {
            var name = slot == Clients ? "crash:hot" : $"crash:c{slot}";
            var response = await client.GetAsync($"/counters/{name}");
            var (value, version) = response.StatusCode == HttpStatusCode.NotFound
                ? (0L, 0L)
                : await ValueAndVersionAsync(response);

            Assert.True(acked[slot] <= value && value <= sent[slot],
                $"{name}: acknowledged {acked[slot]} <= value {value} <= sent {sent[slot]} does not hold");
            Assert.Equal(value, version);
            if (slot < Clients)
            {
                // One client, one request at a time: at most its last request was in flight.
                Assert.True(sent[slot] - acked[slot] <= 1, $"{name}: {sent[slot]} sent, {acked[slot]} acknowledged");
            }
        }
    }

    private static async Task<(long Value, long Version)> ValueAndVersionAsync(HttpResponseMessage response)
    {
        var counter = await response.ReadCounterAsync();
        return (counter.Value, counter.Version);
    }
}
