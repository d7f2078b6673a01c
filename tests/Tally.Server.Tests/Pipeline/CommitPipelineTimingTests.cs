using Microsoft.Data.Sqlite;
using Tally.Server.Configuration;
using Tally.Server.Counters;
using Tally.Server.Pipeline;
using Tally.Server.Storage.Sqlite;
using Tally.Server.Tests.Infrastructure;
using Tally.Server.Tests.Storage;

namespace Tally.Server.Tests.Pipeline;

/// <summary>
/// The commit loop's deadlines hold without traffic: with <c>Durability=async</c> an acknowledged change reaches the
/// file although no request follows it, and an idle server folds its counter log. Both need the loop, asleep on an
/// empty queue, to be woken by its alarm.
/// </summary>
public class CommitPipelineTimingTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task AsyncAcknowledgedChangeIsWrittenWithoutAnotherRequest()
    {
        using var dataDir = new TempDirectory();
        await using var run = await Run.StartAsync(dataDir.Path, DurabilityMode.Async, foldAfter: 20_000);

        // Twice: the alarm must ring again after its first ring.
        foreach (var name in (string[])["first", "second"])
        {
            var result = await run.Pipeline.SubmitAsync(CounterCommand.Increment(name, 3));
            Assert.Equal(CommandStatus.Ok, result.Status);
            await Eventually(() => Written(dataDir.Path, name), $"the acknowledged increment of '{name}' was never written");
            await Eventually(() => run.Store.UnflushedSince is null, "the store still has unflushed changes");
        }
    }

    [Fact]
    public async Task IdleLoopFoldsTheCounterLog()
    {
        using var dataDir = new TempDirectory();
        await using var run = await Run.StartAsync(dataDir.Path, DurabilityMode.Sync, foldAfter: 20_000);

        // A burst of new names leaves them in the log (below the fold threshold no commit folds). Upkeep may already
        // run between the burst's commits on a slow machine; then another burst, until a backlog is seen.
        var names = 0;
        for (var burst = 0; burst < 5 && (burst == 0 || StoreTesting.CountInDataFile(dataDir.Path, "SELECT count(*) FROM counter_log") == 0); burst++)
        {
            var results = await Task.WhenAll(Enumerable.Range(names, 3000).Select(i => run.Pipeline.SubmitAsync(CounterCommand.Increment($"n{i:D5}", 1))));
            Assert.All(results, result => Assert.Equal(CommandStatus.Ok, result.Status));
            names += 3000;
        }
        Assert.True(StoreTesting.CountInDataFile(dataDir.Path, "SELECT count(*) FROM counter_log") > 0, "every burst was folded at once; nothing is left for upkeep to show");

        // Far below the fold threshold: only the idle upkeep, woken by the loop's alarm, empties the log.
        await Eventually(() => StoreTesting.CountInDataFile(dataDir.Path, "SELECT count(*) FROM counter_log") == 0, "the idle server never folded its counter log");
        Assert.Equal(names, StoreTesting.CountInDataFile(dataDir.Path, "SELECT count(*) FROM counters"));
    }

    private static async Task Eventually(Func<bool> condition, string failure)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"{failure} within {Patience.TotalSeconds} s.");
            await Task.Delay(20);
        }
    }

    private static bool Written(string dataDir, string name) =>
        StoreTesting.CountInDataFile(dataDir, $"SELECT (SELECT count(*) FROM counter_log WHERE name = '{name}') + (SELECT count(*) FROM counters WHERE name = '{name}')") > 0;

    private sealed class Run(SqliteCounterStore store, CommitPipeline pipeline) : IAsyncDisposable
    {
        public SqliteCounterStore Store { get; } = store;

        public CommitPipeline Pipeline { get; } = pipeline;

        public static async Task<Run> StartAsync(string dataDir, DurabilityMode durability, int foldAfter)
        {
            var store = StoreTesting.CreateSqlite(dataDir, new ManualClock(1_700_000_000_000), foldAfter, durability);
            var pipeline = StoreTesting.CreatePipeline(store, StoreTesting.Options(dataDir, durability, foldAfter: foldAfter));
            await pipeline.StartAsync(CancellationToken.None);
            return new Run(store, pipeline);
        }

        public async ValueTask DisposeAsync()
        {
            // Stopping must not hang on the alarm's timer; the pipeline closes the store.
            using var timeout = new CancellationTokenSource(Patience);
            await Pipeline.StopAsync(timeout.Token);
        }
    }
}
