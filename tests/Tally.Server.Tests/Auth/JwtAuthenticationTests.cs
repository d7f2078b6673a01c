using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Tally.Server.Auth;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Auth;

/// <summary>JWT bearer tokens beside API keys (Auth:Jwt:*): tokens minted here with a local RSA key, trusted through a JWKS file or OIDC discovery.</summary>
public sealed class JwtAuthenticationTests : IDisposable
{
    private readonly TempDirectory _dir = new();
    private readonly JwtIssuer _issuer = new();

    private TallyApplication App(Dictionary<string, string?>? more = null)
    {
        var settings = _issuer.SettingsWithKeysFile(_dir.Path);
        foreach (var (key, value) in more ?? [])
        {
            settings[key] = value;
        }
        return new TallyApplication("memory", settings: settings);
    }

    private static HttpClient WithToken(TallyApplication app, string token) => app.CreateClientWithKey(token);

    [Fact]
    public async Task AValidTokenWithTheIncrementScopeIncrements()
    {
        await using var app = App();
        var client = WithToken(app, _issuer.Token("alice", "openid tally:increment"));

        var counter = await (await client.IncrementAsync("hits")).ReadCounterAsync();

        Assert.Equal(1, counter.Value);
    }

    public static TheoryData<string> RefusedTokens() => ["expired", "wrong audience", "wrong issuer", "wrong signature", "alg none", "alg none with a signature", "no exp", "not yet valid", "garbage"];

    [Theory]
    [MemberData(nameof(RefusedTokens))]
    public async Task OnlyAValidTokenPasses(string kind)
    {
        using var other = new JwtIssuer(keyId: _issuer.KeyId); // same kid, another key: a forgery
        var valid = _issuer.Token("alice", "tally:admin");
        var token = kind switch
        {
            "expired" => _issuer.Token("alice", "tally:admin", expires: DateTime.UtcNow.AddMinutes(-5)),
            "wrong audience" => _issuer.Token("alice", "tally:admin", audience: "another-api"),
            "wrong issuer" => _issuer.Token("alice", "tally:admin", issuer: "https://evil.example"),
            "wrong signature" => other.Token("alice", "tally:admin"),
            "alg none" => _issuer.UnsignedToken("alice", "tally:admin"),
            "alg none with a signature" => _issuer.UnsignedToken("alice", "tally:admin", signature: valid.Split('.')[2]),
            "no exp" => _issuer.Token("alice", "tally:admin", withExpiry: false),
            "not yet valid" => _issuer.Token("alice", "tally:admin", notBefore: DateTime.UtcNow.AddMinutes(5), expires: DateTime.UtcNow.AddMinutes(10)),
            "garbage" => "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.AAAA",
            _ => throw new ArgumentOutOfRangeException(nameof(kind)),
        };
        await using var app = App();

        Assert.Equal(HttpStatusCode.OK, (await WithToken(app, valid).GetAsync("/counters")).StatusCode);
        var response = await WithToken(app, token).GetAsync("/counters");

        var problem = await response.ReadProblemAsync(HttpStatusCode.Unauthorized, "unauthorized");
        var challenge = Assert.Single(response.Headers.WwwAuthenticate);
        Assert.Equal("Bearer", challenge.Scheme);
        Assert.Contains("error=\"invalid_token\"", challenge.Parameter, StringComparison.Ordinal);
        var text = problem.ToJsonString();
        // Nothing of the validation's internals: no IdentityModel codes, no exception names, no token.
        foreach (var leak in new[] { "IDX", "Exception", "Microsoft.", token.Split('.')[0], kind == "alg none" ? "none" : "RS256" })
        {
            Assert.DoesNotContain(leak, text, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task ClocksMayDifferByThirtySeconds()
    {
        await using var app = App();

        var withinSkew = _issuer.Token("alice", "tally:read", expires: DateTime.UtcNow.AddSeconds(-10));
        var pastSkew = _issuer.Token("alice", "tally:read", expires: DateTime.UtcNow.AddSeconds(-50));

        Assert.Equal(HttpStatusCode.OK, (await WithToken(app, withinSkew).GetAsync("/counters")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await WithToken(app, pastSkew).GetAsync("/counters")).StatusCode);
    }

    [Fact]
    public async Task ScopesComeFromScopeOrScpAndOnlyTallyScopesCount()
    {
        await using var app = App();
        var reader = WithToken(app, _issuer.Token("alice", "tally:read"));
        var writerByScp = WithToken(app, _issuer.Token("bob", string.Empty, claims: new Dictionary<string, object> { ["scp"] = new[] { "tally:write" } }));
        var notTally = WithToken(app, _issuer.Token("carol", "read write admin"));

        await (await writerByScp.PutAsync("a", """{"value": 5}""")).ReadCounterAsync(HttpStatusCode.Created);
        Assert.Equal(5, (await reader.GetCounterAsync("a")).Value);
        await (await reader.IncrementAsync("a")).ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");
        await (await writerByScp.GetAsync("/counters/a")).ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");
        await (await notTally.GetAsync("/counters/a")).ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");
    }

    [Fact]
    public async Task TheTallyPrefixClaimBoundsTheCounters()
    {
        await using var app = App();
        var shop = WithToken(app, _issuer.Token("alice", "tally:write tally:read", prefix: "shop:"));

        await (await shop.IncrementAsync("shop:orders")).ReadCounterAsync();
        await (await shop.IncrementAsync("blog:views")).ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");
        var page = await (await shop.GetAsync("/counters")).ReadPageAsync();
        Assert.All(page.Items, counter => Assert.StartsWith("shop:", counter.Name, StringComparison.Ordinal));
    }

    [Fact]
    public async Task AnAdminTokenWithAPrefixIsRefused()
    {
        await using var app = App();

        var response = await WithToken(app, _issuer.Token("alice", "tally:admin", prefix: "shop:")).GetAsync("/counters");

        var problem = await response.ReadProblemAsync(HttpStatusCode.Unauthorized, "unauthorized");
        Assert.Contains("tally_prefix", (string?)problem["detail"], StringComparison.Ordinal);
    }

    [Fact]
    public async Task OnlyATokenWithTallyAdminManagesKeys()
    {
        await using var app = App();
        var writer = WithToken(app, _issuer.Token("alice", "tally:write tally:read"));
        var admin = WithToken(app, _issuer.Token("root", "tally:admin"));

        var refused = await writer.PostAsync("/admin/keys", Api.JsonBody("""{"name": "mine", "scopes": ["admin"]}"""));
        await refused.ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");
        await (await writer.GetAsync("/admin/keys")).ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");

        var key = await admin.CreateKeyAsync("from-a-jwt", ["increment"]);
        Assert.Equal(HttpStatusCode.OK, (await app.CreateClientWithKey(key.Key).IncrementAsync("a")).StatusCode);
    }

    [Fact]
    public async Task ApiKeysKeepWorkingBesideJwts()
    {
        await using var app = App();
        var key = await app.CreateClient().CreateKeyAsync("reader", ["read"]);

        Assert.Equal(HttpStatusCode.OK, (await app.CreateClientWithKey(key.Key).GetAsync("/counters")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await app.CreateClientWithKey(key.Key, asApiKeyHeader: true).GetAsync("/counters")).StatusCode);
        await (await app.CreateClientWithKey("tly_unknown").GetAsync("/counters")).ReadProblemAsync(HttpStatusCode.Unauthorized, "unauthorized");
        var none = await app.CreateClientWithKey(null).GetAsync("/counters");
        await none.ReadProblemAsync(HttpStatusCode.Unauthorized, "unauthorized");
        Assert.DoesNotContain("error=", Assert.Single(none.Headers.WwwAuthenticate).Parameter ?? string.Empty, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("abcdefgh.ijklmnop.qrstuvwx")]
    [InlineData("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2lnbmF0dXJl")]
    public async Task AnAdminKeyShapedLikeAJwtStaysTheAdminKey(string adminKey)
    {
        await using var app = App(new() { ["AdminKey"] = adminKey });

        Assert.Equal(HttpStatusCode.OK, (await app.CreateClientWithKey(adminKey).GetAsync("/admin/keys")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await app.CreateClientWithKey(adminKey, asApiKeyHeader: true).GetAsync("/admin/keys")).StatusCode);
        // A real token beside it still goes to JwtBearer, and a near miss of the admin key is no admin key.
        Assert.Equal(HttpStatusCode.OK, (await WithToken(app, _issuer.Token("alice", "tally:read")).GetAsync("/counters")).StatusCode);
        await (await app.CreateClientWithKey(adminKey + "x").GetAsync("/admin/keys")).ReadProblemAsync(HttpStatusCode.Unauthorized, "unauthorized");
    }

    [Theory]
    [InlineData("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", null, true)]
    [InlineData("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", false)]
    [InlineData("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lX", true)]
    [InlineData("abcdefgh.ijklmnop.qrstuvwx", null, false)] // no JSON header
    [InlineData("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0", null, false)] // two segments
    [InlineData("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln.eA", null, false)] // four
    [InlineData("eyJhbGciOiJSUzI1NiJ9..c2ln", null, false)] // an empty one
    [InlineData("eyJhbGciOiJSUzI1NiJ9.eyJz!WIiOiJ4In0.c2ln", null, false)] // not base64url
    [InlineData("tly_0123456789abcdef", null, false)] // an issued key
    public void OnlyAJwtShapedValueThatIsNotTheAdminKeyGoesToJwtBearer(string value, string? adminKey, bool jwt) =>
        Assert.Equal(jwt, JwtAuthentication.IsJwt(value, adminKey));

    [Fact]
    public async Task WithoutJwtSettingsATokenIsAnUnknownKey()
    {
        await using var app = new TallyApplication("memory");

        var response = await app.CreateClientWithKey(_issuer.Token("alice", "tally:admin")).GetAsync("/counters");

        await response.ReadProblemAsync(HttpStatusCode.Unauthorized, "unauthorized");
    }

    [Fact]
    public async Task TheRateLimitHoldsPerSubjectWhateverTokenItPresents()
    {
        await using var app = App(new() { ["RateLimit:PermitsPerSecond"] = "1", ["RateLimit:Burst"] = "3" });

        async Task<int> Admitted(string token)
        {
            var client = WithToken(app, token);
            var admitted = 0;
            for (var i = 0; i < 3; i++)
            {
                var response = await client.GetAsync("/counters");
                admitted += response.StatusCode == HttpStatusCode.OK ? 1 : 0;
                Assert.True(response.StatusCode is HttpStatusCode.OK or HttpStatusCode.TooManyRequests, $"Got {(int)response.StatusCode}.");
            }
            return admitted;
        }

        Assert.Equal(3, await Admitted(_issuer.Token("alice", "tally:read")));
        // A new token for the same subject draws from the same bucket (at most one permit refilled meanwhile).
        Assert.True(await Admitted(_issuer.Token("alice", "tally:read")) <= 1);
        Assert.Equal(3, await Admitted(_issuer.Token("bob", "tally:read")));
    }

    [Fact]
    public async Task IdempotencyKeysAreScopedToTheSubject()
    {
        await using var app = App();
        var first = WithToken(app, _issuer.Token("alice", "tally:increment"));
        var again = WithToken(app, _issuer.Token("alice", "tally:increment"));

        for (var i = 0; i < 2; i++)
        {
            var request = new HttpRequestMessage(HttpMethod.Post, "/counters/a/increment") { Headers = { { "Idempotency-Key", "order-1" } } };
            await (await (i == 0 ? first : again).SendAsync(request)).ReadCounterAsync();
        }

        Assert.Equal(1, (await app.CreateClient().GetCounterAsync("a")).Value);
    }

    [Fact]
    public async Task NoLogLineCarriesAToken()
    {
        var logs = new CapturingLoggerProvider();
        await using var tally = App(new() { ["Logging:LogLevel:Default"] = "Trace" });
        await using var app = tally.WithWebHostBuilder(builder => builder.ConfigureLogging(logging => logging.AddProvider(logs).SetMinimumLevel(LogLevel.Trace)));
        using var other = new JwtIssuer(keyId: _issuer.KeyId);
        string[] tokens = [_issuer.Token("alice", "tally:increment"), other.Token("alice", "tally:increment"), _issuer.Token("alice", "tally:increment", expires: DateTime.UtcNow.AddHours(-1))];

        foreach (var token in tokens)
        {
            await app.CreateClientWithKey(token).IncrementAsync("a");
        }

        Assert.NotEmpty(logs.Entries);
        foreach (var token in tokens)
        {
            var parts = token.Split('.');
            Assert.DoesNotContain(parts[1], logs.All, StringComparison.Ordinal);
            Assert.DoesNotContain(parts[2], logs.All, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task AnAuthorityIsReadThroughOidcDiscovery(bool discoveryNamesAnotherIssuer)
    {
        const string another = "https://another.tally.test";
        await using var provider = await LocalSite.StartAsync(site =>
        {
            site.MapGet("/.well-known/openid-configuration", (HttpContext context) => Results.Text(JsonSerializer.Serialize(new
            {
                issuer = discoveryNamesAnotherIssuer ? another : _issuer.Issuer,
                jwks_uri = $"{context.Request.Scheme}://{context.Request.Host}/jwks",
            }), "application/json"));
            site.MapGet("/jwks", () => Results.Text(_issuer.Jwks(), "application/json"));
        });
        await using var app = new TallyApplication("memory", settings: new Dictionary<string, string?>
        {
            ["Auth:Jwt:Authority"] = provider.Origin,
            ["Auth:Jwt:Issuer"] = _issuer.Issuer,
            ["Auth:Jwt:Audience"] = _issuer.Audience,
        });
        using var other = new JwtIssuer(keyId: _issuer.KeyId);

        await (await WithToken(app, _issuer.Token("alice", "tally:increment")).IncrementAsync("a")).ReadCounterAsync();
        await (await WithToken(app, other.Token("alice", "tally:increment")).IncrementAsync("a")).ReadProblemAsync(HttpStatusCode.Unauthorized, "unauthorized");
        // Only the configured issuer, even when the discovery document names another.
        await (await WithToken(app, _issuer.Token("alice", "tally:increment", issuer: another)).IncrementAsync("a")).ReadProblemAsync(HttpStatusCode.Unauthorized, "unauthorized");
    }

    [Fact]
    public async Task AnUnreachableProviderIsUnavailableNotARefusal()
    {
        await using var provider = await LocalSite.StartAsync(site =>
            site.MapGet("/.well-known/openid-configuration", () => Results.StatusCode(StatusCodes.Status500InternalServerError)));
        await using var app = new TallyApplication("memory", settings: new Dictionary<string, string?>
        {
            ["Auth:Jwt:Authority"] = provider.Origin,
            ["Auth:Jwt:Issuer"] = _issuer.Issuer,
            ["Auth:Jwt:Audience"] = _issuer.Audience,
        });

        var response = await WithToken(app, _issuer.Token("alice", "tally:increment")).IncrementAsync("a");

        await response.ReadProblemAsync(HttpStatusCode.ServiceUnavailable, "identity_provider_unavailable");
        Assert.NotNull(response.Headers.RetryAfter);
        Assert.Equal(HttpStatusCode.OK, (await app.CreateClient().IncrementAsync("a")).StatusCode); // API keys do not depend on it
    }

    public static TheoryData<string[], string> BadSettings() => new()
    {
        { ["Auth:Jwt:SigningKeysFile=missing.json", "Auth:Jwt:Issuer=i", "Auth:Jwt:Audience=a"], "Auth:Jwt:SigningKeysFile cannot be read" },
        { ["Auth:Jwt:SigningKeysFile=notjson", "Auth:Jwt:Issuer=i", "Auth:Jwt:Audience=a"], "is not a JSON Web Key Set" },
        { ["Auth:Jwt:SigningKeysFile=nokeys", "Auth:Jwt:Issuer=i", "Auth:Jwt:Audience=a"], "has no usable public signing key" },
        { ["Auth:Jwt:SigningKeysFile=jwks", "Auth:Jwt:Audience=a"], "Auth:Jwt:Issuer is required" },
        { ["Auth:Jwt:SigningKeysFile=jwks", "Auth:Jwt:Issuer=i"], "Auth:Jwt:Audience is required" },
        { ["Auth:Jwt:SigningKeysFile=jwks", "Auth:Jwt:Authority=https://id.example", "Auth:Jwt:Issuer=i", "Auth:Jwt:Audience=a"], "are both set" },
        { ["Auth:Jwt:Authority=http://id.example", "Auth:Jwt:Issuer=i", "Auth:Jwt:Audience=a"], "Auth:Jwt:Authority must use https" },
        { ["Auth:Jwt:Authority=id.example", "Auth:Jwt:Issuer=i", "Auth:Jwt:Audience=a"], "Auth:Jwt:Authority must be an absolute https address" },
        { ["Auth:Jwt:Issuer=i", "Auth:Jwt:Audience=a"], "neither Auth:Jwt:Authority nor Auth:Jwt:SigningKeysFile" },
    };

    /// <summary>The validator alone; the real server's exit code 2 and one line: Process/StartupFailureTests.</summary>
    [Theory]
    [MemberData(nameof(BadSettings))]
    public void ABadJwtSettingIsNamed(string[] settings, string named)
    {
        File.WriteAllText(Path.Combine(_dir.Path, "notjson"), "keys: none");
        File.WriteAllText(Path.Combine(_dir.Path, "nokeys"), """{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}""");
        File.WriteAllText(Path.Combine(_dir.Path, "jwks"), _issuer.Jwks());
        var values = settings.Select(setting => setting.Split('=', 2)).ToDictionary(
            pair => pair[0], pair => (string?)(pair[0].EndsWith("File", StringComparison.Ordinal) ? Path.Combine(_dir.Path, pair[1]) : pair[1]));
        var options = new ConfigurationBuilder().AddInMemoryCollection(values).Build().GetSection(JwtOptions.Section).Get<JwtOptions>()!;

        var result = new JwtOptionsValidator().Validate(null, options);

        Assert.True(result.Failed);
        Assert.Contains(named, result.FailureMessage, StringComparison.Ordinal);
    }

    [Fact]
    public void GoodJwtSettingsPass()
    {
        File.WriteAllText(Path.Combine(_dir.Path, "jwks"), _issuer.Jwks());
        Assert.True(new JwtOptionsValidator().Validate(null, new JwtOptions()).Succeeded);
        Assert.True(new JwtOptionsValidator().Validate(null, new JwtOptions { SigningKeysFile = Path.Combine(_dir.Path, "jwks"), Issuer = "i", Audience = "a" }).Succeeded);
        Assert.True(new JwtOptionsValidator().Validate(null, new JwtOptions { Authority = "https://id.example", Issuer = "i", Audience = "a" }).Succeeded);
        Assert.True(new JwtOptionsValidator().Validate(null, new JwtOptions { Authority = "http://127.0.0.1:8080", Issuer = "i", Audience = "a" }).Succeeded);
    }

    public void Dispose()
    {
        _issuer.Dispose();
        _dir.Dispose();
    }
}
