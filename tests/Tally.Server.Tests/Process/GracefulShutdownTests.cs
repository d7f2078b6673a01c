using System.Diagnostics;
using System.Net;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Process;

/// <summary>SIGTERM under load: in-flight requests finish, the store is flushed and closed, exit 0 in bounded time.</summary>
[Trait("Layer", "Process")]
public class GracefulShutdownTests
{
    [Theory]
    [InlineData("sync")]
    [InlineData("async")]
    public async Task SigtermUnderLoadFinishesInFlightWorkAndExitsZero(string durability)
    {
        using var dataDir = new TempDirectory();
        long acked = 0, sent = 0;
        await using (var tally = TallyProcess.Start(dataDir.Path, "--Durability", durability))
        {
            await tally.WaitUntilReadyAsync();
            using var stop = new CancellationTokenSource();
            var load = Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
            {
                using var client = tally.CreateClient();
                while (!stop.IsCancellationRequested)
                {
                    Interlocked.Increment(ref sent);
                    try
                    {
                        using var response = await client.PostAsync("/counters/shutdown:hot/increment", null);
                        if (response.StatusCode == HttpStatusCode.OK)
                        {
                            Interlocked.Increment(ref acked);
                        }
                        else
                        {
                            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode); // "shutting down" is the only other answer
                        }
                    }
                    catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
                    {
                        return; // the server stopped listening
                    }
                }
            })).ToArray();

            while (Interlocked.Read(ref acked) < 300)
            {
                await Task.Delay(10);
            }
            var clock = Stopwatch.StartNew();
            tally.Terminate();
            var exitCode = await tally.WaitForExitAsync(TimeSpan.FromSeconds(15));
            clock.Stop();
            stop.Cancel();
            await Task.WhenAll(load);

            Assert.True(exitCode == 0, $"exit code {exitCode}\n{tally.Describe()}");
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(11), $"shutdown took {clock.Elapsed}");
            Assert.DoesNotContain("Checkpoint on close failed", tally.StandardOutput, StringComparison.Ordinal);
        }

        // Closed cleanly: the write-ahead log is folded into the main file.
        var wal = new FileInfo(Path.Combine(dataDir.Path, "tally.db-wal"));
        var walBytes = wal.Exists ? wal.Length : 0;
        Assert.True(walBytes == 0, $"the write-ahead log holds {walBytes} bytes after a clean stop");

        await using var restarted = TallyProcess.Start(dataDir.Path);
        await restarted.WaitUntilReadyAsync();
        using var reader = restarted.CreateClient();
        var value = (await reader.GetCounterAsync("shutdown:hot")).Value;
        // Every acknowledged increment is there even with Durability=async: a clean stop flushes.
        Assert.True(acked <= value && value <= sent, $"acknowledged {acked} <= value {value} <= sent {sent} does not hold");
    }
}
