using Tally.Client.Tests.Infrastructure;

namespace Tally.Client.Tests;

/// <summary>The server's real rate limiter: one request a second, no burst.</summary>
public sealed class RateLimitTests : IDisposable
{
    private readonly TallyServer _server = new(settings: new Dictionary<string, string?>
    {
        ["RateLimit:PermitsPerSecond"] = "1",
        ["RateLimit:Burst"] = "1",
    });

    public void Dispose() => _server.Dispose();

    [Fact]
    public async Task OverTheLimitWithoutRetriesThrowsRateLimitedWithTheDelay()
    {
        var client = _server.CreateTallyClient(options => options.MaxRetryAttempts = 0);
        await client.IncrementAsync("limited");

        var problem = await Assert.ThrowsAsync<RateLimitedException>(() => client.IncrementAsync("limited"));

        Assert.Equal(("rate_limited", 429), (problem.Code, problem.Status));
        Assert.NotNull(problem.RetryAfter);
        Assert.True(problem.RetryAfter >= TimeSpan.FromSeconds(1), $"Retry-After was {problem.RetryAfter}.");
    }

    [Fact]
    public async Task OverTheLimitTheClientWaitsOutRetryAfterAndCountsOnce()
    {
        var client = _server.CreateTallyClient();
        await client.IncrementAsync("waited");

        var counter = await client.IncrementAsync("waited");

        Assert.Equal((2L, 2L), (counter.Value, counter.Version));
    }

    [Fact]
    public async Task ARetryAfterLongerThanTheClientWaitsIsThrown()
    {
        var client = _server.CreateTallyClient(options => options.MaxRetryAfter = TimeSpan.FromMilliseconds(100));
        await client.IncrementAsync("impatient");

        await Assert.ThrowsAsync<RateLimitedException>(() => client.IncrementAsync("impatient"));
    }
}
