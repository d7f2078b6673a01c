using System.Collections.Concurrent;

namespace Tally.Client.Tests.Infrastructure;

/// <summary>
/// A handler inside the client's retries that records every attempt (method, path, Idempotency-Key) and can
/// fail chosen attempts: after the request reached the server (the answer is lost), or before (a 503 answered here).
/// </summary>
public sealed class RecordingHandler : DelegatingHandler
{
    public ConcurrentQueue<(string Method, string Path, string? IdempotencyKey, string? Body)> Attempts { get; } = new();

    /// <summary>Attempts (1-based) whose answer is thrown away after the server handled them, as a connection lost after the commit.</summary>
    public HashSet<int> LoseAnswerOf { get; init; } = [];

    /// <summary>Attempts (1-based) answered 503 store_unavailable here, without reaching the server.</summary>
    public HashSet<int> Answer503To { get; init; } = [];

    /// <summary>Attempts (1-based) answered 409 idempotency_key_in_flight here, as while a first attempt is still being applied.</summary>
    public HashSet<int> AnswerInFlightTo { get; init; } = [];

    private int _count;

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var attempt = Interlocked.Increment(ref _count);
        var key = request.Headers.TryGetValues("Idempotency-Key", out var values) ? values.Single() : null;
        // Only buffered bodies are read here: reading a streamed one (an import) would consume it.
        var body = request.Content is ByteArrayContent content ? await content.ReadAsStringAsync(cancellationToken) : null;
        Attempts.Enqueue((request.Method.Method, request.RequestUri!.PathAndQuery, key, body));
        if (Answer503To.Contains(attempt))
        {
            var unavailable = new HttpResponseMessage(System.Net.HttpStatusCode.ServiceUnavailable)
            {
                RequestMessage = request,
                Content = new StringContent(
                    """{"type":"urn:tally:problem:store_unavailable","title":"Store unavailable","status":503,"detail":"forced by the test","code":"store_unavailable"}""",
                    System.Text.Encoding.UTF8, "application/problem+json"),
            };
            unavailable.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(TimeSpan.FromSeconds(1));
            return unavailable;
        }
        if (AnswerInFlightTo.Contains(attempt))
        {
            return new HttpResponseMessage(System.Net.HttpStatusCode.Conflict)
            {
                RequestMessage = request,
                Content = new StringContent(
                    """{"type":"urn:tally:problem:idempotency_key_in_flight","title":"Idempotency key in flight","status":409,"detail":"forced by the test","code":"idempotency_key_in_flight"}""",
                    System.Text.Encoding.UTF8, "application/problem+json"),
            };
        }
        var response = await base.SendAsync(request, cancellationToken);
        if (LoseAnswerOf.Contains(attempt))
        {
            response.Dispose();
            throw new HttpRequestException("The connection was lost after the request was sent (forced by the test).");
        }
        return response;
    }
}
