using System.Net;
using Tally.Server.Http;
using Tally.Server.Tests.Auth;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Http;

/// <summary>Cors:AllowedOrigins: pages on those origins may call the API with a key (the hit counter); no one else, and none by default.</summary>
public class CorsTests
{
    private const string Allowed = "https://blog.example";
    private const string Other = "https://elsewhere.example";

    private static TallyApplication App(params string[] origins) => new("memory", settings: new Dictionary<string, string?>(
        origins.Select((origin, i) => KeyValuePair.Create($"Cors:AllowedOrigins:{i}", (string?)origin)))
    {
        // A tiny bucket: preflights must not draw from it.
        ["RateLimit:PermitsPerSecond"] = "1",
        ["RateLimit:Burst"] = "1",
    });

    private static HttpRequestMessage Preflight(string origin, string path = "/counters/hits/increment", string headers = "authorization") => new(HttpMethod.Options, path)
    {
        Headers = { { "Origin", origin }, { "Access-Control-Request-Method", "POST" }, { "Access-Control-Request-Headers", headers } },
    };

    private static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? string.Join(",", values) : null;

    [Fact]
    public async Task APreflightFromAnAllowedOriginGetsTheHeadersWithoutAKeyAndIsNeverLimited()
    {
        await using var app = App(Allowed, "http://127.0.0.1:8080");
        var client = app.CreateClientWithKey(null);

        for (var i = 0; i < 10; i++)
        {
            var response = await client.SendAsync(Preflight(Allowed, headers: "authorization,content-type,idempotency-key,if-match"));

            Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
            Assert.Equal(Allowed, Header(response, "Access-Control-Allow-Origin"));
            Assert.Contains("POST", Header(response, "Access-Control-Allow-Methods"), StringComparison.Ordinal);
            foreach (var header in new[] { "authorization", "content-type", "idempotency-key", "if-match" })
            {
                Assert.Contains(header, Header(response, "Access-Control-Allow-Headers")!, StringComparison.OrdinalIgnoreCase);
            }
            Assert.Null(Header(response, "Access-Control-Allow-Credentials"));
        }
        var second = await client.SendAsync(Preflight("http://127.0.0.1:8080"));
        Assert.Equal("http://127.0.0.1:8080", Header(second, "Access-Control-Allow-Origin"));
    }

    [Fact]
    public async Task APreflightFromAnotherOriginGetsNoCorsHeaders()
    {
        await using var app = App(Allowed);

        var response = await app.CreateClientWithKey(null).SendAsync(Preflight(Other));

        Assert.Null(Header(response, "Access-Control-Allow-Origin"));
        Assert.Null(Header(response, "Access-Control-Allow-Methods"));
        Assert.Null(Header(response, "Access-Control-Allow-Headers"));
    }

    [Fact]
    public async Task AHeaderThePageMayNotSendIsNotAllowed()
    {
        await using var app = App(Allowed);

        var response = await app.CreateClientWithKey(null).SendAsync(Preflight(Allowed, headers: "authorization,x-debug"));

        // The browser then refuses the request: the header it asked for is not among those allowed.
        Assert.DoesNotContain("x-debug", Header(response, "Access-Control-Allow-Headers") ?? string.Empty, StringComparison.OrdinalIgnoreCase);
    }

    [Theory]
    [InlineData(Allowed)]
    [InlineData(Other)]
    [InlineData(null)]
    public async Task EveryAnswerVariesByOriginSoASharedCacheKeepsThemApart(string? origin)
    {
        await using var app = App(Allowed);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/healthz");
        if (origin is not null)
        {
            request.Headers.Add("Origin", origin);
        }

        var response = await app.CreateClientWithKey(null).SendAsync(request);

        Assert.Equal("Origin", Header(response, "Vary"));
        Assert.Equal(origin == Allowed ? Allowed : null, Header(response, "Access-Control-Allow-Origin"));
    }

    [Theory]
    [InlineData(Allowed)]
    [InlineData(Other)]
    [InlineData(null)]
    public async Task WithSeveralOriginsVaryNamesOriginOnce(string? origin)
    {
        await using var app = App(Allowed, "http://127.0.0.1:8080");
        using var request = new HttpRequestMessage(HttpMethod.Get, "/healthz");
        if (origin is not null)
        {
            request.Headers.Add("Origin", origin);
        }

        var response = await app.CreateClientWithKey(null).SendAsync(request);

        Assert.Equal("Origin", Header(response, "Vary"));
    }

    [Fact]
    public async Task ByDefaultThereAreNoCorsHeadersAtAll()
    {
        await using var app = new TallyApplication("memory");
        var client = app.CreateClient();

        var preflight = await client.SendAsync(Preflight(Allowed));
        var increment = await client.SendAsync(new HttpRequestMessage(HttpMethod.Post, "/counters/hits/increment") { Headers = { { "Origin", Allowed } } });

        Assert.Equal(HttpStatusCode.OK, increment.StatusCode);
        Assert.DoesNotContain(preflight.Headers.Concat(increment.Headers), header => header.Key.StartsWith("Access-Control-", StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public async Task AnIncrementKeyFromAnAllowedOriginIncrementsAndThePageMayReadTheETag()
    {
        await using var app = App(Allowed);
        var key = await app.CreateClient().CreateKeyAsync("hit-counter", ["increment"], prefix: "hits");
        var page = app.CreateClientWithKey(key.Key);

        var response = await page.SendAsync(new HttpRequestMessage(HttpMethod.Post, "/counters/hits/increment") { Headers = { { "Origin", Allowed } } });

        Assert.Equal(1, (await response.ReadCounterAsync()).Value);
        Assert.Equal(Allowed, Header(response, "Access-Control-Allow-Origin"));
        Assert.Contains("ETag", Header(response, "Access-Control-Expose-Headers")!, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("Retry-After", Header(response, "Access-Control-Expose-Headers")!, StringComparison.OrdinalIgnoreCase);
        // The page may see why it was refused, too.
        var refused = await app.CreateClientWithKey("tly_unknown").SendAsync(new HttpRequestMessage(HttpMethod.Post, "/counters/hits/increment") { Headers = { { "Origin", Allowed } } });
        await refused.ReadProblemAsync(HttpStatusCode.Unauthorized, "unauthorized");
        Assert.Equal(Allowed, Header(refused, "Access-Control-Allow-Origin"));
    }

    [Fact]
    public async Task AnyOriginWithAStar()
    {
        await using var app = App("*");

        var response = await app.CreateClientWithKey(null).SendAsync(Preflight(Other));

        Assert.Equal("*", Header(response, "Access-Control-Allow-Origin"));
    }

    [Theory]
    [InlineData("https://blog.example/", "Cors:AllowedOrigins:0 must be an origin")]
    [InlineData("https://blog.example/path", "Cors:AllowedOrigins:0 must be an origin")]
    [InlineData("blog.example", "Cors:AllowedOrigins:0 must be an origin")]
    [InlineData("ftp://blog.example", "Cors:AllowedOrigins:0 must be an origin")]
    public void ABadOriginIsNamed(string origin, string named)
    {
        var result = new CrossOriginOptionsValidator().Validate(null, new CrossOriginOptions { AllowedOrigins = [origin] });

        Assert.True(result.Failed);
        Assert.Contains(named, result.FailureMessage, StringComparison.Ordinal);
    }

    [Fact]
    public void AStarMustStandAlone()
    {
        Assert.True(new CrossOriginOptionsValidator().Validate(null, new CrossOriginOptions { AllowedOrigins = ["*", Allowed] }).Failed);
        Assert.True(new CrossOriginOptionsValidator().Validate(null, new CrossOriginOptions { AllowedOrigins = [Allowed, "HTTP://127.0.0.1:80"] }).Succeeded);
    }
}
