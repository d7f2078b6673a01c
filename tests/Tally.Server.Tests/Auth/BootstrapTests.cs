using System.Net;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
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
