using System.Security.Claims;
using Tally.Server.Batch;
using Tally.Server.Counters;
using Tally.Server.Idempotency;
using Tally.Server.Pipeline;

namespace Tally.Server.Http;

/// <summary>
/// Sends a change through the commit pipeline and answers with its outcome, honouring
/// <c>Idempotency-Key</c>: the key is checked and recorded by the store in the same commit as the change.
/// </summary>
internal static class Submission
{
    public const string InvalidIdempotencyKey = "invalid_idempotency_key";

    /// <summary>The claim that names the API key a request was sent with; idempotency keys are scoped to it.</summary>
    public const string CallerClaim = "tally:key_id";

    public static Task<IResult> SendAsync(HttpContext context, CommitPipeline pipeline, CounterCommand command, ReadOnlyMemory<byte> body, string? location = null) =>
        SendAsync(context, pipeline, command, null, body, location);

    public static Task<IResult> SendAsync(HttpContext context, CommitPipeline pipeline, BatchCommand batch, ReadOnlyMemory<byte> body) =>
        SendAsync(context, pipeline, null, batch, body, null);

    private static async Task<IResult> SendAsync(
        HttpContext context, CommitPipeline pipeline, CounterCommand? command, BatchCommand? batch, ReadOnlyMemory<byte> body, string? location)
    {
        // No delegate here: this is every increment's path, and a closure would be one more allocation each.
        PendingRequest Create(IdempotencyKey? key) => command is not null ? PendingRequest.For(command, key) : PendingRequest.For(batch!, key);

        var header = context.Request.Headers[IdempotencyKey.Header];
        if (header.Count == 0)
        {
            return new OutcomeResult(await pipeline.SubmitAsync(Create(null)), location);
        }
        if (header.Count > 1 || !IdempotencyKey.IsValid(header[0]))
        {
            return Problems.Create(InvalidIdempotencyKey, "Idempotency-Key must be one value of 1 to 255 printable ASCII characters.");
        }

        var request = context.Request;
        var key = new IdempotencyKey(
            context.User.FindFirstValue(CallerClaim) ?? string.Empty,
            header[0]!,
            IdempotencyKey.FingerprintOf(request.Method, request.Path.Value ?? string.Empty, request.QueryString.Value ?? string.Empty, body.Span));

        var inFlight = context.RequestServices.GetRequiredService<InFlightKeys>();
        if (!inFlight.TryEnter(key))
        {
            return Problems.Create(ErrorCodes.IdempotencyKeyInFlight,
                "A request with this Idempotency-Key is still being processed; retry after it has been answered.");
        }
        try
        {
            return new OutcomeResult(await pipeline.SubmitAsync(Create(key)), location);
        }
        finally
        {
            inFlight.Exit(key);
        }
    }
}
