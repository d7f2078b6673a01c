using System.Net;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Idempotency;

/// <summary>A response read whole, so that a replay can be compared with it byte for byte.</summary>
internal sealed record RecordedResponse(HttpStatusCode Status, byte[] Body, string? ETag, string? ContentType, string? Location, string? Replayed)
{
    public bool IsReplay => Replayed == "true";

    public string Text => System.Text.Encoding.UTF8.GetString(Body);
}

internal static class IdempotencyTesting
{
    public const string Header = "Idempotency-Key";

    /// <summary>Sends a request with <c>Idempotency-Key: <paramref name="key"/></c> and reads the whole answer.</summary>
    public static async Task<RecordedResponse> SendKeyedAsync(this HttpClient client, HttpMethod method, string path, string key, string? body = null)
    {
        using var response = await client.SendAsync(method, path, body, (Header, key));
        return await RecordAsync(response);
    }

    public static async Task<RecordedResponse> RecordAsync(HttpResponseMessage response) => new(
        response.StatusCode,
        await response.Content.ReadAsByteArrayAsync(),
        response.Headers.ETag?.ToString(),
        response.Content.Headers.ContentType?.ToString(),
        response.Headers.Location?.OriginalString,
        response.Headers.TryGetValues("Idempotent-Replayed", out var values) ? string.Join(",", values) : null);

    /// <summary>The replay is the first response (status, body bytes, ETag, media type, Location), marked as a replay.</summary>
    public static void AssertReplayOf(RecordedResponse first, RecordedResponse replay)
    {
        Assert.False(first.IsReplay, $"The first response is not a replay: {first}");
        Assert.True(replay.IsReplay, $"Expected Idempotent-Replayed: true on {(int)replay.Status}: {replay.Text}");
        Assert.Equal(first.Status, replay.Status);
        Assert.Equal(first.Text, replay.Text);
        Assert.Equal(first.Body, replay.Body);
        Assert.Equal(first.ETag, replay.ETag);
        Assert.Equal(first.ContentType, replay.ContentType);
        Assert.Equal(first.Location, replay.Location);
    }

    public static void AssertStatus(RecordedResponse response, HttpStatusCode status) =>
        Assert.True(response.Status == status, $"Expected {(int)status}, got {(int)response.Status}: {response.Text}");

    /// <summary>Asserts a problem answer with this status and code, not a replay.</summary>
    public static void AssertProblem(RecordedResponse response, HttpStatusCode status, string code)
    {
        AssertStatus(response, status);
        Assert.StartsWith("application/problem+json", response.ContentType, StringComparison.Ordinal);
        Assert.Equal(code, (string?)System.Text.Json.Nodes.JsonNode.Parse(response.Body)!["code"]);
        Assert.Null(response.Replayed);
    }
}

/// <summary>A clock the test moves by hand; replaces the application's <see cref="TimeProvider"/>.</summary>
internal sealed class ManualClock(DateTimeOffset start) : TimeProvider
{
    private long _ticks = start.UtcTicks;

    public override DateTimeOffset GetUtcNow() => new(Interlocked.Read(ref _ticks), TimeSpan.Zero);

    public void Advance(TimeSpan by) => Interlocked.Add(ref _ticks, by.Ticks);
}
