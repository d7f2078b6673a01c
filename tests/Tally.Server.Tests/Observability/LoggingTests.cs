using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Logging;
using Tally.Server.Tests.Auth;
using Tally.Server.Tests.Infrastructure;
using Tally.Server.Tests.Process;

namespace Tally.Server.Tests.Observability;

/// <summary>One line per request at Debug, none otherwise, never a key; JSON lines when configured.</summary>
public class LoggingTests
{
    [Fact]
    public async Task AtDebugEachRequestIsOneLineThatNeverCarriesTheKey()
    {
        var logs = new CapturingLoggerProvider();
        await using var tally = new TallyApplication("memory", settings: new Dictionary<string, string?> { ["Logging:LogLevel:Tally.Requests"] = "Debug" });
        await using var app = tally.WithWebHostBuilder(builder => builder.ConfigureLogging(logging => logging.AddProvider(logs)));
        var client = app.CreateClient();

        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/counters/logged/increment", null)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/counters/absent")).StatusCode);

        var requestLines = logs.Entries.Where(entry => entry.Contains("Tally.Requests", StringComparison.Ordinal)).ToList();
        Assert.Contains(requestLines, line => line.StartsWith("Debug", StringComparison.Ordinal) && line.Contains("POST /counters/logged/increment 200", StringComparison.Ordinal));
        Assert.Contains(requestLines, line => line.Contains("GET /counters/absent 404", StringComparison.Ordinal));
        Assert.DoesNotContain(TallyApplication.AdminKey, logs.All, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ByDefaultRequestsAreNotLogged()
    {
        var logs = new CapturingLoggerProvider();
        await using var tally = new TallyApplication("memory");
        await using var app = tally.WithWebHostBuilder(builder => builder.ConfigureLogging(logging => logging.AddProvider(logs)));
        Assert.Equal(HttpStatusCode.OK, (await app.CreateClient().PostAsync("/counters/quiet/increment", null)).StatusCode);
        Assert.DoesNotContain(logs.Entries, entry => entry.Contains("Tally.Requests", StringComparison.Ordinal));
    }

    [Fact]
    [Trait("Layer", "Process")]
    public async Task TheJsonConsoleFormatterWritesOneJsonObjectPerLine()
    {
        using var dataDir = new TempDirectory();
        await using var tally = TallyProcess.Start(dataDir.Path, "--Logging:Console:FormatterName", "json", "--Logging:LogLevel:Tally.Requests", "Debug");
        await tally.WaitUntilReadyAsync();
        using (var client = tally.CreateClient())
        {
            Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/counters/json/increment", null)).StatusCode);
        }
        tally.Terminate();
        Assert.Equal(0, await tally.WaitForExitAsync());

        var lines = tally.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.NotEmpty(lines);
        foreach (var line in lines)
        {
            using var entry = JsonDocument.Parse(line); // throws, failing the test, if a line is not JSON
            Assert.True(entry.RootElement.TryGetProperty("LogLevel", out _), line);
        }
        Assert.Contains(lines, line => line.Contains("\"Category\":\"Tally.Requests\"", StringComparison.Ordinal) && line.Contains("/counters/json/increment", StringComparison.Ordinal));
        Assert.DoesNotContain(TallyProcess.AdminKey, tally.StandardOutput + tally.StandardError, StringComparison.Ordinal);
    }
}
