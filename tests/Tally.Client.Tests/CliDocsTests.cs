using System.Diagnostics;
using System.Text;
using Tally.Client.Tests.Infrastructure;

namespace Tally.Client.Tests;

/// <summary>
/// docs/cli.md's examples run as written: its <c>sh</c> blocks, in order, in one bash with <c>set -euo pipefail</c> and the
/// built tool as the command <c>tally</c>, against a real Tally process. The README's <c>$ tally …</c> lines must be among them.
/// </summary>
[Trait("Layer", "Process")]
public sealed class CliDocsTests
{
    private const string DocsAddress = "http://127.0.0.1:5000";

    [Fact]
    public async Task TheCliGuideExamplesRunInOrderAgainstALiveTally()
    {
        var blocks = ShellBlocks(File.ReadAllLines(Path.Combine(Cli.RepositoryRoot, "docs", "cli.md")));
        Assert.True(blocks.Count >= 6, $"Only {blocks.Count} example blocks found in docs/cli.md.");
        var commands = blocks.SelectMany(block => block).Select(line => line.Split(" #")[0].Trim()).ToHashSet(StringComparer.Ordinal);
        var readme = File.ReadAllLines(Path.Combine(Cli.RepositoryRoot, "README.md"))
            .Where(line => line.StartsWith("$ tally ", StringComparison.Ordinal)).Select(line => line[2..].Split(" #")[0].Trim()).ToList();
        Assert.NotEmpty(readme);
        Assert.All(readme, line => Assert.True(commands.Contains(line), $"The README's '{line}' is not one of docs/cli.md's tested examples."));

        await using var server = await ServerProcess.StartAsync();
        var work = Directory.CreateTempSubdirectory("tally-cli-docs-").FullName;
        try
        {
            Directory.CreateDirectory(Path.Combine(work, "data"));
            await File.WriteAllTextAsync(Path.Combine(work, "data", "admin.key"), ServerProcess.AdminKey);
            // The built tool as the command 'tally', as an installed tool would be.
            var script = new StringBuilder($"set -euo pipefail\ntally() {{ dotnet '{Cli.ToolAssembly}' \"$@\"; }}\n");
            foreach (var block in blocks)
            {
                script.AppendJoin('\n', block.Select(line => line.Replace(DocsAddress, server.BaseAddress.ToString().TrimEnd('/'), StringComparison.Ordinal)));
                script.Append('\n');
            }
            var (exitCode, output, error) = await RunBashAsync(script.ToString(), work);
            Assert.True(exitCode == 0, $"docs/cli.md's examples failed (bash exit {exitCode}).\n--- stdout ---\n{output}\n--- stderr ---\n{error}");
            Assert.Contains("exit 2", output, StringComparison.Ordinal);
            Assert.Contains("tally: out_of_range: Incrementing 'seats' by 500", error, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    /// <summary>The <c>sh</c> blocks not marked <c>&lt;!-- cli-test: skip (…) --&gt;</c>.</summary>
    private static List<List<string>> ShellBlocks(string[] lines)
    {
        var blocks = new List<List<string>>();
        for (var i = 0; i < lines.Length; i++)
        {
            if (lines[i] != "```sh")
            {
                continue;
            }
            var skipped = i > 0 && lines[i - 1].StartsWith("<!-- cli-test: skip (", StringComparison.Ordinal);
            var body = new List<string>();
            for (i++; i < lines.Length && lines[i] != "```"; i++)
            {
                body.Add(lines[i]);
            }
            if (!skipped)
            {
                blocks.Add(body);
            }
        }
        return blocks;
    }

    private static async Task<(int ExitCode, string Output, string Error)> RunBashAsync(string script, string workingDirectory)
    {
        var start = new ProcessStartInfo("bash", ["-c", script])
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.Environment.Remove("TALLY_URL");
        start.Environment.Remove("TALLY_KEY");
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"docs/cli.md's examples did not finish within 3 minutes.\n{await output}\n{await error}");
        }
        return (process.ExitCode, await output, await error);
    }
}
