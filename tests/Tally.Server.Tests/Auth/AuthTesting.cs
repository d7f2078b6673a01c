using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.Logging;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Auth;

/// <summary>A key as <c>POST /admin/keys</c> answers it.</summary>
public sealed record CreatedKeyJson(string Id, string Key, string Name, string[] Scopes, string Prefix, long? MaxCounters, long? MaxAmount, DateTime CreatedAt);

internal static class AuthTesting
{
    /// <summary>A client that sends <paramref name="key"/> (none when null) instead of the test admin key.</summary>
    public static HttpClient CreateClientWithKey<T>(this WebApplicationFactory<T> app, string? key, bool asApiKeyHeader = false)
        where T : class
    {
        var client = app.CreateClient();
        client.DefaultRequestHeaders.Authorization = null;
        if (key is not null)
        {
            if (asApiKeyHeader)
            {
                client.DefaultRequestHeaders.Add("X-Api-Key", key);
            }
            else
            {
                client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
            }
        }
        return client;
    }

    public static async Task<CreatedKeyJson> CreateKeyAsync(this HttpClient admin, string name, string[] scopes, string prefix = "",
        long? maxCounters = null, long? maxAmount = null)
    {
        var body = JsonSerializer.Serialize(new { name, scopes, prefix, maxCounters, maxAmount });
        var response = await admin.PostAsync("/admin/keys", Api.JsonBody(body));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, $"POST /admin/keys {body} answered {(int)response.StatusCode}: {text}");
        return JsonSerializer.Deserialize<CreatedKeyJson>(text, Api.Json)!;
    }

    public static async Task<JsonArray> ListKeysAsync(this HttpClient admin)
    {
        var response = await admin.GetAsync("/admin/keys");
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"GET /admin/keys answered {(int)response.StatusCode}: {text}");
        return JsonNode.Parse(text)!["items"]!.AsArray();
    }
}

/// <summary>Every log message, with its structured values and exception, at every level.</summary>
internal sealed class CapturingLoggerProvider : ILoggerProvider
{
    private readonly ConcurrentQueue<string> _entries = new();

    public IReadOnlyCollection<string> Entries => _entries;

    public string All => string.Join("\n", _entries);

    public ILogger CreateLogger(string categoryName) => new CapturingLogger(categoryName, _entries);

    public void Dispose()
    {
    }

    private sealed class CapturingLogger(string category, ConcurrentQueue<string> entries) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var values = state is IEnumerable<KeyValuePair<string, object?>> pairs ? string.Join(" ", pairs.Select(pair => $"{pair.Key}={pair.Value}")) : string.Empty;
            entries.Enqueue($"{logLevel} {category}: {formatter(state, exception)} [{values}] {exception}");
        }
    }
}
