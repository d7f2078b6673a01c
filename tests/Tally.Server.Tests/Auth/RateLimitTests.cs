using System.Net;
using Tally.Server.Tests.Infrastructure;
using Tally.Server.Tests.Process;

namespace Tally.Server.Tests.Auth;

public class RateLimitTests
{
    /// <summary>Two requests at once, then one a second: the third quick request is refused.</summary>
    private static readonly Dictionary<string, string?> Tight = new()
    {
        ["RateLimit:PermitsPerSecond"] = "1",
        ["RateLimit:Burst"] = "2",
    };

    [Fact]
    public async Task ARequestOverTheLimitIs429WithRetryAfterAndChangesNothing()
    {
        await using var app = new TallyApplication("memory", settings: Tight);
        var key = await CreateKeyWithoutLimitAsync(app);
        var client = app.CreateClientWithKey(key);

        Assert.Equal(1, (await (await client.IncrementAsync("a")).ReadCounterAsync()).Value);
        Assert.Equal(2, (await (await client.IncrementAsync("a")).ReadCounterAsync()).Value);
        var refused = await client.IncrementAsync("a");

        await refused.ReadProblemAsync(HttpStatusCode.TooManyRequests, "rate_limited");
        var retryAfter = refused.Headers.RetryAfter?.Delta;
        Assert.True(retryAfter >= TimeSpan.FromSeconds(1), $"Retry-After: {refused.Headers.RetryAfter}");

        // The admin key has a bucket of its own; the refused increment did nothing.
        var counter = await app.CreateClient().GetCounterAsync("a");
        Assert.Equal((2L, 2L), (counter.Value, counter.Version));

        var metrics = await (await app.CreateClientWithKey(null).GetAsync("/metrics")).Content.ReadAsStringAsync();
        Assert.Contains(metrics.Split('\n'), line => line.Contains("op=\"request\"", StringComparison.Ordinal)
            && line.Contains("outcome=\"rate_limited\"", StringComparison.Ordinal) && line.EndsWith(" 1", StringComparison.Ordinal));
    }

    [Fact]
    public async Task EachKeyHasItsOwnBucket()
    {
        await using var app = new TallyApplication("memory", settings: Tight);
        var first = app.CreateClientWithKey(await CreateKeyWithoutLimitAsync(app));
        var second = app.CreateClientWithKey(await CreateKeyWithoutLimitAsync(app));

        for (var i = 0; i < 2; i++)
        {
            await (await first.IncrementAsync("a")).ReadCounterAsync();
        }
        await (await first.IncrementAsync("a")).ReadProblemAsync(HttpStatusCode.TooManyRequests, "rate_limited");
        await (await second.IncrementAsync("a")).ReadCounterAsync();
    }

    [Fact]
    public async Task RequestsWithoutAKeyShareTheBucketOfTheirAddressButProbesAndMetricsAreNeverLimited()
    {
        await using var app = new TallyApplication("memory", settings: Tight);
        var anonymous = app.CreateClientWithKey(null);

        for (var i = 0; i < 2; i++)
        {
            await (await anonymous.GetAsync("/counters/a")).ReadProblemAsync(HttpStatusCode.Unauthorized, "unauthorized");
        }
        var refused = await anonymous.GetAsync("/openapi/v1.json");
        await refused.ReadProblemAsync(HttpStatusCode.TooManyRequests, "rate_limited");
        Assert.NotNull(refused.Headers.RetryAfter);
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/healthz")).StatusCode);
            Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/readyz")).StatusCode);
            Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/metrics")).StatusCode);
        }
    }

    [Fact]
    public async Task ZeroPermitsPerSecondTurnsTheLimitOff()
    {
        await using var app = new TallyApplication("memory"); // the test default: RateLimit:PermitsPerSecond=0
        var client = app.CreateClient();
        var answers = await Task.WhenAll(Enumerable.Range(0, 200).Select(_ => client.PostAsync("/counters/a/increment", null)));
        Assert.All(answers, answer => Assert.Equal(HttpStatusCode.OK, answer.StatusCode));
        Assert.Equal(200, (await client.GetCounterAsync("a")).Value);
    }

    [Theory]
    [Trait("Layer", "Process")]
    [InlineData("--RateLimit:PermitsPerSecond", "-1", "RateLimit:PermitsPerSecond")]
    [InlineData("--RateLimit:Burst", "0", "RateLimit:Burst")]
    [InlineData("--RateLimit:PermitsPerSecond", "many", "RateLimit:PermitsPerSecond")]
    public async Task ABadRateLimitSettingStopsTheStart(string argument, string value, string named)
    {
        using var dataDir = new TempDirectory();
        await using var tally = TallyProcess.Start(dataDir.Path, argument, value);

        Assert.Equal(2, await tally.WaitForExitAsync());
        Assert.Contains("Tally cannot start", tally.StandardError, StringComparison.Ordinal);
        Assert.Contains(named, tally.StandardError, StringComparison.Ordinal);
    }

    /// <summary>A write key; created with the admin key, whose own bucket the test then no longer needs much.</summary>
    private static async Task<string> CreateKeyWithoutLimitAsync(TallyApplication app) =>
        (await app.CreateClient().CreateKeyAsync($"limited-{Guid.NewGuid():N}", ["read", "write"])).Key;
}
