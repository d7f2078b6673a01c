using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.OpenApi;

namespace Tally.Server.Tests.Infrastructure;

/// <summary>
/// Checks every answer the in-process service gives against its own OpenAPI document (<see cref="OpenApiContract"/>).
/// It sits outermost in the test host's pipeline, so it sees what any client of the test gets; the mismatches are
/// kept and <see cref="TallyApplication"/> fails the test with them when it is disposed.
/// </summary>
/// <remarks>
/// A middleware rather than a <c>DelegatingHandler</c>: <c>WebApplicationFactory</c> builds its clients without
/// a hook for handlers, and tests also call <c>CreateDefaultClient</c> and the test server directly.
/// Streams (text/event-stream) are checked for status and media type only: their bodies never end.
/// </remarks>
internal sealed class OpenApiResponseCheck : IStartupFilter
{
    private const int MaxCapturedBytes = 4 << 20;
    private readonly SemaphoreSlim _loading = new(1, 1);
    private OpenApiContract? _contract;

    /// <summary>
    /// The document as <c>/openapi/v1.json</c> serves it, from the service's own provider: not over HTTP, where
    /// fetching it would take a token from a test's rate limit.
    /// </summary>
    private static async Task<string> LoadDocumentAsync(IServiceProvider services)
    {
        var document = await services.GetRequiredKeyedService<IOpenApiDocumentProvider>("v1").GetOpenApiDocumentAsync();
        return await document.SerializeAsJsonAsync(OpenApiSpecVersion.OpenApi3_1);
    }

    public ConcurrentQueue<string> Mismatches { get; } = new();

    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        app.Use(CheckAsync);
        next(app);
    };

    private async Task CheckAsync(HttpContext context, RequestDelegate next)
    {
        var path = context.Request.Path.Value ?? "/";
        if (path.StartsWith("/openapi/", StringComparison.Ordinal) || path.StartsWith("/docs", StringComparison.Ordinal))
        {
            await next(context);
            return;
        }
        // Loaded before the answer: a stream may end only when the host stops and its services are gone.
        var contract = await ContractAsync(context.RequestServices);
        var original = context.Response.Body;
        var capture = new CaptureStream(original, context.Response);
        context.Response.Body = capture;
        try
        {
            await next(context);
        }
        finally
        {
            context.Response.Body = original;
        }
        if (context.RequestAborted.IsCancellationRequested && capture.Streaming)
        {
            return; // a stream the client closed: its status was checked when it started
        }
        var body = capture.Captured is { } captured ? captured.GetBuffer().AsSpan(0, (int)captured.Length) : default;
        foreach (var mismatch in contract.Check(context.Request.Method, path, context.Response.StatusCode, context.Response.ContentType, body))
        {
            Mismatches.Enqueue(mismatch);
        }
    }

    private async Task<OpenApiContract> ContractAsync(IServiceProvider services)
    {
        if (_contract is { } contract)
        {
            return contract;
        }
        await _loading.WaitAsync();
        try
        {
            return _contract ??= OpenApiContract.Of(await LoadDocumentAsync(services));
        }
        finally
        {
            _loading.Release();
        }
    }

    /// <summary>Passes every byte on, and keeps a copy of a bounded, non-streaming body.</summary>
    private sealed class CaptureStream(Stream inner, HttpResponse response) : Stream
    {
        private bool? _keep;

        public MemoryStream? Captured { get; private set; }

        public bool Streaming => response.ContentType?.StartsWith("text/event-stream", StringComparison.OrdinalIgnoreCase) == true;

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush() => inner.Flush();

        public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count)
        {
            Keep(buffer.AsSpan(offset, count));
            inner.Write(buffer, offset, count);
        }

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Keep(buffer.Span);
            await inner.WriteAsync(buffer, cancellationToken);
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        private void Keep(ReadOnlySpan<byte> bytes)
        {
            _keep ??= !Streaming;
            if (_keep == true)
            {
                Captured ??= new MemoryStream();
                if (Captured.Length + bytes.Length > MaxCapturedBytes)
                {
                    _keep = false;
                    Captured = null;
                    return;
                }
                Captured.Write(bytes);
            }
        }
    }
}
