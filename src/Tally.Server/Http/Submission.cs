using System.Security.Claims;
using Tally.Server.Auth;
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
        var caller = Caller.From(context.User);
        // API.md: read, write and admin may see a counter's state in a problem; increment alone may not.
        var mayRead = caller is null || caller.Allows(ApiScopes.Read) || caller.Allows(ApiScopes.Write);
        if (!mayRead && HasPrecondition(command, batch))
        {
            // A 412 would tell a caller that may not read whether the counter exists, and at which version.
            return Problems.Create(Problems.Forbidden,
                "Conditional requests (If-Match, If-None-Match, ifMatch) need the read or write scope: this key may increment counters but not read them.");
        }
        var requester = caller?.Requester ?? Requester.Unlimited;

        // No delegate here: this is every increment's path, and a closure would be one more allocation each.
        PendingRequest Create(IdempotencyKey? key) =>
            command is not null ? PendingRequest.For(command, key, requester) : PendingRequest.For(batch!, key, requester);

        var header = context.Request.Headers[IdempotencyKey.Header];
        if (header.Count == 0)
        {
            return new OutcomeResult(await pipeline.SubmitAsync(Create(null)), mayRead, location);
        }
        if (header.Count > 1 || !IdempotencyKey.TryParse(header[0], out var sentKey))
        {
            return Problems.Create(InvalidIdempotencyKey,
                "Idempotency-Key must be one value of 1 to 255 printable ASCII characters, bare or as a quoted string (\"…\", escaping only \\\" and \\\\).");
        }

        var request = context.Request;
        var key = new IdempotencyKey(
            context.User.FindFirstValue(CallerClaim) ?? string.Empty,
            sentKey,
            IdempotencyKey.FingerprintOf(request.Method, request.Path.Value ?? string.Empty, request.QueryString.Value ?? string.Empty, body.Span));

        var inFlight = context.RequestServices.GetRequiredService<InFlightKeys>();
        if (!inFlight.TryEnter(key))
        {
            return Problems.Create(ErrorCodes.IdempotencyKeyInFlight,
                "A request with this Idempotency-Key is still being processed; retry after it has been answered.");
        }
        try
        {
            return new OutcomeResult(await pipeline.SubmitAsync(Create(key)), mayRead, location);
        }
        finally
        {
            inFlight.Exit(key);
        }
    }

    private static bool HasPrecondition(CounterCommand? command, BatchCommand? batch)
    {
        if (command is not null)
        {
            return command.Precondition.Kind != PreconditionKind.None;
        }
        foreach (var operation in batch!.Operations)
        {
            if (operation.Precondition.Kind != PreconditionKind.None)
            {
                return true;
            }
        }
        return false;
    }
}
