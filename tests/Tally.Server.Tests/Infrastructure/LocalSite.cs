using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Logging;

namespace Tally.Server.Tests.Infrastructure;

/// <summary>
/// A small real web site for a test: Kestrel on 127.0.0.1 on a free port, with the routes the test maps
/// (a page on another origin for a browser, an identity provider's discovery documents, …).
/// </summary>
public sealed class LocalSite : IAsyncDisposable
{
    private readonly WebApplication _app;

    private LocalSite(WebApplication app, int port)
    {
        _app = app;
        Origin = $"http://127.0.0.1:{port}";
    }

    /// <summary>The site's origin, <c>http://127.0.0.1:port</c> (no trailing slash).</summary>
    public string Origin { get; }

    public static async Task<LocalSite> StartAsync(Action<WebApplication> map)
    {
        var port = FreePort();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, port));
        var app = builder.Build();
        map(app);
        await app.StartAsync();
        return new LocalSite(app, port);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
