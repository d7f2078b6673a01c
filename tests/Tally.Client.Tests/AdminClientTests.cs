using Tally.Client.Tests.Infrastructure;

namespace Tally.Client.Tests;

/// <summary>Keys, alerts, export, import and backup against a real Tally.</summary>
public sealed class AdminClientTests
{
    [Fact]
    public async Task KeysAreCreatedListedLimitedAndRevoked()
    {
        using var server = new TallyServer();
        var admin = server.CreateTallyClient();

        var created = await admin.CreateKeyAsync(new ApiKeyRequest("reader", ["read"]) { Prefix = "shop:" });
        Assert.StartsWith("tly_", created.Key, StringComparison.Ordinal);
        Assert.Equal(["read"], created.Scopes);
        Assert.Equal("shop:", created.Prefix);
        Assert.Contains(await admin.ListKeysAsync(), key => key.Id == created.Id && key.Name == "reader");

        var reader = server.CreateTallyClient(options => options.ApiKey = created.Key);
        await admin.IncrementAsync("shop:a");
        Assert.Equal(1, (await reader.GetAsync("shop:a")).Value);
        var forbidden = await Assert.ThrowsAsync<ForbiddenException>(() => reader.IncrementAsync("shop:a"));
        Assert.Equal(("forbidden", 403), (forbidden.Code, forbidden.Status));

        await admin.RevokeKeyAsync(created.Id);
        await Assert.ThrowsAsync<UnauthorizedException>(() => reader.GetAsync("shop:a"));
        var missing = await Assert.ThrowsAsync<ApiKeyNotFoundException>(() => admin.RevokeKeyAsync(created.Id));
        Assert.Equal("key_not_found", missing.Code);
    }

    [Fact]
    public async Task AlertsArePutReadListedAndDeleted()
    {
        using var server = new TallyServer(settings: new Dictionary<string, string?> { ["Alerts:AllowedHosts"] = "127.0.0.1" });
        var client = server.CreateTallyClient();

        var alert = await client.PutAlertAsync("signups-high", new AlertDefinition { Counter = "signups", Above = 1000, Resolve = 900, Webhook = "http://127.0.0.1:9/hook" });
        Assert.StartsWith("whsec_", alert.Secret, StringComparison.Ordinal);
        Assert.Equal(("signups", (long?)1000L, (long?)900L, true), (alert.Counter, alert.Above, alert.Resolve, alert.WebhookEnabled));

        var read = await client.GetAlertAsync("signups-high");
        Assert.Null(read.Secret);
        Assert.Equal("http://127.0.0.1:9/hook", read.Webhook);
        Assert.Equal(["signups-high"], (await client.ListAlertsAsync()).Select(item => item.Id));
        Assert.Empty(await client.GetDeliveriesAsync("signups-high", 10));

        var invalid = await Assert.ThrowsAsync<InvalidRequestException>(() =>
            client.PutAlertAsync("both", new AlertDefinition { Counter = "a", Prefix = "b", Above = 1, Webhook = "http://127.0.0.1:9/" }));
        Assert.Equal("invalid_alert", invalid.Code);

        await client.DeleteAlertAsync("signups-high");
        var missing = await Assert.ThrowsAsync<AlertNotFoundException>(() => client.GetAlertAsync("signups-high"));
        Assert.Equal(404, missing.Status);
    }

    [Fact]
    public async Task ExportThenImportRestoresEveryCounterWithProgress()
    {
        using var source = new TallyServer();
        var client = source.CreateTallyClient();
        await client.SetAsync("e:a", new CounterSettings { Value = 5, Max = 10 });
        await client.IncrementAsync("e:b", 42);

        using var export = new MemoryStream();
        var reports = new List<TransferProgress>();
        var bytes = await client.ExportAsync(export, new SynchronousProgress(reports.Add));
        Assert.Equal(export.Length, bytes);
        Assert.Equal(bytes, reports[^1].Bytes);
        var exported = new List<Counter>();
        await foreach (var counter in client.ExportCountersAsync())
        {
            exported.Add(counter);
        }
        Assert.Equal(["e:a", "e:b"], exported.Select(counter => counter.Name));

        using var target = new TallyServer();
        var other = target.CreateTallyClient();
        export.Position = 0;
        var sent = new List<TransferProgress>();
        Assert.Equal(2, await other.ImportAsync(export, new SynchronousProgress(sent.Add)));
        Assert.Equal((bytes, (long?)bytes), (sent[^1].Bytes, sent[^1].Total));
        Assert.Equal(await client.GetAsync("e:a"), await other.GetAsync("e:a"));
        Assert.Equal(await client.GetAsync("e:b"), await other.GetAsync("e:b"));

        var bad = await Assert.ThrowsAsync<InvalidRequestException>(() => other.ImportAsync(new MemoryStream("{\"name\":\"x\"}\n"u8.ToArray())));
        Assert.StartsWith("Line 1:", bad.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task BackupDownloadsTheSqliteFileAndIsRefusedOnMemory()
    {
        using var sqlite = new TallyServer("sqlite");
        var client = sqlite.CreateTallyClient();
        await client.IncrementAsync("kept");
        using var copy = new MemoryStream();
        var bytes = await client.BackupAsync(copy);
        Assert.Equal(copy.Length, bytes);
        Assert.Equal("SQLite format 3\0"u8.ToArray(), copy.ToArray()[..16]);

        using var memory = new TallyServer("memory");
        var refused = await Assert.ThrowsAsync<InvalidRequestException>(() => memory.CreateTallyClient().BackupAsync(new MemoryStream()));
        Assert.Equal("backup_not_supported", refused.Code);
    }

    /// <summary>Progress&lt;T&gt; posts to the thread pool; a test wants every report before it asserts.</summary>
    private sealed class SynchronousProgress(Action<TransferProgress> report) : IProgress<TransferProgress>
    {
        public void Report(TransferProgress value) => report(value);
    }
}
