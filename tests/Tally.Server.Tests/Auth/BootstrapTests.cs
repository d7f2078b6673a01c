using System.Net;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Tally.Server.Auth;
using Tally.Server.Tests.Infrastructure;
using Tally.Server.Tests.Process;

namespace Tally.Server.Tests.Auth;

/// <summary>With no AdminKey and no stored key, the first start creates an admin key, shows it once and saves it 0600.</summary>
public class BootstrapTests
{
    private static readonly Dictionary<string, string?> NoAdminKey = new() { ["AdminKey"] = "" };

    [Fact]
    public async Task TheFirstStartCreatesAnAdminKeyPrintsItOnceAndSavesItOwnerOnly()
    {
        await using var tally = new TallyApplication(settings: NoAdminKey);
        var console = new StringWriter();
        await using var app = WithConsole(tally, console);
        _ = app.Services;

        var file = Path.Combine(tally.DataDir, "admin.key");
        Assert.True(File.Exists(file), "admin.key was not written.");
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, ModeOf(file));
        var key = (await File.ReadAllTextAsync(file)).Trim();
        Assert.StartsWith("tly_", key, StringComparison.Ordinal);

        var printed = console.ToString();
        Assert.Equal(1, Occurrences(printed, key));
        Assert.Contains(file, printed, StringComparison.Ordinal);

        var admin = app.CreateClientWithKey(key);
        var listed = Assert.Single(await admin.ListKeysAsync());
        Assert.Equal(["admin"], listed!["scopes"]!.AsArray().Select(scope => (string)scope!));
        Assert.Equal(HttpStatusCode.Created, (await admin.PutAsync("any:counter", "{}")).StatusCode);
        // The test admin key of the other tests is not configured here.
        await (await app.CreateClient().GetAsync("/admin/keys")).ReadProblemAsync(HttpStatusCode.Unauthorized, "unauthorized");
    }

    [Fact]
    public async Task ALaterStartCreatesNoOtherKey()
    {
        await using var first = new TallyApplication(settings: NoAdminKey);
        _ = first.Services;
        var file = Path.Combine(first.DataDir, "admin.key");
        var key = (await File.ReadAllTextAsync(file)).Trim();

        await using var second = await first.RestartAsync();

        Assert.Equal(key, (await File.ReadAllTextAsync(file)).Trim());
        Assert.Single(await second.CreateClientWithKey(key).ListKeysAsync());
    }

    [Fact]
    public async Task WithAnAdminKeyConfiguredNoKeyIsCreated()
    {
        await using var tally = new TallyApplication();
        var console = new StringWriter();
        await using var app = WithConsole(tally, console);
        _ = app.Services;

        Assert.False(File.Exists(Path.Combine(tally.DataDir, "admin.key")));
        Assert.Empty(console.ToString());
        Assert.Empty(await app.CreateClient().ListKeysAsync());
    }

    [Fact]
    public async Task WithTheMemoryStoreTheKeyIsPrintedButNotSaved()
    {
        await using var tally = new TallyApplication("memory", settings: NoAdminKey);
        var console = new StringWriter();
        await using var app = WithConsole(tally, console);
        _ = app.Services;

        Assert.Empty(Directory.GetFiles(tally.DataDir));
        var key = console.ToString().Split((char[])[' ', '\n'], StringSplitOptions.RemoveEmptyEntries).Single(word => word.StartsWith("tly_", StringComparison.Ordinal));
        Assert.Equal(HttpStatusCode.OK, (await app.CreateClientWithKey(key).GetAsync("/admin/keys")).StatusCode);
    }

    [Fact]
    public async Task WithAuthOffNoKeyIsCreated()
    {
        await using var tally = new TallyApplication(settings: new Dictionary<string, string?> { ["AdminKey"] = "", ["Auth"] = "off" });
        _ = tally.Services;
        Assert.False(File.Exists(Path.Combine(tally.DataDir, "admin.key")));
    }

    /// <summary>The real server: the key goes to standard output, once, and nowhere in the logs on standard error.</summary>
    [Fact]
    [Trait("Layer", "Process")]
    public async Task TheServerPrintsTheFirstKeyToStandardOutput()
    {
        using var dataDir = new TempDirectory();
        await using var tally = TallyProcess.Start(dataDir.Path, "--AdminKey=");
        await tally.WaitUntilReadyAsync();

        var file = Path.Combine(dataDir.Path, "admin.key");
        var key = (await File.ReadAllTextAsync(file)).Trim();
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, ModeOf(file));
        Assert.Equal(1, Occurrences(tally.StandardOutput, key));
        Assert.DoesNotContain(key, tally.StandardError, StringComparison.Ordinal);

        using var client = new HttpClient { BaseAddress = tally.BaseAddress };
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/admin/keys")).StatusCode);
    }

    [Fact]
    public async Task TheLastAdminKeyCannotBeRevokedWhenNoAdminKeyIsConfigured()
    {
        await using var app = new TallyApplication(settings: NoAdminKey);
        var first = app.CreateClientWithKey(await ReadKeyFileAsync(app));
        var firstId = (string)Assert.Single(await first.ListKeysAsync())!["id"]!;
        var reader = await first.CreateKeyAsync("reader", ["read"]);

        var problem = await (await first.DeleteAsync($"/admin/keys/{firstId}")).ReadProblemAsync(HttpStatusCode.Conflict, "last_admin_key");

        Assert.Contains("admin key", (string?)problem["detail"], StringComparison.Ordinal);
        Assert.Equal(2, (await first.ListKeysAsync()).Count);
        Assert.True(File.Exists(Path.Combine(app.DataDir, "admin.key")));
        // Other keys can still go, and with a second admin key the first can go too; then the second is the last.
        Assert.Equal(HttpStatusCode.NoContent, (await first.DeleteAsync($"/admin/keys/{reader.Id}")).StatusCode);
        var second = await first.CreateKeyAsync("second admin", ["admin"]);
        Assert.Equal(HttpStatusCode.NoContent, (await first.DeleteAsync($"/admin/keys/{firstId}")).StatusCode);
        var secondClient = app.CreateClientWithKey(second.Key);
        await (await secondClient.DeleteAsync($"/admin/keys/{second.Id}")).ReadProblemAsync(HttpStatusCode.Conflict, "last_admin_key");
        Assert.Equal(HttpStatusCode.OK, (await secondClient.GetAsync("/admin/keys")).StatusCode);
    }

    [Fact]
    public async Task WithAnAdminKeyConfiguredTheLastStoredAdminKeyCanBeRevoked()
    {
        await using var app = new TallyApplication("memory");
        var admin = app.CreateClient();
        var stored = await admin.CreateKeyAsync("only stored admin", ["admin"]);

        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync($"/admin/keys/{stored.Id}")).StatusCode);
        Assert.Empty(await admin.ListKeysAsync());
    }

    [Fact]
    public async Task TwoAdminKeysRevokedAtOnceDoNotBothGo()
    {
        await using var app = new TallyApplication(settings: NoAdminKey);
        var firstKey = await ReadKeyFileAsync(app);
        var first = app.CreateClientWithKey(firstKey);
        var firstId = (string)Assert.Single(await first.ListKeysAsync())!["id"]!;
        var second = await first.CreateKeyAsync("second admin", ["admin"]);

        // At the store, where the decision is made: over HTTP, whichever request wins may revoke the key the other was sent with.
        var keys = app.GetService<ApiKeyStore>();
        var outcomes = await Task.WhenAll(
            Task.Run(() => keys.RevokeAsync(firstId, keepAnAdminKey: true, CancellationToken.None)),
            Task.Run(() => keys.RevokeAsync(second.Id, keepAnAdminKey: true, CancellationToken.None)));

        Assert.Equal([RevocationOutcome.Revoked, RevocationOutcome.LastAdminKey], outcomes.Select(outcome => outcome.Outcome).OrderBy(outcome => outcome));
        var survivor = Assert.Single(keys.List());
        Assert.Contains(survivor.Id, new[] { firstId, second.Id });
        Assert.Equal(HttpStatusCode.OK, (await app.CreateClientWithKey(survivor.Id == firstId ? firstKey : second.Key).GetAsync("/admin/keys")).StatusCode);
    }

    [Fact]
    public async Task RevokingTheKeyInTheAdminKeyFileDeletesTheFileAndSaysSo()
    {
        var logs = new CapturingLoggerProvider();
        await using var tally = new TallyApplication(settings: NoAdminKey);
        await using var app = tally.WithWebHostBuilder(builder =>
        {
            builder.ConfigureLogging(logging => logging.AddProvider(logs).SetMinimumLevel(LogLevel.Information));
            builder.ConfigureTestServices(services => services.AddSingleton(new StartupConsole(TextWriter.Null)));
        });
        _ = app.Services;
        var file = Path.Combine(tally.DataDir, "admin.key");
        var firstKey = (await File.ReadAllTextAsync(file)).Trim();
        var first = app.CreateClientWithKey(firstKey);
        var firstId = (string)Assert.Single(await first.ListKeysAsync())!["id"]!;
        var second = await first.CreateKeyAsync("second admin", ["admin"]);
        var reader = await first.CreateKeyAsync("reader", ["read"]);

        Assert.Equal(HttpStatusCode.NoContent, (await first.DeleteAsync($"/admin/keys/{reader.Id}")).StatusCode);
        Assert.True(File.Exists(file), "Revoking another key leaves the file.");

        Assert.Equal(HttpStatusCode.NoContent, (await app.CreateClientWithKey(second.Key).DeleteAsync($"/admin/keys/{firstId}")).StatusCode);

        Assert.False(File.Exists(file), "admin.key still holds a revoked key.");
        Assert.Contains(logs.Entries, entry => entry.StartsWith("Information", StringComparison.Ordinal)
            && entry.Contains("Deleted the admin key file", StringComparison.Ordinal) && entry.Contains(file, StringComparison.Ordinal));
        Assert.DoesNotContain(firstKey, logs.All, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ALaterStartLogsWhereTheAdminKeyIsWithoutTheKey()
    {
        using var dataDir = new TempDirectory();
        var settings = new Dictionary<string, string?>(NoAdminKey) { ["DataDir"] = dataDir.Path };
        var file = Path.Combine(dataDir.Path, "admin.key");
        await using (var first = new TallyApplication(settings: settings))
        {
            _ = first.Services;
        }
        var key = (await File.ReadAllTextAsync(file)).Trim();

        var logs = new CapturingLoggerProvider();
        var console = new StringWriter();
        await using var tally = new TallyApplication(settings: settings);
        await using var later = tally.WithWebHostBuilder(builder =>
        {
            builder.ConfigureLogging(logging => logging.AddProvider(logs).SetMinimumLevel(LogLevel.Information));
            builder.ConfigureTestServices(services => services.AddSingleton(new StartupConsole(console)));
        });
        _ = later.Services;

        var lines = logs.Entries.Where(entry => entry.Contains(file, StringComparison.Ordinal)).ToList();
        var line = Assert.Single(lines);
        Assert.StartsWith("Information", line, StringComparison.Ordinal);
        Assert.Contains("admin key", line, StringComparison.Ordinal);
        Assert.DoesNotContain(key, logs.All, StringComparison.Ordinal);
        Assert.Empty(console.ToString()); // shown once, at the first start only
        Assert.True(File.Exists(file));
    }

    [Fact]
    public async Task AnAdminKeyFileWhoseKeyNoLongerWorksIsDeletedAtStart()
    {
        using var dataDir = new TempDirectory();
        var file = Path.Combine(dataDir.Path, "admin.key");
        await File.WriteAllTextAsync(file, "tly_revokedrevokedrevokedrevokedrevokedrevoked\n");

        // The AdminKey setting is configured here, so no first admin key is made to take the file's place.
        await using var app = new TallyApplication(settings: new Dictionary<string, string?> { ["DataDir"] = dataDir.Path });
        _ = app.Services;

        Assert.False(File.Exists(file), "admin.key names a key that does not work.");
    }

    private static async Task<string> ReadKeyFileAsync(TallyApplication app)
    {
        _ = app.Services;
        return (await File.ReadAllTextAsync(Path.Combine(app.DataDir, "admin.key"))).Trim();
    }

    private static WebApplicationFactory<Program> WithConsole(TallyApplication tally, TextWriter console) =>
        tally.WithWebHostBuilder(builder => builder.ConfigureTestServices(services => services.AddSingleton(new StartupConsole(console))));

    private static UnixFileMode ModeOf(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            throw new PlatformNotSupportedException("Tally's key file permissions are Unix file modes.");
        }
        return File.GetUnixFileMode(path);
    }

    private static int Occurrences(string text, string value)
    {
        var count = 0;
        for (var at = text.IndexOf(value, StringComparison.Ordinal); at >= 0; at = text.IndexOf(value, at + value.Length, StringComparison.Ordinal))
        {
            count++;
        }
        return count;
    }
}
