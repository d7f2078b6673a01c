using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using Tally.Server.Tests.Auth;
using Tally.Server.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Tally.Server.Tests.Http;

/// <summary>
/// Every problem, wherever it is raised (edge, framework, auth, rate limit, store, batch), has exactly
/// type, title, status, detail and code, plus its documented extensions; no trace id, no parser internals.
/// </summary>
public class ProblemCatalogTests(ITestOutputHelper output)
{
    private static readonly string[] Members = ["type", "title", "status", "detail", "code"];

    /// <summary>The members a problem of this code may carry beyond the five.</summary>
    private static string[] ExtensionsOf(string code) => code switch
    {
        "out_of_range" => ["value", "min", "max"],
        "version_mismatch" => ["version"],
        "batch_failed" => ["index", "error"],
        _ => ["index"],
    };

    [Fact]
    public async Task EveryErrorHasTheSameFiveMembersAndATitleOfItsOwn()
    {
        await using var app = new TallyApplication("sqlite", settings: new Dictionary<string, string?> { ["MaxBodyBytes"] = "65536" });
        var admin = app.CreateClient();
        await admin.SetUpCounterAsync("full", """{"value": 10, "max": 10}""");
        var reader = app.CreateClientWithKey((await admin.CreateKeyAsync("reader", ["read"])).Key);
        var anonymous = app.CreateClientWithKey(null);
        var textHtml = app.CreateClient();
        textHtml.DefaultRequestHeaders.Accept.ParseAdd("text/html");

        var cases = new List<(string What, Func<Task<HttpResponseMessage>> Send, HttpStatusCode Status, string Code)>
        {
            ("bad JSON", () => admin.IncrementAsync("a", """{"by": """), HttpStatusCode.BadRequest, "invalid_json"),
            ("bad JSON in a batch", () => admin.SendAsync(HttpMethod.Post, "/batch", """{"ops": [}"""), HttpStatusCode.BadRequest, "invalid_json"),
            ("not an object", () => admin.IncrementAsync("a", "[1]"), HttpStatusCode.BadRequest, "invalid_body"),
            ("bad name", () => admin.GetAsync("/counters/-a"), HttpStatusCode.BadRequest, "invalid_name"),
            ("bad amount", () => admin.PostAsync("/counters/a/increment?by=0", null), HttpStatusCode.BadRequest, "invalid_amount"),
            ("bad bounds", () => admin.PutAsync("a", """{"min": "x"}"""), HttpStatusCode.BadRequest, "invalid_bounds"),
            ("bad value", () => admin.PutAsync("a", """{"value": 1.5}"""), HttpStatusCode.BadRequest, "invalid_value"),
            ("bad query", () => admin.GetAsync("/counters?limit=0"), HttpStatusCode.BadRequest, "invalid_query"),
            ("bad If-Match", () => admin.SendAsync(HttpMethod.Post, "/counters/a/reset", header: ("If-Match", "garbage")), HttpStatusCode.BadRequest, "invalid_precondition"),
            ("bad idempotency key", () => admin.SendAsync(HttpMethod.Post, "/counters/a/increment", header: ("Idempotency-Key", new string('k', 300))), HttpStatusCode.BadRequest, "invalid_idempotency_key"),
            ("no key", () => anonymous.GetAsync("/counters/a"), HttpStatusCode.Unauthorized, "unauthorized"),
            ("wrong key", () => app.CreateClientWithKey("nope").GetAsync("/counters/a"), HttpStatusCode.Unauthorized, "unauthorized"),
            ("no scope", () => reader.IncrementAsync("a"), HttpStatusCode.Forbidden, "forbidden"),
            ("no route", () => admin.GetAsync("/nothing-here"), HttpStatusCode.NotFound, "not_found"),
            ("no route, asking for HTML", () => textHtml.GetAsync("/nothing-here"), HttpStatusCode.NotFound, "not_found"),
            ("no counter", () => admin.GetAsync("/counters/absent"), HttpStatusCode.NotFound, "counter_not_found"),
            ("no counter, asking for HTML", () => textHtml.GetAsync("/counters/absent"), HttpStatusCode.NotFound, "counter_not_found"),
            ("wrong method", () => admin.SendAsync(HttpMethod.Patch, "/counters/a"), HttpStatusCode.MethodNotAllowed, "method_not_allowed"),
            ("out of range", () => admin.IncrementAsync("full"), HttpStatusCode.Conflict, "out_of_range"),
            ("version mismatch", () => admin.SendAsync(HttpMethod.Post, "/counters/full/reset", header: ("If-Match", "\"99\"")), HttpStatusCode.PreconditionFailed, "version_mismatch"),
            ("create-only on an existing counter", () => admin.SendAsync(HttpMethod.Put, "/counters/full", """{"value": 1}""", ("If-None-Match", "*")), HttpStatusCode.PreconditionFailed, "counter_exists"),
            ("too large", () => admin.IncrementAsync("a", $$"""{"by": 1, "x": "{{new string('x', 70000)}}"}"""), HttpStatusCode.RequestEntityTooLarge, "payload_too_large"),
            ("not JSON", () => admin.SendAsync(new HttpRequestMessage(HttpMethod.Post, "/counters/a/increment") { Content = new StringContent("by=5", null, "text/plain") }),
                HttpStatusCode.UnsupportedMediaType, "unsupported_media_type"),
            ("bad batch operation", () => admin.SendAsync(HttpMethod.Post, "/batch", """{"ops": [{"op": "get", "name": "a"}, {"op": "explode", "name": "a"}]}"""), HttpStatusCode.BadRequest, "invalid_body"),
            ("too many operations", () => admin.SendAsync(HttpMethod.Post, "/batch", "{\"ops\": [" + string.Join(",", Enumerable.Repeat("""{"op":"get","name":"a"}""", 1001)) + "]}"),
                HttpStatusCode.BadRequest, "too_many_operations"),
            ("atomic batch failure", () => admin.SendAsync(HttpMethod.Post, "/batch", """{"atomic": true, "ops": [{"op": "increment", "name": "b"}, {"op": "increment", "name": "full"}]}"""),
                HttpStatusCode.Conflict, "batch_failed"),
        };

        foreach (var (what, send, status, code) in cases)
        {
            using var response = await send();
            var text = await response.Content.ReadAsStringAsync();
            output.WriteLine($"{what}: {(int)response.StatusCode} {text}");
            var problem = await response.ReadProblemAsync(status, code);
            AssertShape(what, problem, code);
        }

        // 409 and 422 of idempotency, and the per-operation errors of a batch that is not atomic.
        await admin.SendAsync(HttpMethod.Post, "/counters/a/increment", """{"by": 1}""", ("Idempotency-Key", "k1"));
        using (var reused = await admin.SendAsync(HttpMethod.Post, "/counters/a/increment", """{"by": 2}""", ("Idempotency-Key", "k1")))
        {
            AssertShape("reused key", await reused.ReadProblemAsync(HttpStatusCode.UnprocessableEntity, "idempotency_key_reused"), "idempotency_key_reused");
        }
        using var mixed = await admin.SendAsync(HttpMethod.Post, "/batch", """{"ops": [{"op": "increment", "name": "full"}, {"op": "get", "name": "absent"}, {"op": "increment", "name": "c"}]}""");
        var results = JsonNode.Parse(await mixed.Content.ReadAsStringAsync())!["results"]!.AsArray();
        AssertShape("batch operation 0", results[0]!["error"]!.AsObject(), "out_of_range");
        AssertShape("batch operation 1", results[1]!["error"]!.AsObject(), "counter_not_found");
    }

    [Fact]
    public async Task ARateLimitedRequestIsTheSameShape()
    {
        await using var app = new TallyApplication("memory", settings: new Dictionary<string, string?> { ["RateLimit:PermitsPerSecond"] = "1", ["RateLimit:Burst"] = "1" });
        var client = app.CreateClient();
        await client.GetAsync("/counters/a");
        var problem = await (await client.GetAsync("/counters/a")).ReadProblemAsync(HttpStatusCode.TooManyRequests, "rate_limited");
        AssertShape("rate limited", problem, "rate_limited");
    }

    [Theory]
    [InlineData("""{"by": """)]
    [InlineData("""{"by": 1} x""")]
    [InlineData("""{'by': 1}""")]
    public async Task InvalidJsonIsDescribedInPlainWords(string body)
    {
        await using var app = new TallyApplication("memory");
        var client = app.CreateClient();
        foreach (var path in new[] { "/counters/a/increment", "/batch" })
        {
            var problem = await (await client.SendAsync(HttpMethod.Post, path, body)).ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_json");
            var detail = (string)problem["detail"]!;
            Assert.DoesNotContain("LineNumber", detail, StringComparison.Ordinal);
            Assert.DoesNotContain("BytePositionInLine", detail, StringComparison.Ordinal);
            Assert.DoesNotContain("Tally.", detail, StringComparison.Ordinal);
            Assert.DoesNotContain("System.", detail, StringComparison.Ordinal);
        }
    }

    private static void AssertShape(string what, JsonObject problem, string code)
    {
        var text = problem.ToJsonString();
        foreach (var member in Members)
        {
            Assert.True(problem.ContainsKey(member), $"{what}: no '{member}' in {text}");
        }
        var allowed = ExtensionsOf(code);
        foreach (var (name, _) in problem)
        {
            Assert.True(Members.Contains(name) || allowed.Contains(name), $"{what}: unexpected member '{name}' in {text}");
        }
        Assert.Equal($"urn:tally:problem:{code}", (string?)problem["type"]);
        Assert.NotEqual("Bad request", (string?)problem["title"]);
        Assert.DoesNotContain("traceId", text, StringComparison.Ordinal);
        if (problem["error"] is JsonObject nested)
        {
            AssertShape(what + " (nested error)", nested, (string)nested["code"]!);
        }
    }
}
