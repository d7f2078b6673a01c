using System.Net;
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
}
