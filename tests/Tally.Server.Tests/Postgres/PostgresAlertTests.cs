using System.Net;
using System.Text.Json.Nodes;
using Tally.Server.Tests.Alerts;
using Tally.Server.Tests.Infrastructure;
using Tally.Server.Tests.Process;

namespace Tally.Server.Tests.Postgres;

/// <summary>
/// Alerts on a real PostgreSQL shared by real Tally processes: the states follow commits from every instance, each
/// event is delivered by exactly one instance, and a crashed sender's lease is taken over.
/// </summary>
[Trait("Layer", "Process")]
[Collection(PostgresCollection.Name)]
public sealed class PostgresAlertTests(PostgresFixture postgres) : IAsyncLifetime
{
    private readonly List<TempDirectory> _dirs = [];
    private readonly List<TallyProcess> _instances = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var instance in _instances)
        {
            await instance.DisposeAsync();
        }
        _dirs.ForEach(dir => dir.Dispose());
    }

    private async Task<TallyProcess> StartAsync(string connectionString, params string[] more)
    {
        var dir = new TempDirectory();
        _dirs.Add(dir);
        var instance = TallyProcess.Start(dir.Path, [.. AlertTesting.Arguments(), "--Store", "postgres", "--Postgres", connectionString, .. more]);
        _instances.Add(instance);
        await instance.WaitUntilReadyAsync();
        return instance;
    }

    [Fact]
    public async Task WithTwoInstancesEveryEventIsDeliveredExactlyOnceAndInStateOrder()
    {
        var connectionString = await postgres.CreateDatabaseAsync();
        await using var receiver = await WebhookReceiver.StartAsync();
        var a = await StartAsync(connectionString);
        var b = await StartAsync(connectionString);
        using var clientA = a.CreateClient();
        using var clientB = b.CreateClient();
        var secret = await clientA.CreateAlertAsync("hot", "\"prefix\": \"hot:\", \"above\": 0", receiver.Url);
        await WaitUntilKnownAsync(clientB, "hot");

        // Ten counters, each taken up and down three times, alternately through either instance and concurrently:
        // 60 crossings, each one event.
        const int Counters = 10, Cycles = 3;
        await Task.WhenAll(Enumerable.Range(0, Counters).Select(async i =>
        {
            for (var cycle = 0; cycle < Cycles; cycle++)
            {
                await (cycle % 2 == 0 ? clientA : clientB).SetAsync($"hot:{i}", 1);
                await (cycle % 2 == 0 ? clientB : clientA).SetAsync($"hot:{i}", 0);
            }
        }));

        var deliveries = await receiver.WaitForAsync(Counters * Cycles * 2, timeout: TimeSpan.FromSeconds(60));
        await Task.Delay(1500);
        var received = receiver.Received;
        Assert.Equal(Counters * Cycles * 2, received.Count);
        Assert.Equal(received.Count, received.Select(delivery => delivery.Id).Distinct().Count());
        Assert.All(received, delivery => Assert.True(StandardWebhooks.Verify(secret, delivery)));
        foreach (var counter in received.GroupBy(delivery => delivery.Counter))
        {
            // The states alternate exactly: firing, resolved, firing… by the counter's version.
            var types = counter.OrderBy(delivery => (long)delivery.Payload["data"]!["version"]!).Select(delivery => delivery.Type).ToList();
            Assert.Equal(Enumerable.Range(0, Cycles * 2).Select(k => k % 2 == 0 ? "alert.firing" : "alert.resolved"), types);
        }
        var attempts = await clientB.DeliveriesAsync("hot");
        Assert.Equal(Counters * Cycles * 2, attempts.Count);
        Assert.All(attempts, attempt => Assert.Equal("delivered", (string?)attempt!["outcome"]));
    }

    [Fact]
    public async Task ACrashedSendersLeaseIsTakenOverByAnotherInstanceWithTheSameId()
    {
        var connectionString = await postgres.CreateDatabaseAsync();
        var first = new TaskCompletionSource();
        var release = new TaskCompletionSource();
        await using var receiver = await WebhookReceiver.StartAsync();
        receiver.Respond = _ =>
        {
            if (first.TrySetResult())
            {
                release.Task.Wait(TimeSpan.FromSeconds(30)); // the first delivery hangs: its sender is killed meanwhile
                return 500;
            }
            return 204;
        };
        var a = await StartAsync(connectionString, "--Alerts:DeliveryTimeoutSeconds", "2");
        using var clientA = a.CreateClient();
        var secret = await clientA.CreateAlertAsync("high", "\"counter\": \"signups\", \"above\": 10", receiver.Url);
        await clientA.AddAsync("signups", 11);
        await first.Task.WaitAsync(TimeSpan.FromSeconds(20));
        a.Kill();
        await a.WaitForExitAsync();

        // The lease (2 × 2 s + 5 s) runs out; the other instance takes the event over.
        var b = await StartAsync(connectionString, "--Alerts:DeliveryTimeoutSeconds", "2");
        var delivered = await receiver.WaitForAsync(1, delivery => delivery.Answered == 204, TimeSpan.FromSeconds(30));
        release.SetResult();
        var ids = receiver.Received.Select(delivery => delivery.Id).Distinct().ToList();
        Assert.Single(ids);
        Assert.True(StandardWebhooks.Verify(secret, delivered[0]));
        using var clientB = b.CreateClient();
        var attempts = await clientB.WaitForDeliveriesAsync("high", items => items.Count > 0);
        Assert.Equal("delivered", (string?)attempts[0]!["outcome"]);
    }

    [Fact]
    public async Task DefinitionsChangedOnOneInstanceHoldOnTheOther()
    {
        var connectionString = await postgres.CreateDatabaseAsync();
        await using var receiver = await WebhookReceiver.StartAsync();
        var a = await StartAsync(connectionString);
        var b = await StartAsync(connectionString);
        using var clientA = a.CreateClient();
        using var clientB = b.CreateClient();

        await clientA.CreateAlertAsync("high", "\"counter\": \"signups\", \"above\": 10", receiver.Url);
        await WaitUntilKnownAsync(clientB, "high");
        await clientB.AddAsync("signups", 11);
        Assert.Equal("alert.firing", (await receiver.WaitForAsync(1))[0].Type);

        Assert.Equal(HttpStatusCode.NoContent, (await clientA.DeleteAsync("/alerts/high")).StatusCode);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while ((await clientB.GetAsync("/alerts/high")).StatusCode != HttpStatusCode.NotFound)
        {
            Assert.True(DateTime.UtcNow < deadline, "The deletion never reached the other instance.");
            await Task.Delay(50);
        }
        await clientB.AddAsync("signups", -11);
        await Task.Delay(500);
        Assert.Single(receiver.Received);
    }

    private static async Task WaitUntilKnownAsync(HttpClient client, string id)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while ((await client.GetAsync($"/alerts/{id}")).StatusCode != HttpStatusCode.OK)
        {
            Assert.True(DateTime.UtcNow < deadline, $"The alert {id} never reached the other instance.");
            await Task.Delay(50);
        }
    }
}
