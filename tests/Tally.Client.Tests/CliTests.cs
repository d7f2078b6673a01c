using System.Text.Json;
using System.Text.RegularExpressions;
using Tally.Client.Tests.Infrastructure;

namespace Tally.Client.Tests;

/// <summary>One real Tally process (SQLite store) for the CLI tests; each test uses names of its own.</summary>
public sealed class ServerFixture : IAsyncLifetime
{
    public ServerProcess Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await ServerProcess.StartAsync("sqlite", "--Alerts:AllowedHosts", "127.0.0.1");

    public async Task DisposeAsync() => await Server.DisposeAsync();
}

/// <summary>The real tool (<c>dotnet tally.dll</c>) against a real Tally process.</summary>
[Trait("Layer", "Process")]
public sealed class CliTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private ServerProcess Server => fixture.Server;

    [Fact]
    public async Task IncGetAndLsPrintJsonForScripts()
    {
        var inc = await Cli.RunAsync(Server, "inc", "cli:a", "--by", "3", "--json");
        Assert.True(inc.ExitCode == 0, inc.ToString());
        using (var counter = JsonDocument.Parse(inc.Output))
        {
            Assert.Equal(("cli:a", 3L, 1L), (counter.RootElement.GetProperty("name").GetString(), counter.RootElement.GetProperty("value").GetInt64(),
                counter.RootElement.GetProperty("version").GetInt64()));
            Assert.EndsWith("Z", counter.RootElement.GetProperty("updatedAt").GetString(), StringComparison.Ordinal);
        }
        Assert.Equal(0, (await Cli.RunAsync(Server, "dec", "cli:b", "--json")).ExitCode);

        var get = await Cli.RunAsync(Server, "get", "cli:a", "--json");
        Assert.True(get.ExitCode == 0, get.ToString());
        using (var counter = JsonDocument.Parse(get.Output))
        {
            Assert.Equal(3, counter.RootElement.GetProperty("value").GetInt64());
        }

        var ls = await Cli.RunAsync(Server, "ls", "--prefix", "cli:", "--json");
        Assert.True(ls.ExitCode == 0, ls.ToString());
        using var page = JsonDocument.Parse(ls.Output);
        Assert.Equal([("cli:a", 3L), ("cli:b", -1L)], page.RootElement.GetProperty("items").EnumerateArray()
            .Select(item => (item.GetProperty("name").GetString(), item.GetProperty("value").GetInt64())));
        Assert.Equal(JsonValueKind.Null, page.RootElement.GetProperty("next").ValueKind);
        Assert.Equal("", ls.Error);
    }

    [Fact]
    public async Task TablesForPeopleShowTheCounters()
    {
        Assert.Equal(0, (await Cli.RunAsync(Server, "set", "table:x", "41", "--max", "100")).ExitCode);

        var get = await Cli.RunAsync(Server, "inc", "table:x");
        var ls = await Cli.RunAsync(Server, "ls", "-p", "table:");
        var top = await Cli.RunAsync(Server, "top", "-p", "table:");

        Assert.True(get.ExitCode == 0, get.ToString());
        Assert.Contains("42", get.Output, StringComparison.Ordinal);
        Assert.Contains("table:x", ls.Output, StringComparison.Ordinal);
        Assert.Contains("100", ls.Output, StringComparison.Ordinal);
        Assert.Contains("table:x", top.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AProblemFromTheServerExitsTwoWithItsCodeAndDetailOnStandardError()
    {
        Assert.Equal(0, (await Cli.RunAsync(Server, "set", "capped", "2", "--max", "3")).ExitCode);

        var result = await Cli.RunAsync(Server, "inc", "capped", "--by", "5");

        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.Contains("out_of_range", result.Error, StringComparison.Ordinal);
        Assert.Contains("Incrementing 'capped' by 5", result.Error, StringComparison.Ordinal);
        Assert.Equal("", result.Output);

        var missing = await Cli.RunAsync(Server, "get", "no-such-counter");
        Assert.True(missing.ExitCode == 2, missing.ToString());
        Assert.Contains("counter_not_found", missing.Error, StringComparison.Ordinal);

        var unauthorized = await Cli.RunWithAsync(new Dictionary<string, string> { ["TALLY_URL"] = Server.BaseAddress.ToString() }, "get", "capped");
        Assert.True(unauthorized.ExitCode == 2, unauthorized.ToString());
        Assert.Contains("unauthorized", unauthorized.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnUnreachableServiceExitsThree()
    {
        var url = $"http://127.0.0.1:{TallyServer.FreePort()}";

        var result = await Cli.RunWithAsync(null, "get", "a", "--url", url, "--key", "whatever");

        Assert.True(result.ExitCode == 3, result.ToString());
        Assert.Contains("cannot reach", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AHungServiceExitsThreeAfterShortAttempts()
    {
        await using var hung = new BrokenService(BrokenService.Behaviour.Hang);

        // Three attempts of 10 s and two short delays; Cli.RunWithAsync gives up at a minute (the library's 100 s would take 5).
        var result = await Cli.RunWithAsync(null, "get", "a", "--url", hung.BaseAddress.ToString(), "--key", "whatever");

        Assert.True(result.ExitCode == 3, result.ToString());
        Assert.Contains("cannot reach", result.Error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("export")]
    [InlineData("backup")]
    public async Task AConnectionLostMidTransferExitsThreeAndKeepsTheOldFile(string command)
    {
        await using var broken = new BrokenService(BrokenService.Behaviour.BreakMidBody);
        var directory = Directory.CreateTempSubdirectory("tally-cli-broken-").FullName;
        try
        {
            var file = Path.Combine(directory, "target");
            await File.WriteAllTextAsync(file, "the previous copy");

            var result = await Cli.RunWithAsync(null, command, file, "--url", broken.BaseAddress.ToString(), "--key", "whatever");

            Assert.True(result.ExitCode == 3, result.ToString());
            Assert.StartsWith("tally: lost the connection to", result.Error, StringComparison.Ordinal);
            Assert.Single(result.Error.TrimEnd('\n').Split('\n'));
            Assert.Equal("the previous copy", await File.ReadAllTextAsync(file));
            Assert.Equal(["target"], Directory.GetFiles(directory).Select(Path.GetFileName));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task AFileThatCannotBeWrittenExitsOneWithOneLine()
    {
        var nowhere = Path.Combine(Path.GetTempPath(), "tally-no-such-directory-" + Guid.NewGuid().ToString("N"), "export.jsonl");

        var result = await Cli.RunAsync(Server, "export", nowhere);

        Assert.True(result.ExitCode == 1, result.ToString());
        Assert.Single(result.Error.TrimEnd('\n').Split('\n'));
        Assert.StartsWith("tally: ", result.Error, StringComparison.Ordinal);
        Assert.Contains("tally-no-such-directory-", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheNextPageHintKeepsThePrefixAndTheLimit()
    {
        Assert.Equal(0, (await Cli.RunAsync(Server, "inc", "pg:a")).ExitCode);
        Assert.Equal(0, (await Cli.RunAsync(Server, "inc", "pg:b")).ExitCode);

        var first = await Cli.RunAsync(Server, "ls", "--prefix", "pg:", "--limit", "1");

        Assert.True(first.ExitCode == 0, first.ToString());
        // Without colour codes, should the console decide the output takes them.
        var hint = Regex.Replace(first.Output, "\u001b\\[[0-9;]*m", "").Split('\n').Single(line => line.StartsWith("More: ", StringComparison.Ordinal));
        Assert.StartsWith("More: tally ls --prefix pg: --limit 1 --after ", hint, StringComparison.Ordinal);
        Assert.EndsWith(", or --all.", hint.TrimEnd(), StringComparison.Ordinal);
        // The hint, run as printed, shows the next page.
        var suggested = hint["More: tally ".Length..hint.LastIndexOf(", or --all.", StringComparison.Ordinal)].Split(' ');
        var next = await Cli.RunAsync(Server, [.. suggested, "--json"]);
        Assert.True(next.ExitCode == 0, next.ToString());
        using var page = JsonDocument.Parse(next.Output);
        Assert.Equal(["pg:b"], page.RootElement.GetProperty("items").EnumerateArray().Select(item => item.GetProperty("name").GetString()));
    }

    [Theory]
    [InlineData("inc")]
    [InlineData("frobnicate")]
    [InlineData("inc", "a", "--by", "many")]
    [InlineData("get", "a", "--url", "not a url")]
    [InlineData("watch")]
    public async Task AUsageErrorExitsOne(params string[] arguments)
    {
        var result = await Cli.RunAsync(Server, arguments);

        Assert.True(result.ExitCode == 1, result.ToString());
        Assert.NotEqual("", result.Error);
        Assert.True(result.Output == "", $"A usage error wrote to standard output, which is for data only.\n{result}");
    }

    [Fact]
    public async Task UsageErrorsSayWhatWasWantedInPlainWords()
    {
        var time = await Cli.RunAsync(Server, "history", "hello", "--from", "yesterday");
        var number = await Cli.RunAsync(Server, "inc", "a", "--by", "many");
        var interval = await Cli.RunAsync(Server, "history", "hello", "--interval", "week");

        Assert.Contains("tally: 'yesterday' for --from is not an ISO-8601 time", time.Error, StringComparison.Ordinal);
        Assert.Contains("tally: 'many' for --by is not a whole number", number.Error, StringComparison.Ordinal);
        Assert.Contains("hour", interval.Error, StringComparison.Ordinal);
        foreach (var result in new[] { time, number, interval })
        {
            Assert.True(result.ExitCode == 1 && result.Output == "", result.ToString());
            Assert.DoesNotContain("System.", result.Error, StringComparison.Ordinal);
            Assert.DoesNotContain("Tally.Client", result.Error, StringComparison.Ordinal);
            Assert.DoesNotContain("'Hour'", result.Error, StringComparison.Ordinal);
            Assert.Contains("--help' for how to use it.", result.Error, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("--help")]
    [InlineData("inc", "--help")]
    [InlineData("alerts", "set", "--help")]
    [InlineData("keys", "create", "-h")]
    public async Task HelpIsEverywhere(params string[] arguments)
    {
        var result = await Cli.RunWithAsync(null, arguments);

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("Usage:", result.Output, StringComparison.Ordinal);
        Assert.Contains("--json", result.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheRootHelpListsEveryCommand()
    {
        var result = await Cli.RunWithAsync(null, "--help");

        foreach (var command in new[] { "get", "inc", "dec", "set", "reset", "rm", "ls", "top", "history", "watch", "alerts", "keys", "backup", "export", "import" })
        {
            Assert.Contains($"  {command} ", result.Output, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task ResetAndRmChangeTheCounter()
    {
        Assert.Equal(0, (await Cli.RunAsync(Server, "set", "rr", "9", "--initial", "4")).ExitCode);

        var reset = await Cli.RunAsync(Server, "reset", "rr", "--json");
        var rm = await Cli.RunAsync(Server, "rm", "rr");
        var gone = await Cli.RunAsync(Server, "get", "rr");

        Assert.True(reset.ExitCode == 0, reset.ToString());
        using (var counter = JsonDocument.Parse(reset.Output))
        {
            Assert.Equal(4, counter.RootElement.GetProperty("value").GetInt64());
        }
        Assert.True(rm.ExitCode == 0, rm.ToString());
        Assert.Equal(2, gone.ExitCode);
    }

    [Fact]
    public async Task HistoryPrintsAChartAndJson()
    {
        Assert.Equal(0, (await Cli.RunAsync(Server, "inc", "hist", "--by", "6")).ExitCode);

        var chart = await Cli.RunAsync(Server, "history", "hist", "--interval", "hour");
        var json = await Cli.RunAsync(Server, "history", "hist", "--json");

        Assert.True(chart.ExitCode == 0, chart.ToString());
        Assert.Contains("hist: value per hour", chart.Output, StringComparison.Ordinal);
        Assert.Contains("█", chart.Output, StringComparison.Ordinal);
        using var history = JsonDocument.Parse(json.Output);
        var bucket = Assert.Single(history.RootElement.GetProperty("buckets").EnumerateArray());
        Assert.Equal(6, bucket.GetProperty("increments").GetInt64());
    }

    [Fact]
    public async Task WatchPrintsEventsAsJsonLines()
    {
        Assert.Equal(0, (await Cli.RunAsync(Server, "inc", "watched", "--by", "2")).ExitCode);

        var result = await Cli.RunAsync(Server, "watch", "watched", "--json", "--count", "1");

        Assert.True(result.ExitCode == 0, result.ToString());
        using var line = JsonDocument.Parse(result.Output);
        Assert.Equal("counter", line.RootElement.GetProperty("event").GetString());
        Assert.Equal(2, line.RootElement.GetProperty("data").GetProperty("value").GetInt64());
    }

    [Fact]
    public async Task WatchPipedPrintsALinePerEvent()
    {
        Assert.Equal(0, (await Cli.RunAsync(Server, "inc", "watched:line", "--by", "7")).ExitCode);

        var result = await Cli.RunAsync(Server, "watch", "watched:line", "--count", "1");

        Assert.True(result.ExitCode == 0, result.ToString());
        var fields = Assert.Single(result.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries)).Split('\t');
        Assert.Equal(["watched:line", "7"], fields[1..]);
        Assert.EndsWith("Z", fields[0], StringComparison.Ordinal);
    }

    [Fact]
    public async Task PipedTablesKeepEachRowOnOneLine()
    {
        // Piped output has no terminal width: 80 columns would wrap this name and split the number over lines.
        var name = "wide:" + new string('n', 90);
        Assert.Equal(0, (await Cli.RunAsync(Server, "set", name, "1234567890123456789", "--max", "9000000000000000000")).ExitCode);

        var ls = await Cli.RunAsync(Server, "ls", "-p", "wide:");

        Assert.True(ls.ExitCode == 0, ls.ToString());
        Assert.Contains(ls.Output.Split('\n'), line => line.Contains(name, StringComparison.Ordinal)
            && line.Contains("1,234,567,890,123,456,789", StringComparison.Ordinal) && line.Contains("9,000,000,000,000,000,000", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ExportImportAndBackupWriteAndReadFiles()
    {
        Assert.Equal(0, (await Cli.RunAsync(Server, "inc", "moved:a", "--by", "11")).ExitCode);
        var directory = Directory.CreateTempSubdirectory("tally-cli-files-").FullName;
        try
        {
            var file = Path.Combine(directory, "export.jsonl");
            var export = await Cli.RunAsync(Server, "export", file);
            Assert.True(export.ExitCode == 0, export.ToString());
            Assert.Contains(File.ReadAllLines(file), line => line.Contains("\"moved:a\"", StringComparison.Ordinal));

            var stdout = await Cli.RunAsync(Server, "export");
            Assert.Equal(File.ReadAllText(file), stdout.Output);

            Assert.Equal(0, (await Cli.RunAsync(Server, "rm", "moved:a")).ExitCode);
            var import = await Cli.RunAsync(Server, "import", file, "--json");
            Assert.True(import.ExitCode == 0, import.ToString());
            using (var imported = JsonDocument.Parse(import.Output))
            {
                Assert.True(imported.RootElement.GetProperty("imported").GetInt32() >= 1);
            }
            using (var counter = JsonDocument.Parse((await Cli.RunAsync(Server, "get", "moved:a", "--json")).Output))
            {
                Assert.Equal(11, counter.RootElement.GetProperty("value").GetInt64());
            }

            var backupFile = Path.Combine(directory, "tally.db");
            var backup = await Cli.RunAsync(Server, "backup", backupFile);
            Assert.True(backup.ExitCode == 0, backup.ToString());
            Assert.Equal("SQLite format 3\0"u8.ToArray(), File.ReadAllBytes(backupFile)[..16]);
            Assert.False(File.Exists(backupFile + ".partial"));
            // A backup holds webhook secrets and key hashes, an export every value: readable by their owner only.
            Assert.False(OperatingSystem.IsWindows(), "The CLI tests run on Linux.");
            if (!OperatingSystem.IsWindows())
            {
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(backupFile));
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
            }

            var missing = await Cli.RunAsync(Server, "import", Path.Combine(directory, "nothing.jsonl"));
            Assert.True(missing.ExitCode == 1, missing.ToString());
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task KeysAndAlertsAreManaged()
    {
        var created = await Cli.RunAsync(Server, "keys", "create", "cli-reader", "--scope", "read", "--prefix", "cli:", "--json");
        Assert.True(created.ExitCode == 0, created.ToString());
        using var key = JsonDocument.Parse(created.Output);
        var id = key.RootElement.GetProperty("id").GetString()!;
        var secret = key.RootElement.GetProperty("key").GetString()!;

        var listed = await Cli.RunAsync(Server, "keys", "ls");
        Assert.Contains("cli-reader", listed.Output, StringComparison.Ordinal);

        var refused = await Cli.RunWithAsync(null, "inc", "cli:a", "--url", Server.BaseAddress.ToString(), "--key", secret);
        Assert.True(refused.ExitCode == 2, refused.ToString());
        Assert.Contains("forbidden", refused.Error, StringComparison.Ordinal);

        Assert.Equal(0, (await Cli.RunAsync(Server, "keys", "revoke", id)).ExitCode);

        var alert = await Cli.RunAsync(Server, "alerts", "set", "too-many", "--counter", "cli:a", "--above", "100", "--webhook", "http://127.0.0.1:9/hook");
        Assert.True(alert.ExitCode == 0, alert.ToString());
        Assert.Contains("whsec_", alert.Output, StringComparison.Ordinal);
        var alerts = await Cli.RunAsync(Server, "alerts", "ls", "--json");
        using (var items = JsonDocument.Parse(alerts.Output))
        {
            Assert.Contains(items.RootElement.GetProperty("items").EnumerateArray(), item => item.GetProperty("id").GetString() == "too-many");
        }
        var deliveries = await Cli.RunAsync(Server, "alerts", "deliveries", "too-many", "--json");
        Assert.True(deliveries.ExitCode == 0, deliveries.ToString());
        Assert.Equal(0, (await Cli.RunAsync(Server, "alerts", "rm", "too-many")).ExitCode);
        var gone = await Cli.RunAsync(Server, "alerts", "get", "too-many");
        Assert.True(gone.ExitCode == 2, gone.ToString());
        Assert.Contains("alert_not_found", gone.Error, StringComparison.Ordinal);
    }
}
