using System.Net;
using System.Text.Json.Nodes;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Auth;

/// <summary><c>GET /auth/me</c>: what the sending key may do, never its secret.</summary>
public class CallerTests
{
    [Fact]
    public async Task AKeyLearnsItsNameScopesPrefixAndLimitsButNotItsSecret()
    {
        await using var app = new TallyApplication("memory");
        var created = await app.CreateClient().CreateKeyAsync("wallboard", ["read", "increment"], "shop:", maxAmount: 5);

        var response = await app.CreateClientWithKey(created.Key, asApiKeyHeader: true).GetAsync("/auth/me");
        var text = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = JsonNode.Parse(text)!.AsObject();
        Assert.Equal(["id", "name", "scopes", "prefix", "maxCounters", "maxAmount"], body.Select(member => member.Key));
        Assert.Equal(created.Id, (string?)body["id"]);
        Assert.Equal("wallboard", (string?)body["name"]);
        Assert.Equal(["read", "increment"], body["scopes"]!.AsArray().Select(scope => (string)scope!));
        Assert.Equal("shop:", (string?)body["prefix"]);
        Assert.Equal(100_000, (long?)body["maxCounters"]); // the default in force for a non-admin key
        Assert.Equal(5, (long?)body["maxAmount"]);
        Assert.DoesNotContain(created.Key, text, StringComparison.Ordinal);
        Assert.DoesNotContain(created.Key[4..], text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheConfiguredAdminKeyIsAnAdminWithoutLimits()
    {
        await using var app = new TallyApplication("memory");
        var body = JsonNode.Parse(await app.CreateClient().GetStringAsync("/auth/me"))!;
        Assert.Equal("config-admin", (string?)body["id"]);
        Assert.Equal(["admin"], body["scopes"]!.AsArray().Select(scope => (string)scope!));
        Assert.Equal("", (string?)body["prefix"]);
        Assert.Null(body["maxCounters"]);
        Assert.Null(body["maxAmount"]);
    }

    [Fact]
    public async Task WithoutAValidKeyOrWithAnUnknownParameterItIsRefused()
    {
        await using var app = new TallyApplication("memory");
        var anonymous = await app.CreateClientWithKey(null).GetAsync("/auth/me");
        await anonymous.ReadProblemAsync(HttpStatusCode.Unauthorized, "unauthorized");
        var wrong = await app.CreateClientWithKey("tly_not-a-key").GetAsync("/auth/me");
        await wrong.ReadProblemAsync(HttpStatusCode.Unauthorized, "unauthorized");
        var typo = await app.CreateClient().GetAsync("/auth/me?verbose=1");
        await typo.ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_query");
    }
}
