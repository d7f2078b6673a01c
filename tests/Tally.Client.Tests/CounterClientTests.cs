using Tally.Client.Tests.Infrastructure;

namespace Tally.Client.Tests;

/// <summary>Every counter method against a real Tally.</summary>
public sealed class CounterClientTests : IDisposable
{
    private readonly TallyServer _server = new();

    public void Dispose() => _server.Dispose();

    [Fact]
    public async Task SetGetIncrementDecrementResetDeleteRoundTrip()
    {
        var client = _server.CreateTallyClient();

        var created = await client.SetAsync("shop:visits", new CounterSettings { Value = 10, Initial = 5, Min = 0, Max = 100 });
        Assert.Equal(("shop:visits", 10L, 5L, (long?)0L, (long?)100L, 1L), (created.Name, created.Value, created.Initial, created.Min, created.Max, created.Version));

        Assert.Equal(17, (await client.IncrementAsync("shop:visits", 7)).Value);
        Assert.Equal(16, (await client.DecrementAsync("shop:visits")).Value);
        var read = await client.GetAsync("shop:visits");
        Assert.Equal((16L, 3L), (read.Value, read.Version));

        var reset = await client.ResetAsync("shop:visits");
        Assert.Equal((5L, 4L), (reset.Value, reset.Version));

        var unbounded = await client.SetAsync("shop:visits", new CounterSettings { Max = null });
        Assert.Equal(((long?)0L, (long?)null, 5L), (unbounded.Min, unbounded.Max, unbounded.Value));

        await client.DeleteAsync("shop:visits");
        var missing = await Assert.ThrowsAsync<CounterNotFoundException>(() => client.GetAsync("shop:visits"));
        Assert.Equal(("counter_not_found", 404), (missing.Code, missing.Status));
        Assert.Contains("shop:visits", missing.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task IncrementPastMaxThrowsOutOfRangeWithValueAndBounds()
    {
        var client = _server.CreateTallyClient();
        await client.SetAsync("bounded", new CounterSettings { Value = 2, Min = -1, Max = 3 });

        var problem = await Assert.ThrowsAsync<CounterOutOfRangeException>(() => client.IncrementAsync("bounded", 5));

        Assert.Equal(("out_of_range", 409, (long?)2L, (long?)-1L, (long?)3L), (problem.Code, problem.Status, problem.Value, problem.Min, problem.Max));
        Assert.Equal(2, (await client.GetAsync("bounded")).Value);
    }

    [Fact]
    public async Task IfMatchAtAnotherVersionThrowsVersionMismatchWithTheCurrentVersion()
    {
        var client = _server.CreateTallyClient();
        await client.IncrementAsync("versioned");
        await client.IncrementAsync("versioned");

        var problem = await Assert.ThrowsAsync<VersionMismatchException>(() => client.IncrementAsync("versioned", ifMatch: 1));

        Assert.Equal((412, (long?)2L), (problem.Status, problem.CurrentVersion));
        Assert.Equal(3, (await client.IncrementAsync("versioned", ifMatch: 2)).Version);
    }

    [Fact]
    public async Task ListPagesInNameOrderAndTopOrdersByValue()
    {
        var client = _server.CreateTallyClient();
        foreach (var (name, by) in new[] { ("p:a", 3L), ("p:b", 9L), ("p:c", 1L), ("p:d", 5L), ("q:other", 100L) })
        {
            await client.IncrementAsync(name, by);
        }

        var first = await client.ListAsync("p:", limit: 3);
        Assert.Equal(["p:a", "p:b", "p:c"], first.Items.Select(counter => counter.Name));
        Assert.Equal("p:c", first.Next);
        var second = await client.ListAsync("p:", first.Next, 3);
        Assert.Equal(["p:d"], second.Items.Select(counter => counter.Name));
        Assert.Null(second.Next);

        var all = new List<string>();
        await foreach (var counter in client.ListAllAsync("p:", pageSize: 2))
        {
            all.Add(counter.Name);
        }
        Assert.Equal(["p:a", "p:b", "p:c", "p:d"], all);

        var top = await client.TopAsync("p:", 2);
        Assert.Equal([("p:b", 9L), ("p:d", 5L)], top.Select(counter => (counter.Name, counter.Value)));
    }

    [Fact]
    public async Task BatchAnswersEachOperationAndAnAtomicFailureAppliesNothing()
    {
        var client = _server.CreateTallyClient();
        await client.SetAsync("b:capped", new CounterSettings { Max = 1 });

        var results = await client.BatchAsync([
            BatchOperation.Increment("b:one", 2),
            BatchOperation.Increment("b:capped", 5),
            BatchOperation.Set("b:set", new CounterSettings { Value = 7 }),
            BatchOperation.Get("b:one"),
            BatchOperation.Delete("b:set"),
        ]);

        Assert.Equal([200, 409, 201, 200, 204], results.Select(result => result.Status));
        Assert.Equal(2, results[0].Counter!.Value);
        var outOfRange = Assert.IsType<CounterOutOfRangeException>(results[1].Error);
        Assert.Equal(((long?)0L, (long?)1L), (outOfRange.Value, outOfRange.Max));
        Assert.Equal(7, results[2].Counter!.Value);
        Assert.Null(results[4].Counter);

        var failed = await Assert.ThrowsAsync<BatchFailedException>(() => client.BatchAsync(
            [BatchOperation.Increment("b:one"), BatchOperation.Increment("b:capped", 5)], atomic: true));
        Assert.Equal(("batch_failed", (int?)1), (failed.Code, failed.Index));
        Assert.IsType<CounterOutOfRangeException>(failed.Error);
        Assert.Equal(2, (await client.GetAsync("b:one")).Value);
    }

    [Fact]
    public async Task HistoryHasTheBucketOfTheChanges()
    {
        var client = _server.CreateTallyClient();
        await client.IncrementAsync("h", 5);
        await client.DecrementAsync("h", 2);
        await client.SetAsync("h", new CounterSettings { Value = 10 });

        var history = await client.GetHistoryAsync("h", HistoryInterval.Hour);

        Assert.Equal(("h", "hour"), (history.Name, history.Interval));
        var bucket = Assert.Single(history.Buckets);
        Assert.Equal((5L, 2L, 1L, 10L), (bucket.Increments, bucket.Decrements, bucket.Sets, bucket.Value));
        Assert.Empty((await client.GetHistoryAsync("h", HistoryInterval.Day, DateTimeOffset.UtcNow.AddDays(-10), DateTimeOffset.UtcNow.AddDays(-5))).Buckets);
        await Assert.ThrowsAsync<CounterNotFoundException>(() => client.GetHistoryAsync("nothing-here"));
    }

    [Fact]
    public async Task AMalformedRequestThrowsInvalidRequestWithItsCode()
    {
        var client = _server.CreateTallyClient();

        var problem = await Assert.ThrowsAsync<InvalidRequestException>(() => client.SetAsync("bad", new CounterSettings { Min = 5, Max = 1 }));

        Assert.Equal(("invalid_bounds", 400), (problem.Code, problem.Status));
        Assert.False(string.IsNullOrEmpty(problem.Detail));
    }

    [Fact]
    public async Task WithoutAKeyTheClientGetsUnauthorized()
    {
        var client = _server.CreateTallyClient(options => options.ApiKey = null);

        var problem = await Assert.ThrowsAsync<UnauthorizedException>(() => client.GetAsync("x"));

        Assert.Equal(401, problem.Status);
    }
}
