using System.Net;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.DependencyInjection;
using Tally.Server.Auth;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Auth;

/// <summary>A key's own <c>maxCounters</c> and <c>maxAmount</c>, the defaults for the others, and where they are enforced here.</summary>
public class KeyLimitTests
{
    [Theory]
    [InlineData("sqlite")]
    [InlineData("memory")]
    public async Task AKeysLimitsAreShownWhenCreatedAndListed(string store)
    {
        await using var app = new TallyApplication(store);
        var admin = app.CreateClient();

        var limited = await admin.CreateKeyAsync("limited", ["write"], maxCounters: 5, maxAmount: 10);
        var unlimited = await admin.CreateKeyAsync("defaults", ["write"]);

        Assert.Equal((5L, 10L), (limited.MaxCounters, limited.MaxAmount));
        Assert.Equal((null, null), (unlimited.MaxCounters, unlimited.MaxAmount));
        var items = await admin.ListKeysAsync();
        Assert.Equal([(5L, 10L), (null, null)], items.Select(item => ((long?)item!["maxCounters"], (long?)item["maxAmount"])));
        Assert.All(items, item => Assert.True(item!.AsObject().ContainsKey("maxAmount"), "null limits are shown as null, not left out"));
    }

    [Fact]
    public async Task AKeysLimitsSurviveARestart()
    {
        await using var app = new TallyApplication();
        var created = await app.CreateClient().CreateKeyAsync("limited", ["write"], maxCounters: 7, maxAmount: 3);

        await using var restarted = await app.RestartAsync();

        var listed = Assert.Single(await restarted.CreateClient().ListKeysAsync());
        Assert.Equal((7L, 3L), ((long?)listed!["maxCounters"], (long?)listed["maxAmount"]));
        var client = restarted.CreateClientWithKey(created.Key);
        await (await client.PostAsync("/batch", Api.JsonBody("""{"ops": [{"op": "increment", "name": "a", "by": 4}]}""")))
            .ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");
    }

    [Theory]
    [InlineData("""{"name": "x", "scopes": ["read"], "maxCounters": null, "maxAmount": null}""", null, null)]
    [InlineData("""{"name": "x", "scopes": ["read"], "maxCounters": 1, "maxAmount": 1}""", 1L, 1L)]
    [InlineData("""{"name": "x", "scopes": ["read"], "maxAmount": 9223372036854775807}""", null, long.MaxValue)]
    public async Task LimitsMayBeNullOrAnyIntegerOfAtLeastOne(string body, long? maxCounters, long? maxAmount)
    {
        await using var app = new TallyApplication("memory");
        var response = await app.CreateClient().PostAsync("/admin/keys", Api.JsonBody(body));

        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, text);
        var created = JsonNode.Parse(text)!;
        Assert.Equal((maxCounters, maxAmount), ((long?)created["maxCounters"], (long?)created["maxAmount"]));
    }

    [Theory]
    [InlineData("maxCounters", "0")]
    [InlineData("maxCounters", "-1")]
    [InlineData("maxCounters", "1.5")]
    [InlineData("maxCounters", "1.0")]
    [InlineData("maxCounters", "1e3")]
    [InlineData("maxCounters", "\"5\"")]
    [InlineData("maxAmount", "0")]
    [InlineData("maxAmount", "true")]
    [InlineData("maxAmount", "[]")]
    [InlineData("maxAmount", "9223372036854775808")]
    public async Task ALimitThatIsNotAnIntegerOfAtLeastOneIsRefused(string member, string value)
    {
        await using var app = new TallyApplication("memory");
        var admin = app.CreateClient();

        var response = await admin.PostAsync("/admin/keys", Api.JsonBody($$"""{"name": "x", "scopes": ["read"], "{{member}}": {{value}}}"""));

        var problem = await response.ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_body");
        Assert.Contains(member, (string?)problem["detail"], StringComparison.Ordinal);
        Assert.Empty(await admin.ListKeysAsync());
    }

    [Fact]
    public async Task ABatchWithAnAmountAboveTheKeysMaxAmountIsForbiddenWithItsIndexAndNothingIsApplied()
    {
        await using var app = new TallyApplication();
        var admin = app.CreateClient();
        var created = await admin.CreateKeyAsync("small steps", ["read", "write"], maxAmount: 10);
        var client = app.CreateClientWithKey(created.Key);

        var response = await client.PostAsync("/batch", Api.JsonBody("""
            {"ops": [{"op": "increment", "name": "a", "by": 10}, {"op": "get", "name": "a"}, {"op": "decrement", "name": "b", "by": 11}]}
            """));

        var problem = await response.ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");
        Assert.Equal(2, (int?)problem["index"]);
        Assert.Contains("10", (string?)problem["detail"], StringComparison.Ordinal);
        await (await admin.GetAsync("/counters/a")).ReadProblemAsync(HttpStatusCode.NotFound, "counter_not_found");
        await (await admin.GetAsync("/counters/b")).ReadProblemAsync(HttpStatusCode.NotFound, "counter_not_found");

        // Up to the limit is allowed.
        var allowed = await client.PostAsync("/batch", Api.JsonBody("""{"ops": [{"op": "increment", "name": "a", "by": 10}, {"op": "decrement", "name": "a", "by": 10}]}"""));
        Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
    }

    [Fact]
    public async Task TheDefaultMaxAmountHoldsForKeysWithoutTheirOwnButNotForAdminKeys()
    {
        await using var app = new TallyApplication(settings: new Dictionary<string, string?> { ["Quotas:DefaultMaxAmount"] = "5" });
        var admin = app.CreateClient();
        var defaults = app.CreateClientWithKey((await admin.CreateKeyAsync("defaults", ["write"])).Key);
        var own = app.CreateClientWithKey((await admin.CreateKeyAsync("own", ["write"], maxAmount: 100)).Key);
        var storedAdmin = app.CreateClientWithKey((await admin.CreateKeyAsync("another admin", ["admin"])).Key);

        static Task<HttpResponseMessage> IncrementBy(HttpClient client, long by) =>
            client.PostAsync("/batch", Api.JsonBody($$"""{"ops": [{"op": "increment", "name": "a", "by": {{by}}}]}"""));

        Assert.Equal(HttpStatusCode.OK, (await IncrementBy(defaults, 5)).StatusCode);
        await (await IncrementBy(defaults, 6)).ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");
        Assert.Equal(HttpStatusCode.OK, (await IncrementBy(own, 100)).StatusCode);
        await (await IncrementBy(own, 101)).ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");
        Assert.Equal(HttpStatusCode.OK, (await IncrementBy(storedAdmin, 1000)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await IncrementBy(admin, 1000)).StatusCode); // the AdminKey setting
        Assert.Equal(5 + 100 + 1000 + 1000, (await admin.GetCounterAsync("a")).Value);
    }

    [Fact]
    public async Task TheAuthenticatedCallerCarriesTheKeysEffectiveLimits()
    {
        await using var app = new TallyApplication("memory", settings: new Dictionary<string, string?>
        {
            ["Quotas:DefaultMaxCounters"] = "50",
            ["Quotas:DefaultMaxAmount"] = "20",
        });
        var admin = app.CreateClient();
        var defaults = await admin.CreateKeyAsync("defaults", ["write"]);
        var own = await admin.CreateKeyAsync("own", ["write"], maxCounters: 3);
        var storedAdmin = await admin.CreateKeyAsync("admin", ["admin"]);
        var limitedAdmin = await admin.CreateKeyAsync("careful admin", ["admin"], maxAmount: 2);

        Assert.Equal((50L, 20L), await LimitsOfAsync(app, defaults.Key));
        Assert.Equal((3L, 20L), await LimitsOfAsync(app, own.Key));
        Assert.Equal((null, null), await LimitsOfAsync(app, storedAdmin.Key));
        Assert.Equal((null, 2L), await LimitsOfAsync(app, limitedAdmin.Key));
        Assert.Equal((null, null), await LimitsOfAsync(app, TallyApplication.AdminKey));
    }

    [Fact]
    public async Task WithAuthOffTheCallerHasNoLimits()
    {
        await using var app = new TallyApplication("memory", settings: new Dictionary<string, string?>
        {
            ["Auth"] = "off",
            ["Quotas:DefaultMaxAmount"] = "1",
        });
        Assert.Equal((null, null), await LimitsOfAsync(app, key: null));
    }

    [Fact]
    public void CheckAmountRefusesOnlyAnAmountAboveTheKeysMaxAmount()
    {
        var limited = ContextWith(new KeyLimits(MaxCounters: null, MaxAmount: 10));
        Assert.Null(CounterAccess.CheckAmount(limited, 1));
        Assert.Null(CounterAccess.CheckAmount(limited, 10));

        var refused = Assert.IsType<ProblemHttpResult>(CounterAccess.CheckAmount(limited, 11));
        Assert.Equal(StatusCodes.Status403Forbidden, refused.StatusCode);
        Assert.Equal("forbidden", refused.ProblemDetails.Extensions["code"]);
        Assert.Contains("at most 10", refused.ProblemDetails.Detail, StringComparison.Ordinal);

        Assert.Null(CounterAccess.CheckAmount(ContextWith(KeyLimits.None), long.MaxValue));
        Assert.Null(CounterAccess.CheckAmount(new DefaultHttpContext(), long.MaxValue)); // no key: authorization answers that, not this
    }

    [Fact]
    public void AMalformedLimitClaimLimitsRatherThanLifts()
    {
        // Claims read as a principal from elsewhere would be (the scheme's own principal carries its caller already read).
        var user = new System.Security.Claims.ClaimsPrincipal(Caller.PrincipalOf("key_1", "k", ApiScopes.Write, string.Empty, KeyLimits.None, "test").Identities);
        ((System.Security.Claims.ClaimsIdentity)user.Identity!).AddClaim(new System.Security.Claims.Claim(TallyClaims.MaxAmount, "lots"));

        var caller = Caller.From(user)!;

        Assert.Equal(0, caller.MaxAmount);
        Assert.True(caller.RefusesAmount(1));
        Assert.Null(caller.MaxCounters);
    }

    private static DefaultHttpContext ContextWith(KeyLimits limits) =>
        new() { User = Caller.PrincipalOf("key_1", "k", ApiScopes.Write, string.Empty, limits, "test") };

    /// <summary>Authenticates a request with <paramref name="key"/> the way the server does, and reads the caller's limits.</summary>
    private static async Task<(long? MaxCounters, long? MaxAmount)> LimitsOfAsync(TallyApplication app, string? key)
    {
        using var scope = app.Services.CreateScope();
        var context = new DefaultHttpContext { RequestServices = scope.ServiceProvider };
        if (key is not null)
        {
            context.Request.Headers.Authorization = $"Bearer {key}";
        }
        var result = await context.AuthenticateAsync(ApiKeyAuthenticationHandler.SchemeName);
        Assert.True(result.Succeeded, result.Failure?.Message);
        var caller = Caller.From(result.Principal!)!;
        return (caller.MaxCounters, caller.MaxAmount);
    }
}
