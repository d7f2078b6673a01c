using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using Tally.Server.Tests.Auth;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Http;

/// <summary>HEAD wherever GET works, 304 for a read whose ETag the client has, and nothing steered by the Host header.</summary>
public class HttpMannersTests
{
    [Theory]
    [InlineData("/counters/seen")]
    [InlineData("/counters?prefix=se")]
    [InlineData("/healthz")]
    [InlineData("/readyz")]
    [InlineData("/metrics")]
    [InlineData("/openapi/v1.json")]
    [InlineData("/admin/keys")]
    public async Task HeadAnswersLikeGetWithTheSameHeadersAndNoBody(string path)
    {
        await using var app = new TallyApplication("memory");
        var client = app.CreateClient();
        await client.SetUpCounterAsync("seen", """{"value": 3}""");

        using var get = await client.GetAsync(path);
        var getBody = await get.Content.ReadAsByteArrayAsync();
        using var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, path));

        Assert.Equal(HttpStatusCode.OK, get.StatusCode);
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.Empty(await head.Content.ReadAsByteArrayAsync());
        Assert.Equal(get.Content.Headers.ContentType, head.Content.Headers.ContentType);
        Assert.Equal(get.Headers.ETag, head.Headers.ETag);
        if (head.Content.Headers.ContentLength is { } length && path != "/metrics") // the metrics count the requests themselves
        {
            Assert.Equal(getBody.Length, length);
        }
    }

    [Fact]
    public async Task HeadOfACounterCarriesItsETagAndContentLength()
    {
        await using var app = new TallyApplication("memory");
        var client = app.CreateClient();
        var counter = await client.SetUpCounterAsync("seen", """{"value": 3}""");
        var body = await (await client.GetAsync("/counters/seen")).Content.ReadAsByteArrayAsync();

        using var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/counters/seen"));

        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.Equal(new EntityTagHeaderValue($"\"{counter.Version}\""), head.Headers.ETag);
        Assert.Equal(body.Length, head.Content.Headers.ContentLength);
    }

    [Fact]
    public async Task HeadKeepsTheStatusAndAuthorizationOfGet()
    {
        await using var app = new TallyApplication("memory");
        using var missing = await app.CreateClient().SendAsync(new HttpRequestMessage(HttpMethod.Head, "/counters/absent"));
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        using var anonymous = await app.CreateClientWithKey(null).SendAsync(new HttpRequestMessage(HttpMethod.Head, "/counters/absent"));
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        using var noGet = await app.CreateClient().SendAsync(new HttpRequestMessage(HttpMethod.Head, "/counters/a/increment"));
        Assert.Equal(HttpStatusCode.MethodNotAllowed, noGet.StatusCode);
        Assert.Equal(1, (await (await app.CreateClient().IncrementAsync("a")).ReadCounterAsync()).Version); // HEAD changed nothing
    }

    [Theory]
    [InlineData("\"{0}\"")]
    [InlineData("W/\"{0}\"")]
    [InlineData("\"1000\", \"{0}\"")]
    [InlineData("\"1000\", W/\"{0}\"")]
    [InlineData("*")]
    public async Task ReadWithAMatchingIfNoneMatchIsNotModifiedWithTheETagAndNoBody(string header)
    {
        await using var app = new TallyApplication("memory");
        var client = app.CreateClient();
        var counter = await client.SetUpCounterAsync("cached", """{"value": 7}""");

        foreach (var method in new[] { HttpMethod.Get, HttpMethod.Head })
        {
            var request = new HttpRequestMessage(method, "/counters/cached");
            request.Headers.TryAddWithoutValidation("If-None-Match", string.Format(System.Globalization.CultureInfo.InvariantCulture, header, counter.Version));
            using var response = await client.SendAsync(request);

            Assert.Equal(HttpStatusCode.NotModified, response.StatusCode);
            Assert.Equal(new EntityTagHeaderValue($"\"{counter.Version}\""), response.Headers.ETag);
            Assert.Empty(await response.Content.ReadAsByteArrayAsync());
        }
    }

    [Theory]
    [InlineData("\"1000\"")]
    [InlineData("W/\"1000\", \"999\"")]
    [InlineData("junk")]
    public async Task ReadWithAnotherETagIsTheCounter(string header)
    {
        await using var app = new TallyApplication("memory");
        var client = app.CreateClient();
        await client.SetUpCounterAsync("cached", """{"value": 7}""");
        var request = new HttpRequestMessage(HttpMethod.Get, "/counters/cached");
        request.Headers.TryAddWithoutValidation("If-None-Match", header);
        Assert.Equal(7, (await (await client.SendAsync(request)).ReadCounterAsync()).Value);
    }

    [Fact]
    public async Task AfterAChangeTheOldETagNoLongerMatches()
    {
        await using var app = new TallyApplication("memory");
        var client = app.CreateClient();
        var before = await client.SetUpCounterAsync("cached", """{"value": 7}""");
        await (await client.IncrementAsync("cached")).ReadCounterAsync();
        var request = new HttpRequestMessage(HttpMethod.Get, "/counters/cached");
        request.Headers.TryAddWithoutValidation("If-None-Match", $"\"{before.Version}\"");
        Assert.Equal(8, (await (await client.SendAsync(request)).ReadCounterAsync()).Value);
    }

    [Fact]
    public async Task TheOpenApiDocumentDoesNotReflectTheHostHeader()
    {
        await using var app = new TallyApplication("memory");
        var request = new HttpRequestMessage(HttpMethod.Get, "/openapi/v1.json");
        request.Headers.Host = "evil.example:6666";
        using var response = await app.CreateClientWithKey(null).SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.DoesNotContain("evil.example", text, StringComparison.Ordinal);
        var servers = JsonNode.Parse(text)!["servers"]?.AsArray() ?? [];
        Assert.All(servers, server => Assert.Equal("/", (string?)server!["url"]));
    }

    [Fact]
    public async Task MetricsScrapesAreNeverRateLimited()
    {
        await using var app = new TallyApplication("memory", settings: new Dictionary<string, string?>
        {
            ["RateLimit:PermitsPerSecond"] = "1",
            ["RateLimit:Burst"] = "1",
        });
        var scraper = app.CreateClientWithKey(null);
        for (var i = 0; i < 30; i++)
        {
            using var response = await scraper.GetAsync("/metrics");
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"scrape #{i} answered {(int)response.StatusCode}");
        }
        // The same address is still limited elsewhere: the exemption is for the scrape and the probes only.
        await (await scraper.GetAsync("/counters/a")).ReadProblemAsync(HttpStatusCode.Unauthorized, "unauthorized");
        await (await scraper.GetAsync("/counters/a")).ReadProblemAsync(HttpStatusCode.TooManyRequests, "rate_limited");
    }
}
