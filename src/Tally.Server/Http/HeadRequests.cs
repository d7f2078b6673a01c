using Microsoft.AspNetCore.Http.Features;

namespace Tally.Server.Http;

/// <summary>
/// <c>HEAD</c> wherever <c>GET</c> works: the request runs as a GET (same endpoint, authorization,
/// rate limit and headers) and its body is counted, not sent, so <c>Content-Length</c> is what the GET's would be.
/// </summary>
internal static class HeadRequests
{
    private static readonly object HeadMarker = new();

    /// <summary>Whether the request came as HEAD (it runs as GET): an endpoint whose body never ends (a stream) sends none.</summary>
    public static bool IsHead(HttpContext context) => context.Items.ContainsKey(HeadMarker);

    /// <summary>
    /// Registers the rewrite and then routing, so the endpoint is chosen for GET. Call after the error
    /// handlers and before authentication.
    /// </summary>
    public static WebApplication UseHeadAsGet(this WebApplication app)
    {
        // Not an async lambda: every other method passes through without a state machine.
        app.Use((context, next) => HttpMethods.IsHead(context.Request.Method) ? AsGetAsync(context, next) : next(context));
        app.UseRouting();
        return app;
    }

    private static async Task AsGetAsync(HttpContext context, RequestDelegate next)
    {
        var original = context.Features.GetRequiredFeature<IHttpResponseBodyFeature>();
        var counter = new CountingStream();
        context.Features.Set<IHttpResponseBodyFeature>(new StreamResponseBodyFeature(counter, original));
        context.Request.Method = HttpMethods.Get;
        context.Items[HeadMarker] = true;
        try
        {
            await next(context);
            if (!context.Response.HasStarted && context.Response.ContentLength is null && counter.Length > 0)
            {
                context.Response.ContentLength = counter.Length;
            }
        }
        finally
        {
            // Back to HEAD before the response starts, so the server sends no body and no chunked framing.
            context.Request.Method = HttpMethods.Head;
            context.Features.Set(original);
        }
    }

    /// <summary>A write-only stream that keeps only the number of bytes written.</summary>
    private sealed class CountingStream : Stream
    {
        private long _length;

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => _length;

        public override long Position { get => _length; set => throw new NotSupportedException(); }

        public override void Flush()
        {
        }

        public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => _length += count;

        public override void Write(ReadOnlySpan<byte> buffer) => _length += buffer.Length;

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        {
            _length += count;
            return Task.CompletedTask;
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            _length += buffer.Length;
            return ValueTask.CompletedTask;
        }
    }
}
