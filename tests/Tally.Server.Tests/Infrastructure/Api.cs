using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Tally.Server.Tests.Infrastructure;

/// <summary>A counter as the API returns it.</summary>
public sealed record CounterJson(string Name, long Value, long Initial, long? Min, long? Max, long Version, DateTime CreatedAt, DateTime UpdatedAt);

public sealed record CounterPageJson(IReadOnlyList<CounterJson> Items, string? Next);

/// <summary>Small helpers for talking to Tally over HTTP and checking its answers against API.md.</summary>
internal static class Api
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public static StringContent JsonBody(string json) => new(json, Encoding.UTF8, "application/json");

    public static Task<HttpResponseMessage> IncrementAsync(this HttpClient client, string name, string? body = null) =>
        client.PostAsync($"/counters/{name}/increment", body is null ? null : JsonBody(body));

    public static Task<HttpResponseMessage> DecrementAsync(this HttpClient client, string name, string? body = null) =>
        client.PostAsync($"/counters/{name}/decrement", body is null ? null : JsonBody(body));

    public static Task<HttpResponseMessage> PutAsync(this HttpClient client, string name, string body) =>
        client.PutAsync($"/counters/{name}", JsonBody(body));

    public static Task<HttpResponseMessage> SendAsync(this HttpClient client, HttpMethod method, string path, string? body = null,
        (string Name, string Value)? header = null)
    {
        var request = new HttpRequestMessage(method, path);
        if (body is not null)
        {
            request.Content = JsonBody(body);
        }
        if (header is { } h)
        {
            request.Headers.TryAddWithoutValidation(h.Name, h.Value);
        }
        return client.SendAsync(request);
    }

    /// <summary>Creates (or replaces the fields of) a counter and returns it.</summary>
    public static async Task<CounterJson> SetUpCounterAsync(this HttpClient client, string name, string body)
    {
        var response = await client.PutAsync(name, body);
        Assert.True(response.StatusCode is HttpStatusCode.Created or HttpStatusCode.OK,
            $"PUT /counters/{name} {body} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        return await response.ReadCounterAsync(response.StatusCode);
    }

    public static async Task<CounterJson> GetCounterAsync(this HttpClient client, string name) =>
        await (await client.GetAsync($"/counters/{name}")).ReadCounterAsync();

    /// <summary>Asserts a counter answer: the status, JSON, every member present, and <c>ETag: "&lt;version&gt;"</c>.</summary>
    public static async Task<CounterJson> ReadCounterAsync(this HttpResponseMessage response, HttpStatusCode status = HttpStatusCode.OK)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"Expected {(int)status}, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var node = JsonNode.Parse(text)!.AsObject();
        foreach (var member in new[] { "name", "value", "initial", "min", "max", "version", "createdAt", "updatedAt" })
        {
            Assert.True(node.ContainsKey(member), $"The counter has no '{member}' member: {text}");
        }
        var counter = JsonSerializer.Deserialize<CounterJson>(text, Json)!;
        Assert.Equal(new EntityTagHeaderValue($"\"{counter.Version}\""), response.Headers.ETag);
        return counter;
    }

    /// <summary>Asserts an RFC 9457 problem with status, title, detail and the given <c>code</c>; returns its members.</summary>
    public static async Task<JsonObject> ReadProblemAsync(this HttpResponseMessage response, HttpStatusCode status, string code)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"Expected {(int)status} {code}, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = JsonNode.Parse(text)!.AsObject();
        Assert.Equal((int)status, (int?)problem["status"]);
        Assert.Equal(code, (string?)problem["code"]);
        Assert.False(string.IsNullOrWhiteSpace((string?)problem["title"]), $"The problem has no title: {text}");
        Assert.False(string.IsNullOrWhiteSpace((string?)problem["detail"]), $"The problem has no detail: {text}");
        return problem;
    }

    public static async Task<CounterPageJson> ReadPageAsync(this HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"Expected 200, got {(int)response.StatusCode}: {text}");
        var node = JsonNode.Parse(text)!.AsObject();
        Assert.True(node.ContainsKey("items") && node.ContainsKey("next"), $"A page has items and next: {text}");
        return JsonSerializer.Deserialize<CounterPageJson>(text, Json)!;
    }
}
