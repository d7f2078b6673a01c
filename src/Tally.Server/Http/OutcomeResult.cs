using Tally.Server.Pipeline;

namespace Tally.Server.Http;

/// <summary>
/// Sends a request's outcome, rendered straight into the body (a retry of a keyed request is marked
/// <c>Idempotent-Replayed</c>). <paramref name="mayRead"/>: whether the caller may read counters, which
/// decides whether problems show the counter's state.
/// </summary>
internal sealed class OutcomeResult(RequestOutcome outcome, bool mayRead, string? location = null) : IResult
{
    public const string ReplayedHeader = "Idempotent-Replayed";

    public async Task ExecuteAsync(HttpContext context)
    {
        var response = context.Response;
        if (outcome.Replayed)
        {
            response.Headers[ReplayedHeader] = "true";
        }
        if (outcome.Response is { } stored)
        {
            // A record kept before the compact form: its first response, as it was rendered then.
            SetHeaders(response, stored.Status, stored.ETag);
            if (stored.Body.Length > 0)
            {
                await response.Body.WriteAsync(stored.Body, context.RequestAborted);
            }
            return;
        }

        if (outcome.Batch is { } batch)
        {
            // A batch's answer can be large (1,000 counters): written straight into the response
            // instead of through a growing buffer. Its status is known before the body.
            SetHeaders(response, batch.Aborted ? StatusCodes.Status409Conflict : StatusCodes.Status200OK, etag: null);
            ResponseRenderer.Write(outcome, response.BodyWriter, mayRead);
            await response.BodyWriter.FlushAsync(context.RequestAborted);
            return;
        }

        // Headers go out with the first flush, after the status is known: render into a buffer first.
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(320);
        var (status, etag) = ResponseRenderer.Write(outcome, buffer, mayRead);
        SetHeaders(response, status, etag);
        if (outcome.Result.Error?.RetryAfterSeconds is { } retryAfter)
        {
            response.Headers.RetryAfter = retryAfter.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        if (buffer.WrittenCount > 0)
        {
            response.ContentLength = buffer.WrittenCount;
            await response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted);
        }
    }

    private void SetHeaders(HttpResponse response, int status, string? etag)
    {
        response.StatusCode = status;
        if (status == StatusCodes.Status204NoContent)
        {
            return;
        }
        response.ContentType = status >= 400 ? "application/problem+json" : "application/json; charset=utf-8";
        if (etag is not null)
        {
            response.Headers.ETag = etag;
        }
        if (status == StatusCodes.Status201Created && location is not null)
        {
            response.Headers.Location = location;
        }
        if (status == StatusCodes.Status503ServiceUnavailable)
        {
            response.Headers.RetryAfter = "1";
        }
    }
}
