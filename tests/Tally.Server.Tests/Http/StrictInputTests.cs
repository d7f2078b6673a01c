using System.Net;
using System.Net.Http.Headers;
using Tally.Server.Tests.Batch;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Http;

/// <summary>A typo, a duplicate or trailing bytes is a 400 naming the problem, never silently ignored; nothing changes.</summary>
public class StrictInputTests
{
    public static TheoryData<string, string, string?, string, string> Refused() => new()
    {
        // method, path, body, code, a word the detail must name
        { "POST", "/counters/a/increment", """{"bye": 5}""", "invalid_body", "bye" },
        { "POST", "/counters/a/decrement", """{"by": 1, "extra": true}""", "invalid_body", "extra" },
        { "POST", "/counters/a/increment", """{"by": 1, "by": 1000}""", "invalid_body", "by" },
        { "PUT", "/counters/a", """{"value": 1, "value": 1000}""", "invalid_body", "value" },
        { "POST", "/counters/a/increment?bye=5", null, "invalid_query", "bye" },
        { "POST", "/counters/a/increment?by=5", """{"by": 5}""", "invalid_amount", "not both" },
        { "POST", "/counters/a/increment?by=7%00", null, "invalid_amount", "by" },
        { "POST", "/counters/a/increment?by=7%00%00", null, "invalid_amount", "by" },
        { "GET", "/counters?limt=5", null, "invalid_query", "limt" },
        { "GET", "/counters?limit=5%00", null, "invalid_query", "limit" },
        { "GET", "/counters/a?verbose=1", null, "invalid_query", "verbose" },
        { "PUT", "/counters/a?value=3", """{"value": 1}""", "invalid_query", "value" },
        { "DELETE", "/counters/a?force=true", null, "invalid_query", "force" },
        { "POST", "/counters/a/reset?to=0", null, "invalid_query", "to" },
        { "POST", "/batch?atomic=true", """{"ops": [{"op": "increment", "name": "a"}]}""", "invalid_query", "atomic" },
        { "POST", "/batch", """{"atomc": true, "ops": [{"op": "increment", "name": "a"}]}""", "invalid_body", "atomc" },
        { "POST", "/batch", """{"ops": [{"op": "increment", "name": "a", "bye": 2}]}""", "invalid_body", "bye" },
        { "POST", "/batch", """{"ops": [{"op": "get", "name": "a", "by": 2}]}""", "invalid_body", "by" },
        { "POST", "/batch", """{"ops": [{"op": "set", "name": "a", "value": 2, "vlaue": 3}]}""", "invalid_body", "vlaue" },
        { "POST", "/batch", """{"ops": [{"op": "increment", "name": "a", "by": 1, "by": 1000}]}""", "invalid_body", "by" },
        { "POST", "/batch", """{"atomic": false, "atomic": true, "ops": [{"op": "increment", "name": "a"}]}""", "invalid_body", "atomic" },
        { "POST", "/batch", """{"ops": [{"op": "get", "name": "\ud800"}]}""", "invalid_body", "surrogate" },
        { "POST", "/batch", """{"ops": [{"op": "get", "name": "a", "\ud800": 1}]}""", "invalid_body", "surrogate" },
    };

    [Theory]
    [MemberData(nameof(Refused))]
    public async Task EachTypoDuplicateOrTrailingByteIsRefusedByNameAndChangesNothing(string method, string path, string? body, string code, string named)
    {
        await using var app = new TallyApplication("memory");
        var client = app.CreateClient();
        var before = await client.SetUpCounterAsync("a", """{"value": 10}""");

        var problem = await (await client.SendAsync(new HttpMethod(method), path, body)).ReadProblemAsync(HttpStatusCode.BadRequest, code);

        Assert.Contains(named, (string?)problem["detail"], StringComparison.Ordinal);
        Assert.Equal(before, await client.GetCounterAsync("a"));
    }

    [Theory]
    [InlineData("application/json; charset=latin1")]
    [InlineData("application/json; charset=iso-8859-1")]
    [InlineData("application/json; charset=utf-16")]
    public async Task ACharsetOtherThanUtf8IsUnsupportedMediaTypeSayingToSendJson(string contentType)
    {
        await using var app = new TallyApplication("memory");
        var client = app.CreateClient();
        foreach (var (method, path, body) in new[] { ("POST", "/counters/a/increment", """{"by": 5}"""), ("PUT", "/counters/a", """{"value": 5}"""), ("POST", "/batch", """{"ops": [{"op": "get", "name": "a"}]}""") })
        {
            var request = new HttpRequestMessage(new HttpMethod(method), path) { Content = new StringContent(body) };
            request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
            var problem = await (await client.SendAsync(request)).ReadProblemAsync(HttpStatusCode.UnsupportedMediaType, "unsupported_media_type");
            Assert.Contains("application/json", (string?)problem["detail"], StringComparison.Ordinal);
        }
        await (await client.GetAsync("/counters/a")).ReadProblemAsync(HttpStatusCode.NotFound, "counter_not_found");
    }

    [Theory]
    [InlineData("application/json; charset=UTF-8")]
    [InlineData("application/json; charset=\"utf-8\"")]
    public async Task Utf8SpelledAnyWayIsAccepted(string contentType)
    {
        await using var app = new TallyApplication("memory");
        var request = new HttpRequestMessage(HttpMethod.Post, "/counters/a/increment") { Content = new StringContent("""{"by": 5}""") };
        request.Content.Headers.ContentType = null;
        request.Content.Headers.TryAddWithoutValidation("Content-Type", contentType);
        Assert.Equal(5, (await (await app.CreateClient().SendAsync(request)).ReadCounterAsync()).Value);
    }

    [Theory]
    [InlineData("/counters/a/increment?by=5", 5)]
    [InlineData("/counters/a/increment?BY=5", 5)]
    [InlineData("/counters?prefix=a&limit=2&after=a", 0)]
    public async Task DeclaredQueryParametersStillWork(string path, long expected)
    {
        await using var app = new TallyApplication("memory");
        var client = app.CreateClient();
        var response = await client.SendAsync(path.StartsWith("/counters?", StringComparison.Ordinal) ? HttpMethod.Get : HttpMethod.Post, path);
        Assert.True(response.IsSuccessStatusCode, $"{path} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        if (expected > 0)
        {
            Assert.Equal(expected, (await response.ReadCounterAsync()).Value);
        }
    }

    [Theory]
    [InlineData("DELETE", "/counters/a", """{"ifMatch": 999}""", "application/json")]
    [InlineData("POST", "/counters/a/reset", """{"value": 5}""", "application/json")]
    [InlineData("POST", "/counters/a/reset", "{}", "application/json")]
    [InlineData("DELETE", "/counters/a", "not json at all", "text/plain")]
    [InlineData("POST", "/counters/a/reset", "caf\u00e9", "text/plain; charset=latin1")]
    [InlineData("DELETE", "/counters/a", "{\"ifMatch\": 999}", null)]
    public async Task ResetAndDeleteRefuseAnyBodyAndChangeNothing(string method, string path, string body, string? contentType)
    {
        await using var app = new TallyApplication("memory");
        var client = app.CreateClient();
        await client.SetUpCounterAsync("a", """{"initial": 0, "value": 10}""");
        var before = await client.GetCounterAsync("a");
        var request = new HttpRequestMessage(new HttpMethod(method), path) { Content = new ByteArrayContent(System.Text.Encoding.Latin1.GetBytes(body)) };
        if (contentType is not null)
        {
            request.Content.Headers.TryAddWithoutValidation("Content-Type", contentType);
        }

        var problem = await (await client.SendAsync(request)).ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_body");

        Assert.Contains("takes no body", (string?)problem["detail"], StringComparison.Ordinal);
        Assert.Contains("If-Match", (string?)problem["detail"], StringComparison.Ordinal);
        Assert.Equal(before, await client.GetCounterAsync("a"));
    }

    [Fact]
    public async Task ResetAndDeleteWithoutABodyStillWork()
    {
        await using var app = new TallyApplication("memory");
        var client = app.CreateClient();
        await client.SetUpCounterAsync("a", """{"initial": 2, "value": 10}""");

        Assert.Equal(2, (await (await client.PostAsync("/counters/a/reset", null)).ReadCounterAsync()).Value);
        var empty = new HttpRequestMessage(HttpMethod.Delete, "/counters/a") { Content = new ByteArrayContent([]) };
        empty.Content.Headers.TryAddWithoutValidation("Content-Type", "application/json");
        Assert.Equal(HttpStatusCode.NoContent, (await client.SendAsync(empty)).StatusCode);
    }

    [Theory]
    [InlineData("POST", "/counters/a/increment", """{"by": 3}""")]
    [InlineData("PUT", "/counters/a", """{"value": 3}""")]
    [InlineData("POST", "/batch", """{"ops": [{"op": "increment", "name": "a", "by": 3}]}""")]
    [InlineData("POST", "/admin/keys", """{"name": "ci", "scopes": ["read"]}""")]
    public async Task ABodyWithoutContentTypeIsUnsupportedMediaTypeSayingToSendJson(string method, string path, string body)
    {
        await using var app = new TallyApplication("memory");
        var client = app.CreateClient();
        var request = new HttpRequestMessage(new HttpMethod(method), path) { Content = new ByteArrayContent(System.Text.Encoding.UTF8.GetBytes(body)) };
        Assert.Null(request.Content.Headers.ContentType);

        var problem = await (await client.SendAsync(request)).ReadProblemAsync(HttpStatusCode.UnsupportedMediaType, "unsupported_media_type");

        Assert.Contains("application/json", (string?)problem["detail"], StringComparison.Ordinal);
        await (await client.GetAsync("/counters/a")).ReadProblemAsync(HttpStatusCode.NotFound, "counter_not_found");
        Assert.DoesNotContain("\"ci\"", await client.GetStringAsync("/admin/keys"), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("GET", "/admin/keys?limit=5", "limit")]
    [InlineData("POST", "/admin/keys?dryRun=true", "dryRun")]
    [InlineData("DELETE", "/admin/keys/nope?force=1", "force")]
    [InlineData("GET", "/admin/backup?compress=1", "compress")]
    [InlineData("GET", "/admin/export?prefix=a", "prefix")]
    [InlineData("POST", "/admin/import?replace=true", "replace")]
    public async Task AdminRoutesRefuseUnknownQueryParametersByName(string method, string path, string named)
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        var request = new HttpRequestMessage(new HttpMethod(method), path);
        if (method == "POST")
        {
            request.Content = path.StartsWith("/admin/import", StringComparison.Ordinal)
                ? new StringContent("""{"name":"imported","value":1,"initial":0,"min":null,"max":null,"version":1,"createdAt":"2026-01-01T00:00:00Z","updatedAt":"2026-01-01T00:00:00Z"}""")
                : Api.JsonBody("""{"name": "ci", "scopes": ["read"]}""");
        }

        var problem = await (await client.SendAsync(request)).ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_query");

        Assert.Contains(named, (string?)problem["detail"], StringComparison.Ordinal);
        await client.AssertMissingAsync("imported");
        Assert.DoesNotContain("\"ci\"", await client.GetStringAsync("/admin/keys"), StringComparison.Ordinal);
    }
}
