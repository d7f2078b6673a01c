using System.Net;
using System.Net.Http.Headers;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Tally.Server.Tests.Infrastructure;
using Tally.Server.Tests.Process;

namespace Tally.Server.Tests.Auth;

public class AuthenticationTests
{
    public static TheoryData<string, string> ProtectedRequests() => new()
    {
        { "GET", "/counters/a" },
        { "GET", "/counters" },
        { "PUT", "/counters/a" },
        { "POST", "/counters/a/increment" },
        { "POST", "/counters/a/decrement" },
        { "POST", "/counters/a/reset" },
        { "DELETE", "/counters/a" },
        { "POST", "/batch" },
        { "GET", "/admin/keys" },
        { "POST", "/admin/keys" },
        { "DELETE", "/admin/keys/key_0000000000000000" },
        { "GET", "/admin/export" },
    };

    [Theory]
    [MemberData(nameof(ProtectedRequests))]
    public async Task NoKeyIsUnauthorizedWithABearerChallenge(string method, string path)
    {
        await using var app = new TallyApplication("memory");
        var response = await app.CreateClientWithKey(null).SendAsync(new HttpRequestMessage(new HttpMethod(method), path));

        await response.ReadProblemAsync(HttpStatusCode.Unauthorized, "unauthorized");
        var challenge = Assert.Single(response.Headers.WwwAuthenticate);
        Assert.Equal("Bearer", challenge.Scheme);
        Assert.DoesNotContain("error=", challenge.Parameter ?? string.Empty, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("tly_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]
    [InlineData("tally-test-admin-key-012345678")]   // one character short of the configured key
    [InlineData("tally-test-admin-key-01234567890")] // one character more
    [InlineData("x")]
    public async Task UnknownKeyIsUnauthorizedAsAnInvalidToken(string key)
    {
        await using var app = new TallyApplication("memory");
        var response = await app.CreateClientWithKey(key).GetAsync("/counters/a");

        var problem = await response.ReadProblemAsync(HttpStatusCode.Unauthorized, "unauthorized");
        Assert.DoesNotContain(key, problem.ToJsonString(), StringComparison.Ordinal);
        var challenge = Assert.Single(response.Headers.WwwAuthenticate);
        Assert.Equal("Bearer", challenge.Scheme);
        Assert.Contains("error=\"invalid_token\"", challenge.Parameter, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheKeyMayComeInXApiKey()
    {
        await using var app = new TallyApplication("memory");
        var created = await app.CreateClient().CreateKeyAsync("header", ["read", "write"]);

        var client = app.CreateClientWithKey(created.Key, asApiKeyHeader: true);
        await (await client.IncrementAsync("a")).ReadCounterAsync();
        Assert.Equal(1, (await client.GetCounterAsync("a")).Value);
    }

    [Fact]
    public async Task TwoDifferentKeysInOneRequestAreRefused()
    {
        await using var app = new TallyApplication("memory");
        var admin = app.CreateClient();
        var created = await admin.CreateKeyAsync("other", ["read"]);

        var request = new HttpRequestMessage(HttpMethod.Get, "/admin/keys");
        request.Headers.Add("X-Api-Key", created.Key);
        await (await admin.SendAsync(request)).ReadProblemAsync(HttpStatusCode.Unauthorized, "unauthorized");

        // The same key twice is one key.
        request = new HttpRequestMessage(HttpMethod.Get, "/admin/keys");
        request.Headers.Add("X-Api-Key", TallyApplication.AdminKey);
        Assert.Equal(HttpStatusCode.OK, (await admin.SendAsync(request)).StatusCode);
    }

    [Fact]
    public async Task AuthorizationOtherThanBearerIsRefused()
    {
        await using var app = new TallyApplication("memory");
        var client = app.CreateClientWithKey(null);
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String("admin:admin"u8.ToArray()));

        await (await client.GetAsync("/counters/a")).ReadProblemAsync(HttpStatusCode.Unauthorized, "unauthorized");
    }

    [Theory]
    [InlineData("/healthz")]
    [InlineData("/readyz")]
    [InlineData("/metrics")]
    [InlineData("/openapi/v1.json")]
    [InlineData("/docs")]
    public async Task OpenEndpointsNeedNoKey(string path)
    {
        await using var app = new TallyApplication();
        var response = await app.CreateClientWithKey(null).GetAsync(path);
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{path} answered {(int)response.StatusCode} without a key.");
    }

    [Theory]
    [InlineData("/")]
    [InlineData("/index.html")]
    [InlineData("/app.js")]
    public async Task TheDashboardsStaticFilesAreNotBehindAKey(string path)
    {
        await using var app = new TallyApplication("memory");
        var response = await app.CreateClientWithKey(null).GetAsync(path);
        Assert.NotEqual(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.NotEqual(HttpStatusCode.Forbidden, response.StatusCode);
    }

    /// <summary>A new endpoint must say who may call it: only the documented open ones go without a policy.</summary>
    [Fact]
    public async Task EveryEndpointButTheOpenOnesRequiresAuthorization()
    {
        string[] open = ["/healthz", "/readyz", "/metrics", "/openapi/{documentName}.json"];
        await using var app = new TallyApplication("memory");
        var endpoints = app.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>().ToList();
        Assert.NotEmpty(endpoints);

        foreach (var endpoint in endpoints)
        {
            var pattern = "/" + (endpoint.RoutePattern.RawText ?? string.Empty).TrimStart('/');
            var requiresKey = endpoint.Metadata.GetOrderedMetadata<IAuthorizeData>().Count > 0
                && endpoint.Metadata.GetMetadata<IAllowAnonymous>() is null;
            Assert.True(requiresKey != open.Contains(pattern),
                $"{endpoint.DisplayName} ({pattern}) {(requiresKey ? "requires a key but is open by contract" : "has no authorization policy")}.");
        }
    }

    [Fact]
    public async Task AuthOffLetsEveryRequestInAsAnAdminAndWarnsLoudly()
    {
        var logs = new CapturingLoggerProvider();
        await using var tally = new TallyApplication("memory", settings: new Dictionary<string, string?> { ["Auth"] = "off" });
        await using var app = tally.WithWebHostBuilder(builder => builder.ConfigureLogging(logging => logging.AddProvider(logs)));
        var client = app.CreateClientWithKey(null);

        await (await client.IncrementAsync("a")).ReadCounterAsync();
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/admin/keys")).StatusCode);
        await client.CreateKeyAsync("prepared while auth is off", ["read"]);
        Assert.Contains(logs.Entries, entry => entry.StartsWith("Warning", StringComparison.Ordinal) && entry.Contains("Auth=off", StringComparison.Ordinal));
    }

    [Fact]
    public async Task TheConfiguredAdminKeyIsNotListedAndCannotBeRevoked()
    {
        await using var app = new TallyApplication("memory");
        var admin = app.CreateClient();

        Assert.Empty(await admin.ListKeysAsync());
        await (await admin.DeleteAsync("/admin/keys/config-admin")).ReadProblemAsync(HttpStatusCode.Conflict, "key_not_revocable");
        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync("/admin/keys")).StatusCode);
    }

    [Fact]
    public async Task IdempotencyKeysAreScopedToTheApiKey()
    {
        await using var app = new TallyApplication();
        var admin = app.CreateClient();
        var first = app.CreateClientWithKey((await admin.CreateKeyAsync("first", ["write", "read"])).Key);
        var second = app.CreateClientWithKey((await admin.CreateKeyAsync("second", ["write", "read"])).Key);

        foreach (var client in new[] { first, second })
        {
            var response = await client.SendAsync(HttpMethod.Post, "/counters/a/increment", header: ("Idempotency-Key", "same-key"));
            await response.ReadCounterAsync();
            Assert.False(response.Headers.Contains("Idempotent-Replayed"));
        }
        var replay = await first.SendAsync(HttpMethod.Post, "/counters/a/increment", header: ("Idempotency-Key", "same-key"));
        Assert.Equal(1, (await replay.ReadCounterAsync()).Value);
        Assert.Equal("true", replay.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(2, (await admin.GetCounterAsync("a")).Value);
    }

    [Theory]
    [Trait("Layer", "Process")]
    [InlineData("short")]
    [InlineData("has a space in it, sixteen+")]
    public async Task ABadAdminKeySettingStopsTheStartWithoutShowingIt(string adminKey)
    {
        using var dataDir = new TempDirectory();
        await using var tally = TallyProcess.Start(dataDir.Path, "--AdminKey", adminKey);

        Assert.Equal(2, await tally.WaitForExitAsync());
        Assert.Contains("AdminKey", tally.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain(adminKey, tally.StandardError + tally.StandardOutput, StringComparison.Ordinal);
    }
}
