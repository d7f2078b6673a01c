using System.Net;
using System.Text.Json.Nodes;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Batch;

/// <summary>Sending <c>POST /batch</c> and reading its results.</summary>
internal static class BatchTesting
{
    /// <summary>A batch body from operation objects written as JSON text.</summary>
    public static string Body(bool atomic, params string[] ops) =>
        $$"""{"atomic": {{(atomic ? "true" : "false")}}, "ops": [{{string.Join(", ", ops)}}]}""";

    public static Task<HttpResponseMessage> PostBatchAsync(this HttpClient client, string body) =>
        client.PostAsync("/batch", Api.JsonBody(body));

    public static Task<HttpResponseMessage> PostBatchAsync(this HttpClient client, bool atomic, params string[] ops) =>
        client.PostBatchAsync(Body(atomic, ops));

    /// <summary>Asserts a 200 batch answer in JSON with no ETag and returns its <c>results</c>.</summary>
    public static async Task<JsonArray> ReadResultsAsync(this HttpResponseMessage response, int expectedCount)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"Expected 200, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        Assert.Null(response.Headers.ETag); // a batch answer carries many counters, so no single version
        var results = JsonNode.Parse(text)!["results"]!.AsArray();
        Assert.Equal(expectedCount, results.Count);
        return results;
    }

    /// <summary>Asserts a result that carries a counter; returns the counter.</summary>
    public static JsonObject Counter(JsonNode? result, int status, string name, long value, long version)
    {
        Assert.NotNull(result);
        Assert.True((int?)result["status"] == status, $"Expected status {status}: {result.ToJsonString()}");
        Assert.Null(result["error"]);
        var counter = result["counter"]!.AsObject();
        foreach (var member in new[] { "name", "value", "initial", "min", "max", "version", "createdAt", "updatedAt" })
        {
            Assert.True(counter.ContainsKey(member), $"The counter has no '{member}': {result.ToJsonString()}");
        }
        Assert.Equal((name, value, version), ((string?)counter["name"], (long)counter["value"]!, (long)counter["version"]!));
        return counter;
    }

    /// <summary>Asserts a result that carries a problem with this status and code; returns the problem.</summary>
    public static JsonObject Error(JsonNode? result, int status, string code)
    {
        Assert.NotNull(result);
        Assert.True((int?)result["status"] == status, $"Expected status {status} {code}: {result.ToJsonString()}");
        Assert.Null(result["counter"]);
        var problem = result["error"]!.AsObject();
        Assert.Equal(status, (int?)problem["status"]);
        Assert.Equal(code, (string?)problem["code"]);
        Assert.False(string.IsNullOrWhiteSpace((string?)problem["title"]), result.ToJsonString());
        Assert.False(string.IsNullOrWhiteSpace((string?)problem["detail"]), result.ToJsonString());
        return problem;
    }

    /// <summary>Asserts that the counter does not exist.</summary>
    public static async Task AssertMissingAsync(this HttpClient client, string name) =>
        await (await client.GetAsync($"/counters/{name}")).ReadProblemAsync(HttpStatusCode.NotFound, "counter_not_found");
}
