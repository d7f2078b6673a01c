using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Process;

/// <summary>Bad configuration or an unusable data directory: exit non-zero at once, saying why on stderr.</summary>
public class StartupFailureTests
{
    [Theory]
    [InlineData(new[] { "--Store", "redis" }, "redis")]
    [InlineData(new[] { "--Durability", "maybe" }, "maybe")]
    [InlineData(new[] { "--MaxBatchSize", "0" }, "MaxBatchSize")]
    [InlineData(new[] { "--FlushIntervalMs", "lots" }, "FlushIntervalMs")]
    public async Task BadSettingExitsNonZeroNamingIt(string[] arguments, string named)
    {
        using var dataDir = new TempDirectory();
        await using var tally = TallyProcess.Start(dataDir.Path, arguments);

        var exitCode = await tally.WaitForExitAsync();

        Assert.True(exitCode != 0, $"Tally started with {string.Join(' ', arguments)}.\n{tally.Describe()}");
        AssertClearMessage(tally, named);
        Assert.False(File.Exists(Path.Combine(dataDir.Path, "tally.db")), "Nothing may be written with a bad configuration.");
    }

    [Fact]
    public async Task DataFileThatIsNotTallysExitsNonZeroAndLeavesItAlone()
    {
        using var dataDir = new TempDirectory();
        var file = Path.Combine(dataDir.Path, "tally.db");
        await File.WriteAllTextAsync(file, "not a database");
        await using var tally = TallyProcess.Start(dataDir.Path);

        Assert.NotEqual(0, await tally.WaitForExitAsync());
        AssertClearMessage(tally, "not a SQLite database");
        Assert.Equal("not a database", await File.ReadAllTextAsync(file));
    }

    [Fact]
    public async Task DataDirInUseByAnotherTallyExitsNonZero()
    {
        await using var running = new TallyApplication();
        _ = running.Services; // started: it holds the data directory
        await using var second = TallyProcess.Start(running.DataDir);

        Assert.NotEqual(0, await second.WaitForExitAsync());
        AssertClearMessage(second, "in use");
        Assert.Equal(System.Net.HttpStatusCode.OK, (await running.CreateClient().GetAsync("/readyz")).StatusCode);
    }

    /// <summary>A plain sentence naming the problem, not a crash: no "Unhandled exception", no stack trace.</summary>
    private static void AssertClearMessage(TallyProcess tally, string named)
    {
        var error = tally.StandardError;
        Assert.True(error.Contains(named, StringComparison.Ordinal), $"stderr does not mention '{named}'.\n{tally.Describe()}");
        Assert.False(error.Contains("Unhandled exception", StringComparison.Ordinal) || error.Contains("   at ", StringComparison.Ordinal),
            $"stderr shows a crash, not a message.\n{tally.Describe()}");
    }
}
