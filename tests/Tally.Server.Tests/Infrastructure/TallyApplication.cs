using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Time.Testing;

namespace Tally.Server.Tests.Infrastructure;

/// <summary>
/// Tally in-process, on its own temporary data directory (deleted on dispose).
/// <see cref="RestartAsync"/> stops this instance and starts a new one on the same directory.
/// Its console log shows warnings and errors only (see <see cref="QuietLogging"/>).
/// </summary>
public sealed class TallyApplication : WebApplicationFactory<Program>
{
    private readonly Dictionary<string, string?> _settings;
    private bool _ownsDataDir;

    /// <param name="store">sqlite or memory.</param>
    /// <param name="durability">sync or async.</param>
    /// <param name="settings">Further configuration keys, e.g. <c>MaxBodyBytes</c>.</param>
    /// <param name="clock">A fake clock the service reads instead of the system's (advance it rather than sleep); null: the system clock.</param>
    public TallyApplication(string store = "sqlite", string durability = "sync", IReadOnlyDictionary<string, string?>? settings = null,
        FakeTimeProvider? clock = null)
        : this(store, durability, settings, Directory.CreateTempSubdirectory("tally-test-").FullName, clock)
    {
    }

    private TallyApplication(string store, string durability, IReadOnlyDictionary<string, string?>? settings, string dataDir, FakeTimeProvider? clock)
    {
        Store = store;
        Durability = durability;
        DataDir = dataDir;
        Clock = clock;
        _settings = settings is null ? [] : new Dictionary<string, string?>(settings);
        _ownsDataDir = true;
        _responseCheck = new OpenApiResponseCheck();
    }

    /// <summary>
    /// Every answer is checked against the service's OpenAPI document; a mismatch fails the request that showed it
    /// (<see cref="OpenApiResponseCheck"/>), so the test fails there, before its own assertions.
    /// </summary>
    private readonly OpenApiResponseCheck _responseCheck;

    public string Store { get; }

    public string Durability { get; }

    public string DataDir { get; }

    /// <summary>The fake clock the service reads, if the test gave one.</summary>
    public FakeTimeProvider? Clock { get; }

    /// <summary>
    /// Test hosts write warnings and errors only to the console. Set as configuration, not with <c>SetMinimumLevel</c>,
    /// which appsettings.json's <c>Logging:LogLevel</c> overrides. A rule for the console provider alone: a test that
    /// adds its own logger provider still sees Information; a test's own settings still win.
    /// </summary>
    public static readonly IReadOnlyDictionary<string, string?> QuietLogging = new Dictionary<string, string?>
    {
        ["Logging:Console:LogLevel:Default"] = "Warning",
    };

    /// <summary>The configured <c>AdminKey</c>; every client from <see cref="WebApplicationFactory{T}.CreateClient()"/> sends it.</summary>
    public const string AdminKey = "tally-test-admin-key-0123456789";

    /// <summary>Stops this instance (its store closes) and starts a new one on the same data directory, which it then owns.</summary>
    public async Task<TallyApplication> RestartAsync()
    {
        _ownsDataDir = false;
        await DisposeAsync();
        var next = new TallyApplication(Store, Durability, _settings, DataDir, Clock);
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
        builder.ConfigureServices(services => services.AddSingleton<IStartupFilter>(_responseCheck));
        foreach (var (key, value) in QuietLogging.Concat(_settings))
        {
            builder.UseSetting(key, value);
        }
        if (Clock is { } clock)
        {
            builder.ConfigureTestServices(services => services.Replace(ServiceDescriptor.Singleton<TimeProvider>(clock)));
        }
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
        // Only what no client could be told: an event stream's answer checked after its client had left (rare; every
        // other mismatch failed its request). Thrown from Dispose it would replace an exception the test is already
        // failing with, which is why nothing else waits until here.
        var mismatches = new List<string>();
        while (_responseCheck.Mismatches.TryDequeue(out var mismatch))
        {
            mismatches.Add(mismatch);
        }
        if (disposing && mismatches.Count > 0)
        {
            throw new Xunit.Sdk.XunitException(
                $"{mismatches.Count} answer(s) no client saw disagree with the OpenAPI document (/openapi/v1.json):\n" + string.Join("\n", mismatches.Distinct().Take(20)));
        }
    }
}
