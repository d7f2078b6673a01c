using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Tally.Client;

namespace Tally.Client.Tests.Infrastructure;

/// <summary>
/// The real Tally in-process on Kestrel, on a free loopback port and its own temporary data directory, so the client
/// speaks real HTTP over a real socket to it. Warnings and errors only on the console.
/// </summary>
public sealed class TallyServer : WebApplicationFactory<Program>
{
    public const string AdminKey = "tally-client-test-admin-key-0123456789";

    private readonly Dictionary<string, string?> _settings;

    public TallyServer(string store = "memory", IReadOnlyDictionary<string, string?>? settings = null)
    {
        Store = store;
        DataDir = Directory.CreateTempSubdirectory("tally-client-test-").FullName;
        _settings = settings is null ? [] : new Dictionary<string, string?>(settings);
        var port = FreePort();
        BaseAddress = new Uri($"http://127.0.0.1:{port}");
        UseKestrel(options => options.Listen(IPAddress.Loopback, port));
        StartServer();
    }

    public string Store { get; }

    public string DataDir { get; }

    public Uri BaseAddress { get; }

    /// <summary>A <see cref="TallyClient"/> registered as an application would, with <see cref="AdminKey"/> unless told otherwise.</summary>
    /// <param name="configure">Further client options (the key, the retries).</param>
    /// <param name="builder">Adds handlers of the test to the client's pipeline (inside the retries).</param>
    public TallyClient CreateTallyClient(Action<TallyClientOptions>? configure = null, Action<IHttpClientBuilder>? builder = null)
    {
        var services = new ServiceCollection();
        var http = services.AddTallyClient(options =>
        {
            options.BaseAddress = BaseAddress;
            options.ApiKey = AdminKey;
            options.RetryDelay = TimeSpan.FromMilliseconds(50);
            configure?.Invoke(options);
        });
        builder?.Invoke(http);
        var provider = services.BuildServiceProvider();
        _providers.Add(provider);
        return provider.GetRequiredService<TallyClient>();
    }

    private readonly List<ServiceProvider> _providers = [];

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseSetting("Store", Store);
        builder.UseSetting("DataDir", DataDir);
        builder.UseSetting("AdminKey", AdminKey);
        builder.UseSetting("RateLimit:PermitsPerSecond", "0");
        builder.UseSetting("Logging:Console:LogLevel:Default", "Warning");
        foreach (var (key, value) in _settings)
        {
            builder.UseSetting(key, value);
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            foreach (var provider in _providers)
            {
                provider.Dispose();
            }
        }
        base.Dispose(disposing);
        if (disposing)
        {
            try
            {
                Directory.Delete(DataDir, recursive: true);
            }
            catch (IOException)
            {
                // A file still closing; the temporary directory is cleaned by the system.
            }
        }
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
