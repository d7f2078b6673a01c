using System.Buffers;
using Microsoft.Extensions.Options;
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
        if (request.ContentType is { Length: > 0 } contentType && !IsJson(contentType))
        {
            return (default, Problems.Create(Problems.UnsupportedMediaType,
                $"Send JSON with Content-Type: application/json (got '{contentType}')."));
        }

        var limit = request.HttpContext.RequestServices.GetRequiredService<IOptions<TallyOptions>>().Value.MaxBodyBytes;
        if (request.ContentLength > limit)
        {
            return (default, TooLarge(limit));
        }

        var reader = request.BodyReader;
        while (true)
        {
            var read = await reader.ReadAsync(request.HttpContext.RequestAborted);
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

    private static bool HasBody(HttpRequest request) =>
        request.ContentLength > 0
        || (request.ContentLength is null && request.HttpContext.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpRequestBodyDetectionFeature>()?.CanHaveBody == true);

    private static bool IsJson(string contentType)
    {
        var mediaType = contentType.AsSpan();
        var semicolon = mediaType.IndexOf(';');
        if (semicolon >= 0)
        {
            mediaType = mediaType[..semicolon];
        }
        mediaType = mediaType.Trim();
        return mediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase)
            || mediaType.EndsWith("+json", StringComparison.OrdinalIgnoreCase);
    }

    private static IResult TooLarge(int limit) =>
        Problems.Create(Problems.PayloadTooLarge, $"The request body is larger than {limit} bytes.");
}
