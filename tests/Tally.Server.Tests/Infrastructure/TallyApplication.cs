using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Tally.Server.Tests.Infrastructure;

/// <summary>
/// Tally in-process, on its own temporary data directory (deleted on dispose).
/// <see cref="RestartAsync"/> stops this instance and starts a new one on the same directory.
/// </summary>
public sealed class TallyApplication : WebApplicationFactory<Program>
{
    private readonly Dictionary<string, string?> _settings;
    private bool _ownsDataDir;

    /// <param name="store">sqlite or memory.</param>
    /// <param name="durability">sync or async.</param>
    /// <param name="settings">Further configuration keys, e.g. <c>MaxBodyBytes</c>.</param>
    public TallyApplication(string store = "sqlite", string durability = "sync", IReadOnlyDictionary<string, string?>? settings = null)
        : this(store, durability, settings, Directory.CreateTempSubdirectory("tally-test-").FullName)
    {
    }

    private TallyApplication(string store, string durability, IReadOnlyDictionary<string, string?>? settings, string dataDir)
    {
        Store = store;
        Durability = durability;
        DataDir = dataDir;
        _settings = settings is null ? [] : new Dictionary<string, string?>(settings);
        _ownsDataDir = true;
    }

    public string Store { get; }

    public string Durability { get; }

    public string DataDir { get; }

    /// <summary>The configured <c>AdminKey</c>; every client from <see cref="WebApplicationFactory{T}.CreateClient()"/> sends it.</summary>
    public const string AdminKey = "tally-test-admin-key-0123456789";

    /// <summary>Stops this instance (its store closes) and starts a new one on the same data directory, which it then owns.</summary>
    public async Task<TallyApplication> RestartAsync()
    {
        _ownsDataDir = false;
        await DisposeAsync();
        var next = new TallyApplication(Store, Durability, _settings, DataDir);
        _ = next.Services; // start now, so a start-up failure shows here and not at the first request
        return next;
    }

    internal T GetService<T>()
        where T : notnull => Services.GetRequiredService<T>();

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseSetting("Store", Store);
        builder.UseSetting("DataDir", DataDir);
        builder.UseSetting("Durability", Durability);
        builder.UseSetting("AdminKey", AdminKey);
        builder.UseSetting("RateLimit:PermitsPerSecond", "0");
        foreach (var (key, value) in _settings)
        {
            builder.UseSetting(key, value);
        }
        builder.ConfigureLogging(logging => logging.SetMinimumLevel(LogLevel.Warning));
    }

    /// <summary>Clients send the admin key (a request may set its own Authorization header; clear it to send none).</summary>
    protected override void ConfigureClient(HttpClient client)
    {
        base.ConfigureClient(client);
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", AdminKey);
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (disposing && _ownsDataDir)
        {
            TempDirectory.Delete(DataDir);
        }
    }
}
