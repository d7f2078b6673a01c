using System.Net;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Logging;
using Tally.Server.Tests.Auth;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Alerts;

/// <summary>
/// Threshold alerts end to end, in-process, with a real receiver (Kestrel on 127.0.0.1) that checks every signature by
/// the Standard Webhooks algorithm as the specification writes it (<see cref="StandardWebhooks"/>).
/// </summary>
[Trait("Layer", "Process")]
public class AlertDeliveryTests
{
    [Theory]
    [InlineData("sqlite", "sync")]
    [InlineData("sqlite", "async")]
    [InlineData("memory", "sync")]
    public async Task OneCrossingIsOneDeliveryWithAValidSignature(string store, string durability)
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        await using var app = new TallyApplication(store, durability, AlertTesting.Settings());
        var client = app.CreateClient();
        var secret = await client.CreateAlertAsync("high", "\"counter\": \"signups\", \"above\": 10", receiver.Url);

        await client.AddAsync("signups", 5);
        await client.AddAsync("signups", 6);   // 11: past 10
        await client.AddAsync("signups", 1);   // 12: still past, nothing
        await client.AddAsync("other", 100);   // not watched

        var delivery = Assert.Single(await receiver.WaitForAsync(1));
        await Task.Delay(500);
        Assert.Single(receiver.Received);
        Assert.True(StandardWebhooks.Verify(secret, delivery), $"The signature does not verify: {delivery.Signature} for {delivery}");
        Assert.Matches("^evt_[0-9a-f]{32}$", delivery.Id);
        Assert.Equal("application/json", delivery.ContentType?.Split(';')[0]);
        var payload = delivery.Payload;
        Assert.Equal("alert.firing", (string?)payload["type"]);
        Assert.True(DateTimeOffset.TryParse((string?)payload["timestamp"], out _));
        var data = payload["data"]!;
        Assert.Equal("high", (string?)data["alert"]);
        Assert.Equal("signups", (string?)data["counter"]);
        Assert.Equal(11, (long?)data["value"]);
        Assert.Equal(10, (long?)data["threshold"]);
        Assert.Equal("firing", (string?)data["state"]);

        var attempt = Assert.Single(await client.WaitForDeliveriesAsync("high", items => items.Count == 1));
        Assert.Equal(delivery.Id, (string?)attempt!["event"]);
        Assert.Equal("delivered", (string?)attempt["outcome"]);
        Assert.Equal(204, (int?)attempt["status"]);
        Assert.Null(attempt["error"]);
        Assert.Equal(1, (int?)attempt["attempt"]);

        var metrics = await client.GetStringAsync("/metrics");
        Assert.Contains("tally_alerts_events_total{type=\"firing\"} 1", metrics, StringComparison.Ordinal);
        Assert.Contains("tally_alerts_deliveries_total{outcome=\"delivered\"} 1", metrics, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("memory")]
    public async Task AReceiverThatIsDownGetsTheEventOnceItIsUpWithTheSameId(string store)
    {
        var port = WebhookReceiver.FreePort();
        var url = $"http://127.0.0.1:{port}/hooks/tally";
        await using var app = new TallyApplication(store, settings: AlertTesting.Settings("300ms 300ms 300ms 300ms 300ms 300ms 300ms 300ms 300ms 300ms"));
        var client = app.CreateClient();
        var secret = await client.CreateAlertAsync("high", "\"counter\": \"signups\", \"above\": 10", url);

        await client.AddAsync("signups", 11);
        var failed = await client.WaitForDeliveriesAsync("high", items => items.Count >= 2);
        Assert.All(failed, attempt =>
        {
            Assert.Equal("failed", (string?)attempt!["outcome"]);
            Assert.Equal("Connection refused.", (string?)attempt["error"]);
            Assert.Null(attempt["status"]);
        });

        // Up, but failing once more (a 503), then well: every attempt carries the same webhook-id and its own valid signature.
        var answers = 0;
        await using var receiver = await WebhookReceiver.StartAsync(port, _ => Interlocked.Increment(ref answers) == 1 ? 503 : 200);
        var deliveries = await receiver.WaitForAsync(2);
        Assert.Equal(2, deliveries.Count);
        Assert.Single(deliveries.Select(delivery => delivery.Id).Distinct());
        Assert.Equal((string?)failed[0]!["event"], deliveries[0].Id);
        Assert.All(deliveries, delivery => Assert.True(StandardWebhooks.Verify(secret, delivery)));
        Assert.Equal([503, 200], deliveries.Select(delivery => delivery.Answered));

        var attempts = await client.WaitForDeliveriesAsync("high", items => (string?)items[0]!["outcome"] == "delivered");
        Assert.Equal(503, (int?)attempts[1]!["status"]);
        Assert.Equal(Enumerable.Range(1, attempts.Count).Reverse(), attempts.Select(attempt => (int)attempt!["attempt"]!));
    }

    [Fact]
    public async Task AnEventIsGivenUpAfterTheLastRetryAndTheLogSaysSoWithoutSecretOrPath()
    {
        var logs = new CapturingLoggerProvider();
        await using var receiver = await WebhookReceiver.StartAsync(respond: _ => 500);
        await using var tally = new TallyApplication("sqlite", settings: AlertTesting.Settings("100ms 100ms"));
        await using var app = tally.WithWebHostBuilder(builder => builder.ConfigureLogging(logging => logging.AddProvider(logs)));
        var client = app.CreateClient();
        var secret = await client.CreateAlertAsync("high", "\"counter\": \"signups\", \"above\": 10", receiver.Url + "?token=t0ken-of-the-receiver");

        await client.AddAsync("signups", 11);

        var attempts = await client.WaitForDeliveriesAsync("high", items => items.Count == 3);
        Assert.Equal(["gave_up", "failed", "failed"], attempts.Select(attempt => (string)attempt!["outcome"]!));
        Assert.All(attempts, attempt => Assert.Equal(500, (int?)attempt!["status"]));
        await Task.Delay(500);
        Assert.Equal(3, receiver.Received.Count);
        Assert.Contains(logs.Entries, entry => entry.StartsWith("Warning", StringComparison.Ordinal) && entry.Contains("could not be delivered", StringComparison.Ordinal));
        Assert.DoesNotContain(secret["whsec_".Length..], logs.All, StringComparison.Ordinal);
        Assert.DoesNotContain("t0ken-of-the-receiver", logs.All, StringComparison.Ordinal);
        Assert.DoesNotContain("/hooks/tally", logs.All, StringComparison.Ordinal);
    }

    [Fact]
    public async Task GoneDisablesTheWebhookUntilTheAlertIsPutAgain()
    {
        await using var receiver = await WebhookReceiver.StartAsync(respond: _ => 410);
        await using var app = new TallyApplication("sqlite", settings: AlertTesting.Settings());
        var client = app.CreateClient();
        var definition = $$"""{"counter": "signups", "above": 10, "webhook": "{{receiver.Url}}"}""";
        await client.PutAlertAsync("high", definition);

        await client.AddAsync("signups", 11);
        await receiver.WaitForAsync(1);
        var attempt = Assert.Single(await client.WaitForDeliveriesAsync("high", items => items.Count == 1));
        Assert.Equal("disabled", (string?)attempt!["outcome"]);
        Assert.Equal(410, (int?)attempt["status"]);
        var alert = await WaitForAsync(client, "high", a => (bool?)a["webhookEnabled"] == false);
        Assert.NotNull(alert["webhookDisabledAt"]);
        Assert.Contains("410", (string?)alert["webhookDisabledReason"], StringComparison.Ordinal);

        // Disabled: crossings change the states, but nothing is sent.
        await client.AddAsync("signups", -5);
        await client.AddAsync("signups", 5);
        await Task.Delay(500);
        Assert.Single(receiver.Received);

        // PUT again (the receiver is back): enabled, and the next crossing is delivered.
        receiver.Respond = _ => 204;
        var again = await client.PutAlertAsync("high", definition);
        Assert.True((bool)again["webhookEnabled"]!);
        await client.AddAsync("signups", -5);
        var resolved = (await receiver.WaitForAsync(1, delivery => delivery.Answered == 204)).Single();
        Assert.Equal("alert.resolved", resolved.Type);
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("memory")]
    public async Task HysteresisSendsOneEventPerCrossingAndNoneInBetween(string store)
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        await using var app = new TallyApplication(store, settings: AlertTesting.Settings());
        var client = app.CreateClient();
        var secret = await client.CreateAlertAsync("load", "\"counter\": \"queue\", \"above\": 100, \"resolve\": 50", receiver.Url);

        foreach (var value in new long[] { 10, 100, 101, 150, 99, 51, 120, 50, 49, 75, 100, 101, 0 })
        {
            await client.SetAsync("queue", value);
        }

        var deliveries = (await receiver.WaitForAsync(4)).OrderBy(delivery => (long)delivery.Payload["data"]!["version"]!).ToList();
        await Task.Delay(500);
        Assert.Equal(4, receiver.Received.Count);
        Assert.All(deliveries, delivery => Assert.True(StandardWebhooks.Verify(secret, delivery)));
        Assert.Equal(["alert.firing", "alert.resolved", "alert.firing", "alert.resolved"], deliveries.Select(delivery => delivery.Type));
        Assert.Equal([101L, 50, 101, 0], deliveries.Select(delivery => (long)delivery.Payload["data"]!["value"]!));
        Assert.All(deliveries, delivery => Assert.Equal(50, (long?)delivery.Payload["data"]!["resolve"]));
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("memory")]
    public async Task APrefixAlertCoversCountersCreatedAfterIt(string store)
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        await using var app = new TallyApplication(store, settings: AlertTesting.Settings());
        var client = app.CreateClient();
        await client.CreateAlertAsync("api-errors", "\"prefix\": \"api:\", \"above\": 2", receiver.Url);

        // None of these exist yet; each gets a state of its own.
        await client.AddAsync("api:login", 3);
        await client.AddAsync("web:login", 3);
        await client.AddAsync("api:search", 2);
        await client.PostAsync("/batch", Api.JsonBody("""{"ops": [{"op": "increment", "name": "api:search"}, {"op": "increment", "name": "api:pay", "by": 9}]}"""));

        var deliveries = await receiver.WaitForAsync(3);
        await Task.Delay(500);
        Assert.Equal(3, receiver.Received.Count);
        Assert.Equal(["api:login", "api:pay", "api:search"], deliveries.Select(delivery => delivery.Counter).Order(StringComparer.Ordinal));
        Assert.All(deliveries, delivery => Assert.Equal("alert.firing", delivery.Type));
    }

    [Fact]
    public async Task DeletingAFiringCounterResolvesIt()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        await using var app = new TallyApplication("sqlite", settings: AlertTesting.Settings());
        var client = app.CreateClient();
        await client.CreateAlertAsync("high", "\"counter\": \"signups\", \"above\": 10", receiver.Url);

        await client.AddAsync("signups", 11);
        await receiver.WaitForAsync(1);
        Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync("/counters/signups")).StatusCode);

        var resolved = (await receiver.WaitForAsync(2)).Single(delivery => delivery.Type == "alert.resolved");
        Assert.True((bool)resolved.Payload["data"]!["deleted"]!);
        Assert.Null(resolved.Payload["data"]!["value"]);

        // Created again, it starts ok: past the threshold at once is a new firing.
        await client.AddAsync("signups", 20);
        Assert.Equal("alert.firing", (await receiver.WaitForAsync(3))[2].Type);
    }

    [Fact]
    public async Task TheStatesSurviveARestart()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        var app = new TallyApplication("sqlite", settings: AlertTesting.Settings());
        try
        {
            var client = app.CreateClient();
            await client.CreateAlertAsync("high", "\"counter\": \"signups\", \"above\": 10", receiver.Url);
            await client.AddAsync("signups", 11);
            await receiver.WaitForAsync(1);

            app = await app.RestartAsync();
            client = app.CreateClient();
            await client.AddAsync("signups", 1); // still firing: nothing
            await client.AddAsync("signups", -10);
            Assert.Equal(["alert.firing", "alert.resolved"], (await receiver.WaitForAsync(2)).Select(delivery => delivery.Type));
        }
        finally
        {
            await app.DisposeAsync();
        }
    }

    private static async Task<JsonNode> WaitForAsync(HttpClient client, string id, Func<JsonNode, bool> match)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (true)
        {
            var alert = JsonNode.Parse(await client.GetStringAsync($"/alerts/{id}"))!;
            if (match(alert))
            {
                return alert;
            }
            Assert.True(DateTime.UtcNow < deadline, $"The alert never matched: {alert.ToJsonString()}");
            await Task.Delay(50);
        }
    }
}
