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
/// It sits outermost in the test host's pipeline, so it sees what any client of the test gets.
/// </summary>
/// <remarks>
/// <para>
/// A mismatch fails the request that showed it: the middleware throws <see cref="OpenApiMismatchException"/> after the
/// answer, and the test server hands an exception thrown by the application to its client (the body being read is
/// aborted with it, or the call throws it when nothing was sent yet). So the test fails at the call, with the mismatch,
/// before its own assertions, and never has a failure of its own hidden. A mismatch no client can be told of any
/// more (an event stream whose client has left) is kept in <see cref="Mismatches"/>, which
/// <see cref="TallyApplication"/> reports when it is disposed.
/// </para>
/// <para>
/// A middleware rather than a <c>DelegatingHandler</c>: <c>WebApplicationFactory</c> builds its clients without
/// a hook for handlers, and tests also call <c>CreateDefaultClient</c> and the test server directly.
/// Streams (text/event-stream) are checked for status and media type only: their bodies never end.
/// </para>
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
        if (IsEventStream(path))
        {
            // Event streams keep the server's own body writer: a wrapped one may hold back the first flush, which
            // carries the headers. Their status and media type are checked when the stream ends; they have no body schema.
            await next(context);
            if (!context.RequestAborted.IsCancellationRequested || context.Response.StatusCode != StatusCodes.Status200OK)
            {
                Report(context, path, contract.Check(context.Request.Method, path, context.Response.StatusCode, context.Response.ContentType, default));
            }
            return;
        }
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
        Report(context, path, contract.Check(context.Request.Method, path, context.Response.StatusCode, context.Response.ContentType, body));
    }

    /// <summary>The event routes, exactly: <c>/events</c> and <c>/counters/{name}/events</c> (not a counter named "events").</summary>
    internal static bool IsEventStream(string path)
    {
        const string counters = "/counters/", events = "/events";
        if (path == events)
        {
            return true;
        }
        if (!path.StartsWith(counters, StringComparison.Ordinal) || !path.EndsWith(events, StringComparison.Ordinal))
        {
            return false;
        }
        var name = path.AsSpan(counters.Length, Math.Max(0, path.Length - counters.Length - events.Length));
        return name.Length > 0 && !name.Contains('/');
    }

    private void Report(HttpContext context, string path, IReadOnlyList<string> mismatches)
    {
        if (mismatches.Count == 0)
        {
            return;
        }
        if (context.RequestAborted.IsCancellationRequested)
        {
            foreach (var mismatch in mismatches)
            {
                Mismatches.Enqueue(mismatch);
            }
            return;
        }
        throw new OpenApiMismatchException($"{context.Request.Method} {path}: the answer disagrees with the OpenAPI document (/openapi/v1.json):\n"
            + string.Join("\n", mismatches.Distinct().Take(20)));
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

/// <summary>An answer that disagrees with the service's OpenAPI document; thrown to the client of the request.</summary>
internal sealed class OpenApiMismatchException(string message) : Exception(message);
