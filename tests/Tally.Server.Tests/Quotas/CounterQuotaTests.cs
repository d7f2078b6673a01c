using System.Net;
using Tally.Server.Configuration;
using Tally.Server.Counters;
using Tally.Server.Pipeline;
using System.Text.Json.Nodes;
using Tally.Server.Tests.Auth;
using Tally.Server.Tests.Infrastructure;
using Tally.Server.Tests.Storage;

namespace Tally.Server.Tests.Quotas;

/// <summary>Counters a key may create (its maxCounters) and the store's total (Quotas:MaxCounters), in every store.</summary>
public sealed class CounterQuotaTests
{
    private const long Now = 1_700_000_000_000;

    [Theory]
    [InlineData("memory")]
    [InlineData("sqlite")]
    public async Task AKeyPastItsMaxCountersIsRefusedAndOthersAreNot(string kind)
    {
        using var dataDir = new TempDirectory();
        await using var store = await QuotaTesting.OpenAsync(kind, dataDir.Path, new ManualClock(Now), new QuotaOptions());
        var limited = new Requester("key_limited", 2);
        var other = new Requester("key_other", 2);

        Assert.True((await store.SendAsync(CounterCommand.Increment("a", 1), limited)).Result.Succeeded);
        Assert.True((await store.SendAsync(CounterCommand.Put("b", default), limited)).Result.Succeeded);
        var refused = await store.SendAsync(CounterCommand.Increment("c", 1), limited);

        Assert.Equal(ErrorCodes.CounterQuotaExceeded, refused.Result.Error?.Code);
        Assert.Null(await store.GetAsync("c"));
        // Changing its own counters, and another key's creations, are not limited by it.
        Assert.True((await store.SendAsync(CounterCommand.Increment("a", 1), limited)).Result.Succeeded);
        Assert.True((await store.SendAsync(CounterCommand.Increment("c", 1), other)).Result.Succeeded);
        Assert.Equal("key_limited", (await store.GetAsync("a"))!.CreatedBy);
        Assert.Equal("key_other", (await store.GetAsync("c"))!.CreatedBy);
    }

    [Fact]
    public async Task DeletingACounterGivesItsCreatorRoomAgainAcrossARestart()
    {
        using var dataDir = new TempDirectory();
        var clock = new ManualClock(Now);
        var limited = new Requester("key_limited", 2);
        var admin = new Requester("key_admin", null);
        await using (var store = await QuotaTesting.OpenAsync("sqlite", dataDir.Path, clock, new QuotaOptions()))
        {
            await store.SendAsync(CounterCommand.Increment("a", 1), limited);
            await store.SendAsync(CounterCommand.Increment("b", 1), limited);
            // Deleted by someone else: the room goes back to the key that created it.
            Assert.True((await store.SendAsync(CounterCommand.Delete("a"), admin)).Result.Succeeded);
        }

        await using var reopened = await QuotaTesting.OpenAsync("sqlite", dataDir.Path, clock, new QuotaOptions());
        Assert.Equal("key_limited", (await reopened.GetAsync("b"))!.CreatedBy);
        Assert.True((await reopened.SendAsync(CounterCommand.Increment("c", 1), limited)).Result.Succeeded);
        Assert.Equal(ErrorCodes.CounterQuotaExceeded, (await reopened.SendAsync(CounterCommand.Increment("d", 1), limited)).Result.Error?.Code);
    }

    [Theory]
    [InlineData("memory")]
    [InlineData("sqlite")]
    public async Task TheStoreWideLimitHoldsForEveryKeyAndAnAtomicBatchPastItAppliesNothing(string kind)
    {
        using var dataDir = new TempDirectory();
        await using var store = await QuotaTesting.OpenAsync(kind, dataDir.Path, new ManualClock(Now), new QuotaOptions { MaxCounters = 3 });
        var admin = new Requester("key_admin", null);
        await store.SendAsync(CounterCommand.Increment("a", 1), admin);

        var batch = PendingRequest.For(new Tally.Server.Batch.BatchCommand(
            [CounterCommand.Increment("a", 1), CounterCommand.Increment("b", 1), CounterCommand.Increment("c", 1), CounterCommand.Increment("d", 1)], Atomic: true),
            requester: admin);
        var outcome = (await store.CommitAsync([batch], CancellationToken.None))[0];

        Assert.Equal(3, outcome.Batch!.FailedIndex);
        Assert.Equal(ErrorCodes.CounterQuotaExceeded, outcome.Batch.Results[3].Error?.Code);
        Assert.Equal(1, (await store.GetAsync("a"))!.Value);
        Assert.Null(await store.GetAsync("b"));
        // The refused batch used none of the room: two more fit, the third does not.
        Assert.True((await store.SendAsync(CounterCommand.Increment("b", 1), admin)).Result.Succeeded);
        Assert.True((await store.SendAsync(CounterCommand.Increment("c", 1), admin)).Result.Succeeded);
        Assert.Equal(ErrorCodes.CounterQuotaExceeded, (await store.SendAsync(CounterCommand.Increment("d", 1), admin)).Result.Error?.Code);
    }

    [Fact]
    public async Task CreatingPastTheStoreLimitOverHttpIs403AndChangesNothing()
    {
        await using var app = new TallyApplication(settings: new Dictionary<string, string?> { ["Quotas:MaxCounters"] = "2" });
        var client = app.CreateClient();
        await client.SetUpCounterAsync("one", "{}");
        await client.SetUpCounterAsync("two", "{}");

        await (await client.IncrementAsync("three")).ReadProblemAsync(HttpStatusCode.Forbidden, ErrorCodes.CounterQuotaExceeded);
        await (await client.PutAsync("three", "{}")).ReadProblemAsync(HttpStatusCode.Forbidden, ErrorCodes.CounterQuotaExceeded);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/counters/three")).StatusCode);
        Assert.Equal(1, (await (await client.IncrementAsync("one")).ReadCounterAsync()).Value);
    }

    [Fact]
    public async Task AKeyPastItsOwnMaxCountersOrMaxAmountIsRefusedOverHttp()
    {
        await using var app = new TallyApplication();
        var admin = app.CreateClient();
        var created = await admin.PostAsync("/admin/keys", Api.JsonBody("""{"name": "page", "scopes": ["write"], "maxCounters": 2, "maxAmount": 10}"""));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var key = app.CreateClientWithKey((string)JsonNode.Parse(await created.Content.ReadAsStringAsync())!["key"]!);

        await (await key.IncrementAsync("a")).ReadCounterAsync();
        await (await key.PutAsync("b", "{}")).ReadCounterAsync(HttpStatusCode.Created);
        await (await key.IncrementAsync("c")).ReadProblemAsync(HttpStatusCode.Forbidden, ErrorCodes.CounterQuotaExceeded);
        await (await key.PostAsync("/counters/a/increment?by=11", null)).ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");
        await (await key.DecrementAsync("a", """{"by": 11}""")).ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");
        Assert.Equal(11, (await (await key.PostAsync("/counters/a/increment?by=10", null)).ReadCounterAsync()).Value);

        // The admin key is not limited, and deleting one of the key's counters gives it room again.
        await (await admin.IncrementAsync("c")).ReadCounterAsync();
        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync("/counters/b")).StatusCode);
        await (await key.IncrementAsync("d")).ReadCounterAsync();
    }
}
