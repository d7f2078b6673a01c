using System.Diagnostics;
using System.Text.Json.Nodes;
using Tally.Server.Tests.Auth;
using Tally.Server.Tests.Deploy;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Observability;

/// <summary>
/// The document passes Redocly's recommended rules (tests/tools/redocly.yaml), with @redocly/cli as pinned in
/// tests/tools/package.json and installed by test.sh (<c>npm ci</c>).
/// </summary>
[Trait("Layer", "Process")]
public class OpenApiLintTests
{
    [Fact]
    public async Task TheDocumentPassesRedoclysRecommendedRules()
    {
        var tools = Path.Combine(DeployFiles.RepositoryRoot, "tests", "tools");
        var redocly = Path.Combine(tools, "node_modules", ".bin", "redocly");
        Assert.True(File.Exists(redocly), $"{redocly} is missing: run ./test.sh, or npm ci in tests/tools (Node.js 20.19 or newer, on 22: 22.12 or newer; npm 10 or newer).");

        await using var app = new TallyApplication("memory");
        var text = await app.CreateClientWithKey(null).GetStringAsync("/openapi/v1.json");
        var file = Path.Combine(Path.GetTempPath(), $"tally-openapi-{Guid.NewGuid():N}.json");
        await File.WriteAllTextAsync(file, text);
        try
        {
            var start = new ProcessStartInfo(redocly)
            {
                WorkingDirectory = tools,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                Environment = { ["NO_COLOR"] = "1", ["REDOCLY_TELEMETRY"] = "off", ["REDOCLY_SUPPRESS_UPDATE_NOTICE"] = "true" },
            };
            foreach (var argument in new[] { "lint", file, "--config", Path.Combine(tools, "redocly.yaml"), "--format", "json" })
            {
                start.ArgumentList.Add(argument);
            }
            using var process = System.Diagnostics.Process.Start(start)!;
            var output = process.StandardOutput.ReadToEndAsync();
            var errors = process.StandardError.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
            await process.WaitForExitAsync(timeout.Token);
            var report = await output;
            var describe = $"redocly exited {process.ExitCode}:\n{report}\n{await errors}";
            var totals = JsonNode.Parse(report[report.IndexOf('{', StringComparison.Ordinal)..])!["totals"]!;
            Assert.True((int?)totals["errors"] == 0 && (int?)totals["warnings"] == 0, describe);
            Assert.True(process.ExitCode == 0, describe);
        }
        finally
        {
            File.Delete(file);
        }
    }
}
