using System.Text.RegularExpressions;
using Tally.Server.Alerts;
using Tally.Server.Counters;
using Tally.Server.Tests.Alerts;
using Tally.Server.Tests.Infrastructure;
using Tally.Server.Tests.Process;

namespace Tally.Server.Tests.Redis;

/// <summary>
/// Alerts with Store=redis, on a private redis-server: the state machine runs inside tally_v1_commit (Lua) and must
/// agree with the C# evaluator to the byte; the outbox is a stream read through a consumer group, so with several
/// instances each event is sent by one, and a crashed sender's entries are claimed by another.
/// </summary>
[Trait("Layer", "Process")]
public partial class RedisAlertTests(RedisFixture redis) : IClassFixture<RedisFixture>
{
    private static TallyApplication App(string configuration, string retrySchedule = "200ms 200ms 200ms 200ms 200ms") =>
        new("redis", settings: AlertTesting.Settings(retrySchedule, new Dictionary<string, string?> { ["Redis"] = configuration }));

    [Theory]
    [InlineData("above", 100, 50L, new long[] { 10, 100, 101, 150, 99, 51, 120, 50, 49, 75, 100, 101, 0, -9223372036854775808, 9223372036854775807 })]
    [InlineData("below", -5, null, new long[] { 0, -5, -6, -4, -7, -5, 9223372036854775807, -9223372036854775808 })]
    public async Task TheLuaStateMachineSendsWhatTheCSharpOneWould(string direction, long threshold, long? resolve, long[] values)
    {
        var configuration = await redis.ResetAsync();
        await using var receiver = await WebhookReceiver.StartAsync();
        await using var app = App(configuration);
        var client = app.CreateClient();
        var resolveMember = resolve is null ? string.Empty : $", \"resolve\": {resolve}";
        var secret = await client.CreateAlertAsync("load", $"\"counter\": \"queue\", \"{direction}\": {threshold}{resolveMember}", receiver.Url);

        foreach (var value in values)
        {
            await client.SetAsync("queue", value);
        }

        // The same changes through the C# evaluator.
        var alert = new AlertDefinition("load", "queue", null, direction == "above" ? AlertDirection.Above : AlertDirection.Below, threshold, resolve,
            receiver.Url, secret, 1, null, 0, 0);
        var alerts = new AlertSet([alert]);
        var states = new AlertStateMap();
        var expected = new List<string>();
        for (var i = 0; i < values.Length; i++)
        {
            var change = new CounterChange("queue", ChangeKind.Set, 0, new Counter("queue", values[i], 0, null, null, i + 1, 0, 0));
            if (AlertEvaluator.Evaluate(alerts, [change], states, 0) is { } outcome)
            {
                states.Apply(outcome);
                expected.AddRange(outcome.Events.Select(e => WithoutTime(e.Payload)));
            }
        }
        Assert.NotEmpty(expected);

        var deliveries = await receiver.WaitForAsync(expected.Count);
        await Task.Delay(500);
        Assert.Equal(expected.Count, receiver.Received.Count);
        Assert.All(deliveries, delivery => Assert.True(StandardWebhooks.Verify(secret, delivery)));
        Assert.All(deliveries, delivery => Assert.Matches("^evt_[0-9]+-[0-9]+$", delivery.Id));
        Assert.Equal(expected, deliveries.OrderBy(delivery => (long)delivery.Payload["data"]!["version"]!).Select(delivery => WithoutTime(delivery.Body)));
    }

    [Fact]
    public async Task PrefixAlertsNewCountersAndDeletionsBehaveAsOnTheOtherEngines()
    {
        var configuration = await redis.ResetAsync();
        await using var receiver = await WebhookReceiver.StartAsync();
        await using var app = App(configuration);
        var client = app.CreateClient();
        await client.CreateAlertAsync("api", "\"prefix\": \"api:\", \"above\": 2", receiver.Url);

        await client.AddAsync("api:login", 3);
        await client.AddAsync("web:login", 3);
        // An atomic batch that fails sends nothing; one that succeeds sends its crossings.
        await client.PostAsync("/batch", Api.JsonBody("""{"atomic": true, "ops": [{"op": "increment", "name": "api:a", "by": 5}, {"op": "reset", "name": "api:none"}]}"""));
        await client.PostAsync("/batch", Api.JsonBody("""{"atomic": true, "ops": [{"op": "increment", "name": "api:b", "by": 5}, {"op": "decrement", "name": "api:b", "by": 5}]}"""));
        await client.DeleteAsync("/counters/api:login");

        var deliveries = await receiver.WaitForAsync(4);
        await Task.Delay(500);
        Assert.Equal(4, receiver.Received.Count);
        Assert.Equal(["api:b alert.firing", "api:b alert.resolved", "api:login alert.firing", "api:login alert.resolved"],
            deliveries.Select(delivery => $"{delivery.Counter} {delivery.Type}").Order(StringComparer.Ordinal));
        Assert.True((bool)deliveries.Single(delivery => delivery.Counter == "api:login" && delivery.Type == "alert.resolved").Payload["data"]!["deleted"]!);

        // Created again: it starts ok.
        await client.AddAsync("api:login", 3);
        Assert.Equal("alert.firing", (await receiver.WaitForAsync(5))[4].Type);
    }

    [Fact]
    public async Task AFailedDeliveryIsRetriedWithTheSameIdAndListed()
    {
        var configuration = await redis.ResetAsync();
        var answers = 0;
        await using var receiver = await WebhookReceiver.StartAsync(respond: _ => Interlocked.Increment(ref answers) <= 2 ? 503 : 204);
        await using var app = App(configuration);
        var client = app.CreateClient();
        var secret = await client.CreateAlertAsync("high", "\"counter\": \"signups\", \"above\": 10", receiver.Url);

        await client.AddAsync("signups", 11);

        var deliveries = await receiver.WaitForAsync(3);
        Assert.Single(deliveries.Select(delivery => delivery.Id).Distinct());
        Assert.All(deliveries, delivery => Assert.True(StandardWebhooks.Verify(secret, delivery)));
        var attempts = await client.WaitForDeliveriesAsync("high", items => items.Count == 3);
        Assert.Equal(["delivered", "failed", "failed"], attempts.Select(attempt => (string)attempt!["outcome"]!));
        Assert.Equal([3, 2, 1], attempts.Select(attempt => (int)attempt!["attempt"]!));
        Assert.All(attempts, attempt => Assert.Equal(deliveries[0].Id, (string?)attempt!["event"]));
    }

    [Fact]
    public async Task WithTwoInstancesEveryEventIsDeliveredExactlyOnce()
    {
        var configuration = await redis.ResetAsync();
        await using var receiver = await WebhookReceiver.StartAsync();
        await using var a = App(configuration);
        await using var b = App(configuration);
        var clientA = a.CreateClient();
        var clientB = b.CreateClient();
        var secret = await clientA.CreateAlertAsync("hot", "\"prefix\": \"hot:\", \"above\": 0", receiver.Url);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while ((await clientB.GetAsync("/alerts/hot")).StatusCode != System.Net.HttpStatusCode.OK)
        {
            Assert.True(DateTime.UtcNow < deadline, "The alert never reached the other instance.");
            await Task.Delay(20);
        }

        await Task.WhenAll(Enumerable.Range(0, 10).Select(async i =>
        {
            for (var cycle = 0; cycle < 3; cycle++)
            {
                await (cycle % 2 == 0 ? clientA : clientB).SetAsync($"hot:{i}", 1);
                await (cycle % 2 == 0 ? clientB : clientA).SetAsync($"hot:{i}", 0);
            }
        }));

        await receiver.WaitForAsync(60, timeout: TimeSpan.FromSeconds(60));
        await Task.Delay(1000);
        var received = receiver.Received;
        Assert.Equal(60, received.Count);
        Assert.Equal(60, received.Select(delivery => delivery.Id).Distinct().Count());
        Assert.All(received, delivery => Assert.True(StandardWebhooks.Verify(secret, delivery)));
    }

    [Fact]
    public async Task ACrashedSendersEntriesAreClaimedByAnotherInstance()
    {
        await using var server = await RedisServer.StartNewAsync();
        var first = new TaskCompletionSource();
        var release = new TaskCompletionSource();
        await using var receiver = await WebhookReceiver.StartAsync();
        receiver.Respond = _ =>
        {
            if (first.TrySetResult())
            {
                release.Task.Wait(TimeSpan.FromSeconds(30));
                return 500;
            }
            return 204;
        };
        using var dirA = new TempDirectory();
        using var dirB = new TempDirectory();
        string[] arguments = [.. AlertTesting.Arguments(), "--Store", "redis", "--Redis", server.ConfigurationString, "--Alerts:DeliveryTimeoutSeconds", "2"];
        await using var a = TallyProcess.Start(dirA.Path, arguments);
        await a.WaitUntilReadyAsync();
        using var clientA = a.CreateClient();
        var secret = await clientA.CreateAlertAsync("high", "\"counter\": \"signups\", \"above\": 10", receiver.Url);
        await clientA.AddAsync("signups", 11);
        await first.Task.WaitAsync(TimeSpan.FromSeconds(20));
        a.Kill();
        await a.WaitForExitAsync();

        await using var b = TallyProcess.Start(dirB.Path, arguments);
        await b.WaitUntilReadyAsync();
        var delivered = await receiver.WaitForAsync(1, delivery => delivery.Answered == 204, TimeSpan.FromSeconds(30));
        release.SetResult();
        Assert.Single(receiver.Received.Select(delivery => delivery.Id).Distinct());
        Assert.True(StandardWebhooks.Verify(secret, delivered[0]), b.Describe());
    }

    private static string WithoutTime(string payload) => Timestamp().Replace(payload, "\"timestamp\":\"…\"");

    [GeneratedRegex("\"timestamp\":\"[^\"]*\"")]
    private static partial Regex Timestamp();
}
