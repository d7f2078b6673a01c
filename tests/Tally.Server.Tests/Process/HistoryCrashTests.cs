using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Process;

/// <summary>
/// The real server on its SQLite file, under a load of increments and decrements, stopped by SIGKILL (Durability=sync)
/// or SIGTERM (Durability=async) and started again: every counter's history, in every interval, adds up to its value
/// and ends at it, and every acknowledged change is in it.
/// </summary>
[Trait("Layer", "Process")]
public class HistoryCrashTests
{
    private const int Clients = 4;

    [Theory]
    [InlineData("sync", true)]
    [InlineData("async", false)]
    public async Task AfterAStopMidLoadTheHistoryAddsUpToEveryValue(string durability, bool kill)
    {
        using var dataDir = new TempDirectory();
        var from = DateTime.UtcNow.AddMinutes(-1).ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);
        var acked = new long[Clients];       // each client's own counter: the net change acknowledged
        var inFlight = new long[Clients];    // and the change it was waiting for when the server went
        long answered = 0;
        await using (var tally = TallyProcess.Start(dataDir.Path, "--Durability", durability))
        {
            await tally.WaitUntilReadyAsync();
            var load = Enumerable.Range(0, Clients).Select(client => Task.Run(async () =>
            {
                using var http = tally.CreateClient();
                var random = new Random(client);
                for (var round = 0; ; round++)
                {
                    var by = random.Next(1, 20);
                    var down = round % 3 == 2;
                    var name = round % 2 == 0 ? $"history:c{client}" : "history:hot";
                    if (name != "history:hot")
                    {
                        inFlight[client] = down ? -by : by;
                    }
                    HttpResponseMessage response;
                    try
                    {
                        response = await http.PostAsync($"/counters/{name}/{(down ? "decrement" : "increment")}?by={by}", null);
                    }
                    catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
                    {
                        return;
                    }
                    if (response.StatusCode != HttpStatusCode.OK)
                    {
                        return; // 503 while shutting down
                    }
                    Interlocked.Increment(ref answered);
                    if (name != "history:hot")
                    {
                        acked[client] += inFlight[client];
                        inFlight[client] = 0;
                    }
                }
            })).ToArray();

            // Stop once the load is well under way.
            var clock = Stopwatch.StartNew();
            while (Interlocked.Read(ref answered) < 400 && clock.Elapsed < TimeSpan.FromSeconds(20) && !load.All(task => task.IsCompleted))
            {
                await Task.Delay(10);
            }
            Assert.True(Interlocked.Read(ref answered) >= 400, $"The load never got going.\n{tally.Describe()}");
            if (kill)
            {
                tally.Kill();
            }
            else
            {
                tally.Terminate();
            }
            var exitCode = await tally.WaitForExitAsync();
            await Task.WhenAll(load).WaitAsync(TimeSpan.FromSeconds(30));
            Assert.True(kill || exitCode == 0, $"exit code {exitCode}\n{tally.Describe()}");
        }

        await using var restarted = TallyProcess.Start(dataDir.Path, "--Durability", durability);
        await restarted.WaitUntilReadyAsync();
        using var reader = restarted.CreateClient();
        for (var client = 0; client <= Clients; client++)
        {
            var name = client == Clients ? "history:hot" : $"history:c{client}";
            var value = (await reader.GetCounterAsync(name)).Value;
            if (client < Clients)
            {
                // One request at a time: at most the one in flight went in unacknowledged.
                Assert.True(value == acked[client] || value == acked[client] + inFlight[client],
                    $"{name}: value {value}, acknowledged {acked[client]}, in flight {inFlight[client]}");
            }
            foreach (var interval in (string[])["minute", "hour", "day"])
            {
                var response = await reader.GetAsync($"/counters/{name}/history?interval={interval}&from={from}");
                var text = await response.Content.ReadAsStringAsync();
                Assert.True(response.StatusCode == HttpStatusCode.OK, text);
                var buckets = JsonNode.Parse(text)!["buckets"]!.AsArray();
                var net = buckets.Sum(bucket => (long)bucket!["increments"]! - (long)bucket["decrements"]!);
                Assert.True(net == value, $"{name}: the {interval} buckets add up to {net}, the value is {value}: {text}");
                Assert.True(buckets.Count > 0 && (long)buckets[^1]!["value"]! == value, $"{name}: the last {interval} bucket does not end at {value}: {text}");
            }
        }
    }
}
