using System.Net;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Process;

/// <summary>
/// Keyed increments, a SIGKILL in the middle, a restart, and every key sent again: the counter
/// ends at exactly the number of distinct keys, because each key was stored with its change.
/// </summary>
[Trait("Layer", "Process")]
public class IdempotentCrashTests
{
    [Fact]
    public async Task ResendingEveryKeyAfterACrashCountsEachKeyExactlyOnce()
    {
        using var dataDir = new TempDirectory();
        var sentKeys = new System.Collections.Concurrent.ConcurrentBag<string>();
        long acked = 0;

        await using (var tally = TallyProcess.Start(dataDir.Path))
        {
            await tally.WaitUntilReadyAsync();
            var load = Enumerable.Range(0, 6).Select(client => Task.Run(async () =>
            {
                using var http = tally.CreateClient();
                for (var i = 0; ; i++)
                {
                    var key = $"client{client}-request{i}";
                    sentKeys.Add(key);
                    try
                    {
                        using var response = await Send(http, key);
                        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                        Interlocked.Increment(ref acked);
                    }
                    catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
                    {
                        return;
                    }
                }
            })).ToArray();

            while (Interlocked.Read(ref acked) < 300)
            {
                await Task.Delay(5);
            }
            tally.Kill();
            await tally.WaitForExitAsync();
            await Task.WhenAll(load).WaitAsync(TimeSpan.FromSeconds(30));
        }

        await using var restarted = TallyProcess.Start(dataDir.Path);
        await restarted.WaitUntilReadyAsync();
        using var client = restarted.CreateClient();
        var replayed = 0;
        foreach (var key in sentKeys)
        {
            using var response = await Send(client, key);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            if (response.Headers.TryGetValues("Idempotent-Replayed", out var values) && values.Single() == "true")
            {
                replayed++;
            }
        }

        var counter = await client.GetCounterAsync("keyed:orders");
        Assert.Equal(sentKeys.Count, counter.Value);
        Assert.True(replayed >= acked, $"{replayed} replays, but {acked} keys were acknowledged before the crash");
    }

    private static Task<HttpResponseMessage> Send(HttpClient client, string key)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/counters/keyed:orders/increment");
        request.Headers.Add("Idempotency-Key", key);
        return client.SendAsync(request);
    }
}
