using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using Tally.Server.Tests.Deploy;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Process;

/// <summary>
/// README.md's examples run as written: its <c>sh</c>/<c>bash</c> blocks, in order, in one bash with
/// <c>set -euo pipefail</c>, against a real Tally on a free port with a fresh data directory. A command that
/// fails, or a status the README shows (<c># HTTP/1.1 409 Conflict</c>) that the commands do not produce, fails the test.
/// </summary>
public partial class ReadmeTests
{
    /// <summary>The address the README uses; the test puts its own in its place.</summary>
    private const string ReadmeAddress = "http://127.0.0.1:5000";

    /// <summary>
    /// The blocks marked <c>&lt;!-- readme-test: skip (why) --&gt;</c>, by their first line. Kept explicit: a new
    /// skipped block has to be added here, on purpose.
    /// </summary>
    private static readonly string[] SkippedBlocks =
    [
        $"dotnet run --project src/Tally.Server -c Release -- --urls {ReadmeAddress}",
        "docker build -f deploy/Dockerfile -t tally .",
        "dotnet run --project src/Tally.Server -c Release -- --urls http://127.0.0.1:5001 \\",
        "redis-server --port 6379 --appendonly yes --appendfsync always --maxmemory-policy noeviction &",
    ];

    [Fact]
    [Trait("Layer", "Process")]
    public async Task TheReadmeExamplesRunInOrderAgainstALiveTally()
    {
        var blocks = ReadBlocks();
        Assert.Equal(SkippedBlocks, blocks.Where(block => block.Skipped).Select(block => block.Lines[0]));
        var tested = blocks.Where(block => !block.Skipped).ToList();
        Assert.True(tested.Count >= 8, $"Only {tested.Count} example blocks found in README.md.");
        var definitions = tested.SelectMany(block => block.Lines).Where(line => line.Contains(ReadmeAddress, StringComparison.Ordinal)).ToList();
        Assert.Equal([$"export TALLY={ReadmeAddress}"], definitions);
        foreach (var block in tested)
        {
            var withoutFail = block.Commands.Count(command => !FailFlag().IsMatch(command));
            Assert.True(withoutFail == block.ExpectedStatuses.Count,
                $"Block at line {block.Line}: every curl needs -f, or a '# HTTP/1.1 <status>' line saying what it answers " +
                $"({withoutFail} without -f, {block.ExpectedStatuses.Count} statuses shown).");
        }

        using var work = new TempDirectory();
        var dataDir = Path.Combine(work.Path, "data");
        Directory.CreateDirectory(dataDir);
        // As a user starts it: no configured AdminKey (the first start writes data/admin.key), the default rate limit; and,
        // as the README's alerts section says to, webhooks allowed to a receiver on this machine.
        await using var tally = TallyProcess.Start(dataDir, "--AdminKey=", "--RateLimit:PermitsPerSecond", "1000", "--Alerts:AllowedHosts", "127.0.0.1");
        await tally.WaitUntilReadyAsync();

        var script = new StringBuilder("set -euo pipefail\n");
        for (var i = 0; i < tested.Count; i++)
        {
            script.Append(CultureInfoInvariant($"printf '\\n@@readme-block {i}\\n'\n"));
            script.AppendJoin('\n', tested[i].Lines.Select(line => line.Replace(ReadmeAddress, tally.BaseAddress.ToString().TrimEnd('/'), StringComparison.Ordinal)));
            script.Append('\n');
        }
        var (exitCode, output, error) = await RunBashAsync(script.ToString(), work.Path);

        var outputs = SplitByBlock(output, tested.Count);
        var ran = outputs.Count(text => text is not null);
        Assert.True(exitCode == 0,
            $"README block at line {tested[Math.Max(ran - 1, 0)].Line} failed (bash exit {exitCode}).\n--- its output ---\n{outputs[Math.Max(ran - 1, 0)]}\n--- stderr ---\n{error}\n{tally.Describe()}");
        for (var i = 0; i < tested.Count; i++)
        {
            var seen = StatusLine().Matches(outputs[i] ?? string.Empty).Select(match => match.Groups[1].Value).ToList();
            var position = 0;
            foreach (var expected in tested[i].ExpectedStatuses)
            {
                position = seen.IndexOf(expected, position) + 1;
                Assert.True(position > 0,
                    $"README block at line {tested[i].Line} shows HTTP {expected}, but its commands answered {string.Join(", ", seen)}.\n--- its output ---\n{outputs[i]}");
            }
        }
    }

    [Fact]
    public void EveryLinkInTheReadmeIsAFileOfTheRepository()
    {
        var text = File.ReadAllText(DeployFiles.PathOf("README.md"));
        var links = MarkdownLink().Matches(text).Select(match => match.Groups[1].Value).ToList();
        // A link within the page names one of its headings, as GitHub writes their anchors.
        var anchors = text.Split('\n').Where(line => line.StartsWith('#')).Select(line =>
            "#" + string.Concat(line.TrimStart('#').Trim().ToLowerInvariant().Where(c => char.IsLetterOrDigit(c) || c is ' ' or '-')).Replace(' ', '-')).ToHashSet();
        Assert.NotEmpty(links);
        Assert.All(links, link =>
        {
            if (link.StartsWith('#'))
            {
                Assert.True(anchors.Contains(link), $"README.md links to {link}, which is none of its headings.");
                return;
            }
            var target = Path.GetFullPath(DeployFiles.PathOf(link.Split('#')[0]));
            Assert.True(target.StartsWith(DeployFiles.RepositoryRoot + Path.DirectorySeparatorChar, StringComparison.Ordinal)
                && (File.Exists(target) || Directory.Exists(target)), $"README.md links to {link}, which is not a file of the repository.");
        });
        Assert.DoesNotContain("https://", text, StringComparison.Ordinal);
    }

    private sealed record Block(int Line, bool Skipped, IReadOnlyList<string> Lines)
    {
        /// <summary>The statuses the block shows as <c># HTTP/1.1 NNN …</c>, in order.</summary>
        public IReadOnlyList<string> ExpectedStatuses =>
            Lines.Select(line => ShownStatus().Match(line)).Where(match => match.Success).Select(match => match.Groups[1].Value).ToList();

        /// <summary>Each line that starts a curl command (after leading spaces), its comment cut off.</summary>
        public IEnumerable<string> Commands =>
            Lines.Select(line => line.TrimStart()).Where(line => line.StartsWith("curl ", StringComparison.Ordinal))
                .Select(line => line.Split(" #")[0]);
    }

    private static List<Block> ReadBlocks()
    {
        var lines = File.ReadAllLines(DeployFiles.PathOf("README.md"));
        var blocks = new List<Block>();
        for (var i = 0; i < lines.Length; i++)
        {
            if (lines[i] is not ("```sh" or "```bash"))
            {
                continue;
            }
            var skipped = i > 0 && lines[i - 1].StartsWith("<!-- readme-test: skip (", StringComparison.Ordinal);
            var body = new List<string>();
            var start = i + 1;
            for (i++; i < lines.Length && lines[i] != "```"; i++)
            {
                body.Add(lines[i]);
            }
            Assert.True(i < lines.Length, $"The block at line {start} of README.md never ends.");
            blocks.Add(new Block(start, skipped, body));
        }
        return blocks;
    }

    private static string?[] SplitByBlock(string output, int count)
    {
        var parts = new string?[count];
        var current = -1;
        var text = new StringBuilder();
        foreach (var line in output.Split('\n'))
        {
            var marker = BlockMarker().Match(line);
            if (marker.Success)
            {
                if (current >= 0)
                {
                    parts[current] = text.ToString();
                }
                current = int.Parse(marker.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
                text.Clear();
                continue;
            }
            text.Append(line.TrimEnd('\r')).Append('\n');
        }
        if (current >= 0)
        {
            parts[current] = text.ToString();
        }
        return parts;
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
        foreach (var name in new[] { "TALLY", "AUTH", "SHOP_ID", "SHOP_AUTH", "CURL_HOME", "WEBHOOK_SECRET", "HOOK_PORT", "RECEIVER" })
        {
            start.Environment.Remove(name);
        }
        start.Environment["HOME"] = workingDirectory; // no ~/.curlrc of the machine's user
        System.Diagnostics.Process process;
        try
        {
            process = System.Diagnostics.Process.Start(start)!;
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new InvalidOperationException($"bash cannot be started ({ex.Message}); the README test needs bash, curl and jq (./test.sh installs them).", ex);
        }
        using (process)
        {
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
            try
            {
                await process.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException($"The README's examples did not finish within 2 minutes.\n{await output}\n{await error}");
            }
            return (process.ExitCode, await output, await error);
        }
    }

    private static string CultureInfoInvariant(FormattableString text) => FormattableString.Invariant(text);

    [GeneratedRegex(@"^\s*# HTTP/1\.1 (\d{3})\b")]
    private static partial Regex ShownStatus();

    /// <summary>curl -i's status line; not anchored, since the answer before it may not end its line.</summary>
    [GeneratedRegex(@"HTTP/1\.1 (\d{3}) [A-Z]")]
    private static partial Regex StatusLine();

    [GeneratedRegex(@"\s(-[a-zA-Z]*f[a-zA-Z]*|--fail)(\s|$)")]
    private static partial Regex FailFlag();

    [GeneratedRegex(@"^@@readme-block (\d+)$")]
    private static partial Regex BlockMarker();

    [GeneratedRegex(@"\]\(([^)\s]+)\)")]
    private static partial Regex MarkdownLink();
}
