using System.Net;
using System.Text.Json.Nodes;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Auth;

/// <summary>One Tally (memory store) with a key per scope, each limited to the prefix "in:" (admin: no prefix).</summary>
public sealed class AuthorizationMatrixFixture : IAsyncLifetime
{
    public const string Prefix = "in:";

    public TallyApplication App { get; } = new("memory");

    public HttpClient Admin { get; private set; } = null!;

    public Dictionary<string, HttpClient> Clients { get; } = [];

    public async Task InitializeAsync()
    {
        Admin = App.CreateClient();
        foreach (var scope in new[] { "read", "increment", "write", "admin" })
        {
            var key = await Admin.CreateKeyAsync($"matrix-{scope}", [scope], scope == "admin" ? "" : Prefix);
            Clients[scope] = App.CreateClientWithKey(key.Key);
        }
    }

    public async Task DisposeAsync() => await App.DisposeAsync();
}

/// <summary>Every scope × every endpoint family × a counter inside or outside the key's prefix.</summary>
public class AuthorizationMatrixTests(AuthorizationMatrixFixture fixture) : IClassFixture<AuthorizationMatrixFixture>
{
    /// <summary>An endpoint family: the scope it needs, how to call it on a counter, and what success looks like.</summary>
    private sealed record Family(string Needs, bool Changes, Func<string, HttpRequestMessage> Request, HttpStatusCode Success);

    private static readonly Dictionary<string, Family> Families = new()
    {
        ["get"] = new("read", false, name => new(HttpMethod.Get, $"/counters/{name}"), HttpStatusCode.OK),
        ["list"] = new("read", false, name => new(HttpMethod.Get, $"/counters?prefix={name}"), HttpStatusCode.OK),
        ["history"] = new("read", false, name => new(HttpMethod.Get, $"/counters/{name}/history"), HttpStatusCode.OK),
        ["put"] = new("write", true, name => Json(HttpMethod.Put, $"/counters/{name}", """{"value": 7}"""), HttpStatusCode.OK),
        ["increment"] = new("increment", true, name => new(HttpMethod.Post, $"/counters/{name}/increment"), HttpStatusCode.OK),
        ["decrement"] = new("write", true, name => new(HttpMethod.Post, $"/counters/{name}/decrement"), HttpStatusCode.OK),
        ["reset"] = new("write", true, name => new(HttpMethod.Post, $"/counters/{name}/reset"), HttpStatusCode.OK),
        ["delete"] = new("write", true, name => new(HttpMethod.Delete, $"/counters/{name}"), HttpStatusCode.NoContent),
        ["batch get"] = new("read", false, name => Batch($$"""{"op": "get", "name": "{{name}}"}"""), HttpStatusCode.OK),
        ["batch increment"] = new("increment", true, name => Batch($$"""{"op": "increment", "name": "{{name}}"}"""), HttpStatusCode.OK),
        ["batch decrement"] = new("write", true, name => Batch($$"""{"op": "decrement", "name": "{{name}}"}"""), HttpStatusCode.OK),
        ["batch set"] = new("write", true, name => Batch($$"""{"op": "set", "name": "{{name}}", "value": 7}"""), HttpStatusCode.OK),
        ["batch reset"] = new("write", true, name => Batch($$"""{"op": "reset", "name": "{{name}}"}"""), HttpStatusCode.OK),
        ["batch delete"] = new("write", true, name => Batch($$"""{"op": "delete", "name": "{{name}}"}"""), HttpStatusCode.OK),
        ["admin list keys"] = new("admin", false, _ => new(HttpMethod.Get, "/admin/keys"), HttpStatusCode.OK),
        ["admin create key"] = new("admin", false, _ => Json(HttpMethod.Post, "/admin/keys", """{"name": "made in the matrix", "scopes": ["read"]}"""), HttpStatusCode.Created),
        ["admin revoke key"] = new("admin", false, _ => new(HttpMethod.Delete, "/admin/keys/key_0000000000000000"), HttpStatusCode.NotFound),
        ["admin export"] = new("admin", false, _ => new(HttpMethod.Get, "/admin/export"), HttpStatusCode.OK),
    };

    public static TheoryData<string, string, bool> Cases()
    {
        var data = new TheoryData<string, string, bool>();
        foreach (var scope in new[] { "read", "increment", "write", "admin" })
        {
            foreach (var family in Families.Keys)
            {
                data.Add(scope, family, true);
                data.Add(scope, family, false);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task ScopeAndPrefixDecide(string scope, string family, bool insidePrefix)
    {
        var spec = Families[family];
        var name = (insidePrefix ? AuthorizationMatrixFixture.Prefix : "out:") + Guid.NewGuid().ToString("N")[..12];
        await fixture.Admin.SetUpCounterAsync(name, """{"value": 5}""");

        var response = await fixture.Clients[scope].SendAsync(spec.Request(name));

        var grants = scope switch
        {
            "admin" => true,
            "write" => spec.Needs is "write" or "increment",
            _ => spec.Needs == scope,
        };
        var allowed = grants && (insidePrefix || scope == "admin" || spec.Needs == "admin");
        if (allowed)
        {
            Assert.True(response.StatusCode == spec.Success,
                $"{scope} key, {family} on '{name}': expected {(int)spec.Success}, got {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        }
        else
        {
            await response.ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");
            if (spec.Changes)
            {
                var counter = await fixture.Admin.GetCounterAsync(name);
                Assert.Equal((5L, 1L), (counter.Value, counter.Version));
            }
        }
    }

    [Fact]
    public async Task ABatchWithOneForbiddenOperationIsRefusedWholeAndNamesIt()
    {
        var name = AuthorizationMatrixFixture.Prefix + Guid.NewGuid().ToString("N")[..12];
        await fixture.Admin.SetUpCounterAsync(name, """{"value": 5}""");

        // increment is allowed to an increment key; decrement is not, so nothing is applied (the batch is not even atomic).
        var wrongScope = await fixture.Clients["increment"].SendAsync(Batch(
            $$"""{"op": "increment", "name": "{{name}}"}""", $$"""{"op": "decrement", "name": "{{name}}"}"""));
        var problem = await wrongScope.ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");
        Assert.Equal(1, (int?)problem["index"]);

        var outside = await fixture.Clients["write"].SendAsync(Batch(
            $$"""{"op": "increment", "name": "{{name}}"}""", """{"op": "increment", "name": "out:x"}"""));
        problem = await outside.ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");
        Assert.Equal(1, (int?)problem["index"]);
        Assert.Contains("out:x", (string?)problem["detail"], StringComparison.Ordinal);

        var counter = await fixture.Admin.GetCounterAsync(name);
        Assert.Equal((5L, 1L), (counter.Value, counter.Version));
        Assert.Equal(HttpStatusCode.NotFound, (await fixture.Admin.GetAsync("/counters/out:x")).StatusCode);
    }

    [Fact]
    public async Task ListingWithoutAPrefixShowsOnlyTheKeysCounters()
    {
        var tag = Guid.NewGuid().ToString("N")[..8];
        await fixture.Admin.SetUpCounterAsync($"in:{tag}", "{}");
        await fixture.Admin.SetUpCounterAsync($"out:{tag}", "{}");

        foreach (var query in new[] { "", "?prefix=", "?limit=1000" })
        {
            var page = await (await fixture.Clients["read"].GetAsync($"/counters{query}")).ReadPageAsync();
            Assert.Contains(page.Items, counter => counter.Name == $"in:{tag}");
            Assert.All(page.Items, counter => Assert.StartsWith(AuthorizationMatrixFixture.Prefix, counter.Name, StringComparison.Ordinal));
        }

        var narrower = await (await fixture.Clients["read"].GetAsync($"/counters?prefix=in:{tag}")).ReadPageAsync();
        Assert.Equal([$"in:{tag}"], narrower.Items.Select(counter => counter.Name));

        // A prefix that reaches beyond the key's ("i" also covers "io:…") is refused, not narrowed silently.
        await (await fixture.Clients["read"].GetAsync("/counters?prefix=i")).ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");

        // The admin key has no prefix: it sees both.
        var all = await (await fixture.Clients["admin"].GetAsync("/counters?limit=1000")).ReadPageAsync();
        Assert.Contains(all.Items, counter => counter.Name == $"out:{tag}");
    }

    [Fact]
    public async Task ForbiddenSaysWhichScopeIsMissing()
    {
        var response = await fixture.Clients["increment"].PostAsync($"/counters/{AuthorizationMatrixFixture.Prefix}a/decrement", null);
        var problem = await response.ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");
        Assert.Contains("write", (string?)problem["detail"], StringComparison.Ordinal);
        Assert.False(response.Headers.Contains("WWW-Authenticate"), "A 403 is not a challenge.");
    }

    private static HttpRequestMessage Json(HttpMethod method, string path, string body) => new(method, path) { Content = Api.JsonBody(body) };

    private static HttpRequestMessage Batch(params string[] ops) =>
        Json(HttpMethod.Post, "/batch", $$"""{"ops": [{{string.Join(", ", ops)}}]}""");
}
