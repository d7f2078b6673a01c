using System.Net;
using Tally.Server.Tests.Auth;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Batch;

/// <summary>
/// <c>POST /batch</c> with stored keys: every operation needs its own scope and a name inside the key's
/// prefix, else the whole batch is <c>403 forbidden</c> with the index of the first refused operation.
/// </summary>
public class BatchAuthorizationTests
{
    [Fact]
    public async Task AReadKeyCanBatchReadsButNotAnIncrement()
    {
        await using var app = new TallyApplication("memory");
        var admin = app.CreateClient();
        await admin.SetUpCounterAsync("a", """{"value": 5}""");
        var reader = app.CreateClientWithKey((await admin.CreateKeyAsync("reader", ["read"])).Key);

        var reads = await (await reader.PostBatchAsync(atomic: false, """{"op": "get", "name": "a"}""", """{"op": "get", "name": "b"}""")).ReadResultsAsync(2);
        BatchTesting.Counter(reads[0], 200, "a", 5, 1);
        BatchTesting.Error(reads[1], 404, "counter_not_found");

        var response = await reader.PostBatchAsync(atomic: false, """{"op": "get", "name": "a"}""", """{"op": "increment", "name": "a"}""");
        var problem = await response.ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");
        Assert.Equal(1, (int?)problem["index"]);
        Assert.Contains("increment", (string?)problem["detail"], StringComparison.Ordinal);
        var counter = await admin.GetCounterAsync("a");
        Assert.Equal((5L, 1L), (counter.Value, counter.Version));
    }

    [Theory]
    [InlineData("""{"op": "decrement", "name": "a"}""")]
    [InlineData("""{"op": "set", "name": "a", "value": 1000}""")]
    [InlineData("""{"op": "reset", "name": "a"}""")]
    [InlineData("""{"op": "delete", "name": "a"}""")]
    [InlineData("""{"op": "get", "name": "a"}""")]
    public async Task AnIncrementKeyCanBatchIncrementsOnly(string otherOp)
    {
        await using var app = new TallyApplication("memory");
        var admin = app.CreateClient();
        await admin.SetUpCounterAsync("a", """{"value": 5}""");
        var incrementer = app.CreateClientWithKey((await admin.CreateKeyAsync("page", ["increment"])).Key);

        var results = await (await incrementer.PostBatchAsync(atomic: true,
            """{"op": "increment", "name": "a", "by": 2}""", """{"op": "increment", "name": "b"}""")).ReadResultsAsync(2);
        BatchTesting.Counter(results[0], 200, "a", 7, 2);
        BatchTesting.Counter(results[1], 200, "b", 1, 1);

        // Even in a non-atomic batch, one refused operation refuses the lot.
        var response = await incrementer.PostBatchAsync(atomic: false,
            """{"op": "increment", "name": "a"}""", """{"op": "increment", "name": "b"}""", otherOp);
        var problem = await response.ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");
        Assert.Equal(2, (int?)problem["index"]);
        var a = await admin.GetCounterAsync("a");
        Assert.Equal((7L, 2L), (a.Value, a.Version));
        Assert.Equal(1L, (await admin.GetCounterAsync("b")).Value);
    }

    [Fact]
    public async Task APrefixedKeyCannotTouchACounterOutsideItsPrefixInABatch()
    {
        await using var app = new TallyApplication("memory");
        var admin = app.CreateClient();
        await admin.SetUpCounterAsync("shop:a", """{"value": 5}""");
        await admin.SetUpCounterAsync("other", """{"value": 5}""");
        var shop = app.CreateClientWithKey((await admin.CreateKeyAsync("shop", ["read", "write"], "shop:")).Key);

        var inside = await (await shop.PostBatchAsync(atomic: false,
            """{"op": "increment", "name": "shop:a"}""", """{"op": "set", "name": "shop:b", "value": 1}""", """{"op": "get", "name": "shop:a"}""")).ReadResultsAsync(3);
        BatchTesting.Counter(inside[2], 200, "shop:a", 6, 2);

        foreach (var outside in new[] { "other", "shop", "Shop:a", "shopper" })
        {
            var response = await shop.PostBatchAsync(atomic: false,
                """{"op": "increment", "name": "shop:a"}""", $$"""{"op": "get", "name": "{{outside}}"}""");
            var problem = await response.ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");
            Assert.Equal(1, (int?)problem["index"]);
            Assert.Contains(outside, (string?)problem["detail"], StringComparison.Ordinal);
        }

        var deleteOutside = await shop.PostBatchAsync(atomic: false, """{"op": "delete", "name": "other"}""");
        await deleteOutside.ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");
        var shopA = await admin.GetCounterAsync("shop:a");
        Assert.Equal((6L, 2L), (shopA.Value, shopA.Version));
        var other = await admin.GetCounterAsync("other");
        Assert.Equal((5L, 1L), (other.Value, other.Version));
    }

    [Fact]
    public async Task AMalformedBatchIsRefusedAs400BeforeItsOperationsAreAuthorized()
    {
        await using var app = new TallyApplication("memory");
        var admin = app.CreateClient();
        var reader = app.CreateClientWithKey((await admin.CreateKeyAsync("reader", ["read"])).Key);

        var response = await reader.PostBatchAsync(atomic: false, """{"op": "increment", "name": "a"}""", """{"op": "increment", "name": "a", "by": 0}""");

        var problem = await response.ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_amount");
        Assert.Equal(1, (int?)problem["index"]);
    }

    [Fact]
    public async Task ABatchWithoutAKeyIsUnauthorized()
    {
        await using var app = new TallyApplication("memory");
        var anonymous = app.CreateClientWithKey(null);

        var response = await anonymous.PostBatchAsync(atomic: false, """{"op": "increment", "name": "a"}""");

        await response.ReadProblemAsync(HttpStatusCode.Unauthorized, "unauthorized");
        await app.CreateClient().AssertMissingAsync("a");
    }
}
