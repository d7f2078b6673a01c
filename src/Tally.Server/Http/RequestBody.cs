using System.Buffers;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;
using Tally.Server.Configuration;

namespace Tally.Server.Http;

/// <summary>Reads a small JSON request body whole, refusing wrong media types and oversized bodies.</summary>
internal static class RequestBody
{
    /// <summary>The body's bytes (empty when there is none), or a problem to answer with.</summary>
    public static async ValueTask<(ReadOnlyMemory<byte> Body, IResult? Problem)> ReadJsonAsync(HttpRequest request)
    {
        if (!HasBody(request))
        {
            return (ReadOnlyMemory<byte>.Empty, null);
        }
        if (MediaTypeProblem(request.ContentType) is { } unsupported)
        {
            return (default, unsupported);
        }

        var limit = request.HttpContext.RequestServices.GetRequiredService<IOptions<TallyOptions>>().Value.MaxBodyBytes;
        if (request.ContentLength > limit)
        {
            return (default, TooLarge(limit));
        }

        var aborted = request.HttpContext.RequestAborted;
        try
        {
            var reader = request.BodyReader;
            while (true)
            {
                var read = await reader.ReadAsync(aborted);
                if (read.Buffer.Length > limit)
                {
                    reader.AdvanceTo(read.Buffer.Start, read.Buffer.End);
                    return (default, TooLarge(limit));
                }
                if (read.IsCompleted)
                {
                    var body = read.Buffer.ToArray();
                    reader.AdvanceTo(read.Buffer.End);
                    return (body, null);
                }
                reader.AdvanceTo(read.Buffer.Start, read.Buffer.End);
            }
        }
        catch (BadHttpRequestException bad) when (!aborted.IsCancellationRequested)
        {
            // A body cut short, too slow or badly framed is the client's fault: a 4xx, not an exception for the error handler.
            return (default, ProblemHandling.ProblemFor(bad, inBody: true));
        }
        catch (IOException) when (!aborted.IsCancellationRequested)
        {
            // Kestrel reports some malformed chunked framing (a chunk size past 64 bits) as a plain IOException.
            return (default, Problems.Create(Problems.InvalidBody, "The request body could not be read: its chunked framing is malformed."));
        }
    }

    /// <summary>
    /// For endpoints that take no body (reset, DELETE): null when there is none, else <c>400 invalid_body</c>
    /// saying <paramref name="why"/>. A body is never ignored: it may hold a condition the caller believes holds.
    /// </summary>
    public static async ValueTask<IResult?> RefuseAsync(HttpRequest request, string why)
    {
        if (!HasBody(request))
        {
            return null;
        }
        if (request.ContentLength > 0)
        {
            return Problems.Create(Problems.InvalidBody, why);
        }
        // Chunked (no Content-Length): empty unless a first byte arrives.
        var aborted = request.HttpContext.RequestAborted;
        try
        {
            var read = await request.BodyReader.ReadAsync(aborted);
            var empty = read.Buffer.IsEmpty;
            request.BodyReader.AdvanceTo(read.Buffer.Start, read.Buffer.End);
            return empty ? null : Problems.Create(Problems.InvalidBody, why);
        }
        catch (BadHttpRequestException bad) when (!aborted.IsCancellationRequested)
        {
            return ProblemHandling.ProblemFor(bad, inBody: true);
        }
        catch (IOException) when (!aborted.IsCancellationRequested)
        {
            return Problems.Create(Problems.InvalidBody, "The request body could not be read: its chunked framing is malformed.");
        }
    }

    private static bool HasBody(HttpRequest request) =>
        request.ContentLength > 0
        || (request.ContentLength is null && request.HttpContext.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpRequestBodyDetectionFeature>()?.CanHaveBody == true);

    /// <summary>
    /// Null for JSON in UTF-8 (application/json or any +json type, charset absent or utf-8); else the 415.
    /// A body without a media type is refused too: guessing JSON would accept what the client never said it sent.
    /// </summary>
    private static IResult? MediaTypeProblem(string? contentType) => MediaTypeProblem(contentType, "Send the body as JSON with Content-Type: application/json",
        static type => type.Equals("application/json", StringComparison.OrdinalIgnoreCase) || type.EndsWith("+json", StringComparison.OrdinalIgnoreCase));

    /// <summary>
    /// Null when <paramref name="contentType"/> is one <paramref name="accepted"/> takes, in UTF-8 (charset absent or
    /// utf-8); else a 415 whose detail starts with <paramref name="expected"/>. No Content-Type at all is a 415 too.
    /// </summary>
    public static IResult? MediaTypeProblem(string? contentType, string expected, Func<string, bool> accepted)
    {
        if (string.IsNullOrWhiteSpace(contentType))
        {
            return Problems.Create(Problems.UnsupportedMediaType, $"The body has no Content-Type. {expected}.");
        }
        if (!MediaTypeHeaderValue.TryParse(contentType, out var mediaType) || mediaType.MediaType.Value is not { } type || !accepted(type))
        {
            return Problems.Create(Problems.UnsupportedMediaType, $"{expected} (got '{Truncate(contentType)}').");
        }
        var charset = HeaderUtilities.RemoveQuotes(mediaType.Charset);
        if (charset.Length > 0 && !charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase))
        {
            return Problems.Create(Problems.UnsupportedMediaType, $"{expected}, in UTF-8 (charset '{Truncate(charset.Value!)}' is not supported).");
        }
        return null;
    }

    private static string Truncate(string text) => text.Length <= 100 ? text : text[..100] + "…";

    private static IResult TooLarge(int limit) =>
        Problems.Create(Problems.PayloadTooLarge, $"The request body is larger than {limit} bytes.");
}
