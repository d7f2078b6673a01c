using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Tally.Server.Tests.Auth;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Observability;

/// <summary>The OpenAPI document and its page: open without a key, every operation summarised, problems and examples given.</summary>
public class OpenApiTests
{
    [Fact]
    public async Task EveryOperationHasASummaryAndEveryChangeItsProblems()
    {
        await using var app = new TallyApplication("memory");
        var anonymous = app.CreateClientWithKey(null);

        var response = await anonymous.GetAsync("/openapi/v1.json");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var document = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        var paths = document["paths"]!.AsObject();
        foreach (var path in new[] { "/counters", "/counters/{name}", "/counters/{name}/increment", "/counters/{name}/decrement", "/counters/{name}/reset", "/counters/{name}/history", "/batch", "/admin/keys" })
        {
            Assert.True(paths.ContainsKey(path), $"{path} is not in the document");
        }

        foreach (var (path, item) in paths)
        {
            foreach (var (method, operation) in item!.AsObject())
            {
                Assert.False(string.IsNullOrWhiteSpace((string?)operation!["summary"]), $"{method} {path} has no summary");
                if (method is "put" or "post" or "delete" && path.StartsWith("/counters", StringComparison.Ordinal))
                {
                    var responses = operation["responses"]!.AsObject();
                    Assert.Contains(responses, r => r.Key.StartsWith('4') && r.Value!["content"]?["application/problem+json"] is not null);
                }
            }
        }

        var schemas = document["components"]!["schemas"]!.AsObject();
        foreach (var schema in new[] { "CounterResponse", "ProblemDetails", "AmountRequest", "CounterFieldsRequest", "BatchRequest", "HistoryResponse" })
        {
            Assert.True(schemas[schema]?["examples"] is JsonArray { Count: > 0 }, $"schema {schema} has no example");
        }
    }

    [Fact]
    public async Task TheDocsPageIsOpenAndPointsAtTheDocument()
    {
        await using var app = new TallyApplication("memory");
        var anonymous = app.CreateClientWithKey(null);

        var page = await anonymous.GetAsync("/docs/index.html");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        var config = await anonymous.GetStringAsync("/docs/index.js");
        Assert.Contains("/openapi/v1.json", await anonymous.GetStringAsync("/docs/index.html") + config, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheDocumentHasBothSecuritySchemesAndTheDocsPageKeepsTheAuthorization()
    {
        await using var app = new TallyApplication("memory");
        var anonymous = app.CreateClientWithKey(null);
        var document = JsonNode.Parse(await anonymous.GetStringAsync("/openapi/v1.json"))!;

        var schemes = document["components"]!["securitySchemes"]!;
        Assert.Equal("http", (string?)schemes["bearer"]!["type"]);
        Assert.Equal("bearer", (string?)schemes["bearer"]!["scheme"]);
        Assert.Equal("API key or JWT", (string?)schemes["bearer"]!["bearerFormat"]);
        Assert.Equal("apiKey", (string?)schemes["apiKey"]!["type"]);
        Assert.Equal("header", (string?)schemes["apiKey"]!["in"]);
        Assert.Equal("X-Api-Key", (string?)schemes["apiKey"]!["name"]);

        var open = new HashSet<string> { "/healthz", "/readyz", "/metrics" };
        foreach (var (path, item) in document["paths"]!.AsObject())
        {
            foreach (var (method, operation) in item!.AsObject())
            {
                var security = operation!["security"]!.AsArray().Select(requirement => string.Join(",", requirement!.AsObject().Select(s => s.Key))).ToList();
                if (open.Contains(path))
                {
                    Assert.Equal([""], security); // [{}]: no key needed
                    continue;
                }
                Assert.Equal(["bearer", "apiKey"], security);
                var statuses = operation["responses"]!.AsObject().Select(r => r.Key).ToList();
                foreach (var status in new[] { "401", "403", "429" })
                {
                    Assert.True(statuses.Contains(status), $"{method} {path} does not document {status}");
                }
            }
        }

        var config = await anonymous.GetStringAsync("/docs/index.js");
        // The key given to "Authorize" is not kept in localStorage (Swagger UI's default, persistAuthorization false).
        var settings = config.Replace(" ", "", StringComparison.Ordinal);
        Assert.Contains("\"persistAuthorization\":false", settings, StringComparison.Ordinal);
        Assert.DoesNotContain("\"persistAuthorization\":true", settings, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheServersDoNotFollowTheHostHeader()
    {
        await using var app = new TallyApplication("memory");
        var anonymous = app.CreateClientWithKey(null);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/openapi/v1.json");
        request.Headers.Host = "attacker.example";
        var text = await (await anonymous.SendAsync(request)).Content.ReadAsStringAsync();
        Assert.DoesNotContain("attacker.example", text, StringComparison.Ordinal);
        var servers = JsonNode.Parse(text)!["servers"]!.AsArray();
        Assert.Equal("/", (string?)Assert.Single(servers)!["url"]);
    }

    [Fact]
    public async Task TheRequestSchemasAreThoseTheServerBinds()
    {
        await using var app = new TallyApplication("memory");
        var document = JsonNode.Parse(await app.CreateClientWithKey(null).GetStringAsync("/openapi/v1.json"))!;
        var schemas = document["components"]!["schemas"]!;

        var amount = schemas["AmountRequest"]!;
        Assert.False((bool)amount["additionalProperties"]!);
        Assert.Null(amount["required"]);
        Assert.Equal("integer", (string?)amount["properties"]!["by"]!["type"]);
        Assert.Equal(1, (long)amount["properties"]!["by"]!["minimum"]!);
        Assert.Equal(long.MaxValue, (long)amount["properties"]!["by"]!["maximum"]!);

        var fields = schemas["CounterFieldsRequest"]!;
        Assert.Equal(["value", "initial", "min", "max"], fields["properties"]!.AsObject().Select(p => p.Key));
        Assert.Null(fields["required"]);
        Assert.False((bool)fields["additionalProperties"]!);

        var increment = document["paths"]!["/counters/{name}/increment"]!["post"]!;
        var parameters = increment["parameters"]!.AsArray().ToDictionary(p => (string)p!["name"]!, p => p!);
        Assert.Equal("^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$", (string?)parameters["name"]["schema"]!["pattern"]);
        Assert.Equal("query", (string?)parameters["by"]["in"]);
        Assert.Equal(1, (long)parameters["by"]["schema"]!["minimum"]!);
        Assert.Equal("header", (string?)parameters["If-Match"]["in"]);
        Assert.Equal("header", (string?)parameters["Idempotency-Key"]["in"]);
        var limit = document["paths"]!["/counters"]!["get"]!["parameters"]!.AsArray().Single(p => (string?)p!["name"] == "limit")!;
        Assert.Equal(1000, (long)limit["schema"]!["maximum"]!);

        // No integer member anywhere may also be a string.
        Assert.DoesNotContain("\"string\",\"integer\"", document.ToJsonString(), StringComparison.Ordinal);
        Assert.DoesNotContain("\"integer\",\"string\"", document.ToJsonString(), StringComparison.Ordinal);

        var problem = schemas["ProblemDetails"]!;
        var codes = problem["properties"]!["code"]!["enum"]!.AsArray().Select(c => (string)c!).ToHashSet();
        Assert.Equal(Tally.Server.Http.Problems.Catalog.Keys.ToHashSet(), codes);
        foreach (var path in new[] { "/healthz", "/readyz", "/metrics" })
        {
            Assert.NotNull(document["paths"]![path]!["get"]!["responses"]!["200"]);
        }
    }

    [Fact]
    public async Task EveryExampleMatchesItsOwnSchema()
    {
        await using var app = new TallyApplication("memory");
        var contract = OpenApiContract.Of(await app.CreateClientWithKey(null).GetStringAsync("/openapi/v1.json"));
        Assert.Empty(contract.CheckExamples());
    }

    /// <summary>The problem example is the server's own answer, word for word, to the failure it shows.</summary>
    [Fact]
    public async Task TheProblemExampleIsWhatTheServerAnswers()
    {
        await using var app = new TallyApplication("memory");
        var client = app.CreateClient();
        var document = JsonNode.Parse(await client.GetStringAsync("/openapi/v1.json"))!;
        var example = document["components"]!["schemas"]!["ProblemDetails"]!["examples"]![0]!;
        await client.SetUpCounterAsync("downloads:v2", """{"value": 998, "max": 1000}""");

        var answer = await (await client.IncrementAsync("downloads:v2", """{"by": 5}""")).ReadProblemAsync(HttpStatusCode.Conflict, "out_of_range");

        Assert.True(JsonNode.DeepEquals(answer, example), $"the example {example.ToJsonString()} is not the answer {answer.ToJsonString()}");
    }

    /// <summary>The check of every answer (TallyApplication) fails when the document and the answers disagree.</summary>
    [Fact]
    public async Task TheResponseCheckFailsWhenTheDocumentIsWrong()
    {
        await using var app = new TallyApplication("memory");
        var client = app.CreateClient();
        var text = await client.GetStringAsync("/openapi/v1.json");
        var response = await client.IncrementAsync("checked", """{"by": 2}""");
        var body = await response.Content.ReadAsByteArrayAsync();
        var contentType = response.Content.Headers.ContentType?.ToString();

        Assert.Empty(OpenApiContract.From(JsonNode.Parse(text)!.AsObject()).Check("POST", "/counters/checked/increment", 200, contentType, body));

        var wrongType = JsonNode.Parse(text)!.AsObject();
        wrongType["components"]!["schemas"]!["CounterResponse"]!["properties"]!["value"]!["type"] = "string";
        Assert.Contains(OpenApiContract.From(wrongType).Check("POST", "/counters/checked/increment", 200, contentType, body),
            error => error.Contains("/value", StringComparison.Ordinal));

        var missingMember = JsonNode.Parse(text)!.AsObject();
        missingMember["components"]!["schemas"]!["CounterResponse"]!["properties"]!.AsObject().Remove("version");
        Assert.NotEmpty(OpenApiContract.From(missingMember).Check("POST", "/counters/checked/increment", 200, contentType, body));

        var missingStatus = JsonNode.Parse(text)!.AsObject();
        missingStatus["paths"]!["/counters/{name}/increment"]!["post"]!["responses"]!.AsObject().Remove("200");
        Assert.Contains(OpenApiContract.From(missingStatus).Check("POST", "/counters/checked/increment", 200, contentType, body),
            error => error.Contains("does not list", StringComparison.Ordinal));

        var problem = Encoding.UTF8.GetBytes("""{"type":"urn:tally:problem:nope","title":"t","status":400,"detail":"d","code":"no_such_code"}""");
        Assert.NotEmpty(OpenApiContract.Of(text).Check("POST", "/counters/checked/increment", 400, "application/problem+json", problem));
    }

    /// <summary>
    /// Each request schema's example is accepted by its operation, and the same body with a member the schema does
    /// not declare is refused naming it: the parsers and the document share one member list.
    /// </summary>
    [Theory]
    [InlineData("AmountRequest", "POST", "/counters/example/increment")]
    [InlineData("CounterFieldsRequest", "PUT", "/counters/example")]
    [InlineData("BatchRequest", "POST", "/batch")]
    [InlineData("CreateApiKeyRequest", "POST", "/admin/keys")]
    public async Task EveryRequestExampleIsAcceptedAndAnUndeclaredMemberRefused(string schema, string method, string path)
    {
        await using var app = new TallyApplication("memory");
        var client = app.CreateClient();
        var document = JsonNode.Parse(await client.GetStringAsync("/openapi/v1.json"))!;
        var declared = document["components"]!["schemas"]![schema]!;
        Assert.False((bool)declared["additionalProperties"]!, $"{schema} accepts undeclared members");
        var example = declared["examples"]![0]!.AsObject();

        var accepted = await client.SendAsync(new HttpMethod(method), path, example.ToJsonString());
        Assert.True(accepted.IsSuccessStatusCode, $"{schema}'s example answered {(int)accepted.StatusCode}: {await accepted.Content.ReadAsStringAsync()}");

        var undeclared = example.DeepClone().AsObject();
        undeclared["bye"] = 1;
        var refused = await client.SendAsync(new HttpMethod(method), path, undeclared.ToJsonString());
        var problem = await refused.ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_body");
        Assert.Contains("'bye'", (string?)problem["detail"], StringComparison.Ordinal);
    }
}
