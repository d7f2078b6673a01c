using System.Net;
using System.Text.Json.Nodes;
using Tally.Server.Tests.Infrastructure;
using Tally.Server.Tests.Process;

namespace Tally.Server.Tests.Alerts;

/// <summary>
/// The real server as a child process: an event committed and not yet delivered survives SIGKILL (the outbox is in
/// the commit's transaction), and the address of a webhook is checked again at delivery.
/// </summary>
[Trait("Layer", "Process")]
public class AlertProcessTests
{
    [Fact]
    public async Task AnEventCommittedButNotDeliveredIsDeliveredAfterSigkillAndRestart()
    {
        using var dataDir = new TempDirectory();
        var port = WebhookReceiver.FreePort(); // nobody listens yet: the receiver is down
        var url = $"http://127.0.0.1:{port}/hooks/tally";
        string secret;
        await using (var tally = TallyProcess.Start(dataDir.Path, AlertTesting.Arguments("1s 1s 1s 1s 1s 1s 1s 1s 1s 1s")))
        {
            await tally.WaitUntilReadyAsync();
            using var client = tally.CreateClient();
            secret = await client.CreateAlertAsync("high", "\"counter\": \"signups\", \"above\": 10", url);
            await client.AddAsync("signups", 11);
            // The 200 means the change and its event are on disk; pull the plug at once.
            tally.Kill();
            await tally.WaitForExitAsync();
        }

        await using var receiver = await WebhookReceiver.StartAsync(port);
        await using var restarted = TallyProcess.Start(dataDir.Path, AlertTesting.Arguments());
        await restarted.WaitUntilReadyAsync();
        using var again = restarted.CreateClient();

        var delivery = Assert.Single(await receiver.WaitForAsync(1));
        Assert.True(StandardWebhooks.Verify(secret, delivery), restarted.Describe());
        Assert.Equal("alert.firing", delivery.Type);
        Assert.Equal(11, (long?)delivery.Payload["data"]!["value"]);
        var attempts = await again.WaitForDeliveriesAsync("high", items => items.Count > 0 && (string?)items[0]!["outcome"] == "delivered");
        Assert.All(attempts, attempt => Assert.Equal(delivery.Id, (string?)attempt!["event"]));
        await Task.Delay(500);
        Assert.Single(receiver.Received);
    }

    [Fact]
    public async Task AWebhookAllowedWhenStoredIsRefusedAtDeliveryOnceItIsNoLonger()
    {
        using var dataDir = new TempDirectory();
        await using var receiver = await WebhookReceiver.StartAsync();
        await using (var tally = TallyProcess.Start(dataDir.Path, AlertTesting.Arguments()))
        {
            await tally.WaitUntilReadyAsync();
            using var client = tally.CreateClient();
            await client.CreateAlertAsync("high", "\"counter\": \"signups\", \"above\": 10", receiver.Url);
            tally.Terminate();
            Assert.Equal(0, await tally.WaitForExitAsync());
        }

        // The same data without Alerts:AllowedHosts: 127.0.0.1 is loopback again.
        await using var restarted = TallyProcess.Start(dataDir.Path, "--Alerts:RetrySchedule", "100ms 100ms", "--Alerts:PollIntervalMs", "50");
        await restarted.WaitUntilReadyAsync();
        using var again = restarted.CreateClient();
        await again.AddAsync("signups", 11);

        var attempts = await again.WaitForDeliveriesAsync("high", items => items.Count == 3);
        Assert.Equal(["gave_up", "failed", "failed"], attempts.Select(attempt => (string)attempt!["outcome"]!));
        Assert.All(attempts, attempt => Assert.Contains("loopback", (string?)attempt!["error"], StringComparison.Ordinal));
        Assert.Empty(receiver.Received);
    }

    [Fact]
    public async Task ABadAlertsSettingStopsTheStartNamingIt()
    {
        using var dataDir = new TempDirectory();
        await using var tally = TallyProcess.Start(dataDir.Path, "--Alerts:RetrySchedule", "5 minutes");
        Assert.Equal(2, await tally.WaitForExitAsync());
        Assert.Contains("Alerts:RetrySchedule", tally.StandardError, StringComparison.Ordinal);

        await using var typo = TallyProcess.Start(dataDir.Path, "--Alerts:AllowedHost", "127.0.0.1");
        Assert.Equal(2, await typo.WaitForExitAsync());
        Assert.Contains("Alerts:AllowedHosts", typo.StandardError, StringComparison.Ordinal);
    }
}
