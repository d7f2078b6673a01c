using Microsoft.Data.Sqlite;
using Tally.Server.Counters;
using Tally.Server.Storage;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Storage;

/// <summary>
/// The SQLite counter log stays short whatever the workload: folding keeps pace with what commits
/// append, idle upkeep empties it, and deleted counters leave neither log rows nor memory behind.
/// </summary>
public class CounterLogUpkeepTests
{
    [Fact]
    public async Task BatchesOfNewNamesKeepTheCounterLogBounded()
    {
        using var dataDir = new TempDirectory();
        const int foldAfter = 1000, batchSize = 200, batches = 150;
        await using var store = StoreTesting.CreateSqlite(dataDir.Path, new ManualClock(1_700_000_000_000), foldAfter);
        await store.OpenAsync(CancellationToken.None);

        long most = 0;
        for (var b = 0; b < batches; b++)
        {
            await store.CommitAsync([.. Enumerable.Range(0, batchSize).Select(i => CounterCommand.Increment($"n{b:D4}-{i:D3}", 1))]);
            most = Math.Max(most, LogRows(dataDir.Path));
        }

        // 30,000 rows were appended; the log never held more than about two cycle thresholds (an eighth of the
        // counters once that is above foldAfter: 3,750 at the end) and a few commits.
        var threshold = Math.Max(foldAfter, batches * batchSize / 8);
        Assert.True(most <= 2 * threshold + 3 * batchSize, $"The counter log reached {most} rows (threshold {threshold}, batches of {batchSize}).");
        Assert.Equal(batches * batchSize, store.Count);
        Assert.Equal(batches * batchSize, StoreTesting.CountInDataFile(dataDir.Path, "SELECT count(*) FROM counters") + LogOnlyNames(dataDir.Path));
    }

    [Fact]
    public async Task ScatteredIncrementsOverManyCountersWaitForAnEighthOfThemAndLoseNothing()
    {
        using var dataDir = new TempDirectory();
        const int foldAfter = 100, counters = 4000, batchSize = 50;
        var clock = new ManualClock(1_700_000_000_000);
        var store = StoreTesting.CreateSqlite(dataDir.Path, clock, foldAfter);
        await store.OpenAsync(CancellationToken.None);
        var expected = new Dictionary<string, long>();
        try
        {
            for (var start = 0; start < counters; start += 500)
            {
                await store.CommitAsync([.. Enumerable.Range(start, 500).Select(i => CounterCommand.Increment($"s{i:D5}", 1))]);
            }
            for (var i = 0; i < counters; i++)
            {
                expected[$"s{i:D5}"] = 1;
            }
            // Settle the creation's cycles, so that the scattered increments below start on an empty log.
            for (var calls = 0; calls < 20 && LogRows(dataDir.Path) > 0; calls++)
            {
                await store.MaintainAsync(CancellationToken.None);
            }
            Assert.Equal(0, LogRows(dataDir.Path));

            var random = new Random(14);
            long most = 0;
            var afterFirstCycle = false;
            for (var b = 0; b < 200; b++)
            {
                var names = Enumerable.Range(0, batchSize).Select(_ => $"s{random.Next(counters):D5}").Distinct().ToList();
                await store.CommitAsync([.. names.Select(name => CounterCommand.Increment(name, 2))]);
                foreach (var name in names)
                {
                    expected[name] += 2;
                }
                var rows = LogRows(dataDir.Path);
                // The first drop: a cycle ended and truncated the log.
                afterFirstCycle |= rows < most;
                most = Math.Max(most, rows);
            }

            // With 4,000 counters a cycle waits for 500 logged names (an eighth), not for foldAfter (100): a fold step
            // then finds several names per page of the counters table. And the log stays bounded by about twice that.
            var threshold = counters / 8;
            Assert.True(afterFirstCycle, "No fold cycle ran in 10,000 scattered increments.");
            Assert.True(most >= threshold, $"A fold cycle started at {most} logged rows, before an eighth of the counters ({threshold}).");
            Assert.True(most <= 2 * threshold + 3 * batchSize, $"The counter log reached {most} rows (threshold {threshold}).");

            await store.DisposeAsync();
            store = StoreTesting.CreateSqlite(dataDir.Path, clock, foldAfter);
            await store.OpenAsync(CancellationToken.None);
            Assert.Equal(counters, store.Count);
            foreach (var (name, value) in expected)
            {
                Assert.Equal(value, (await store.GetAsync(name))?.Value);
            }
            Assert.Equal(expected.Values.Sum(), StoreTesting.CountInDataFile(dataDir.Path, "SELECT sum(value) FROM counters"));
        }
        finally
        {
            await store.DisposeAsync();
        }
    }

    [Fact]
    public async Task IdleUpkeepEmptiesTheCounterLogDeletionsIncluded()
    {
        using var dataDir = new TempDirectory();
        var clock = new ManualClock(1_700_000_000_000);
        var store = StoreTesting.CreateSqlite(dataDir.Path, clock, foldAfter: 20_000);
        await store.OpenAsync(CancellationToken.None);
        try
        {
            for (var b = 0; b < 8; b++)
            {
                await store.CommitAsync([.. Enumerable.Range(0, 1000).Select(i => CounterCommand.Increment($"n{b}-{i:D4}", i + 1))]);
            }
            await store.CommitAsync([.. Enumerable.Range(0, 1000).Select(i => CounterCommand.Delete($"n0-{i:D4}"))]);
            Assert.Equal(9000, LogRows(dataDir.Path));

            // Far below the fold threshold, so no commit folds: only upkeep does, a bounded step per call.
            var calls = 0;
            while (LogRows(dataDir.Path) > 0 && calls < 10)
            {
                await store.MaintainAsync(CancellationToken.None);
                calls++;
            }

            Assert.Equal(0, LogRows(dataDir.Path));
            Assert.True(calls > 1, "One call folded 8,000 names: the step is not bounded.");
            Assert.Equal(7000, StoreTesting.CountInDataFile(dataDir.Path, "SELECT count(*) FROM counters"));
            Assert.Equal(0, StoreTesting.CountInDataFile(dataDir.Path, "SELECT count(*) FROM counters WHERE name LIKE 'n0-%'"));
            Assert.Equal(1000L, StoreTesting.CountInDataFile(dataDir.Path, "SELECT value FROM counters WHERE name = 'n7-0999'"));

            // Nothing left to do: upkeep writes nothing, and the state is intact after a restart.
            await store.MaintainAsync(CancellationToken.None);
            await store.CommitAsync(CounterCommand.Increment("n1-0000", 1));
            await store.DisposeAsync();
            store = StoreTesting.CreateSqlite(dataDir.Path, clock, foldAfter: 20_000);
            await store.OpenAsync(CancellationToken.None);
            Assert.Equal(7000, store.Count);
            Assert.Equal(2L, (await store.GetAsync("n1-0000"))?.Value);
            Assert.Null(await store.GetAsync("n0-0005"));
        }
        finally
        {
            await store.DisposeAsync();
        }
    }

    [Fact]
    public async Task UpkeepWaitsForAcknowledgedChangesToBeFlushedFirst()
    {
        using var dataDir = new TempDirectory();
        await using var store = StoreTesting.CreateSqlite(dataDir.Path, new ManualClock(1_700_000_000_000), foldAfter: 20_000, global::Tally.Server.Configuration.DurabilityMode.Async);
        await store.OpenAsync(CancellationToken.None);
        await store.CommitAsync(CounterCommand.Increment("a", 1), CounterCommand.Increment("b", 1));
        await store.FlushAsync(CancellationToken.None);
        // A commit acknowledged but not yet written: folding one of its counters now would write half of it.
        await store.CommitAsync(CounterCommand.Increment("a", 1), CounterCommand.Increment("b", 1));

        await store.MaintainAsync(CancellationToken.None);

        Assert.Equal(0, StoreTesting.CountInDataFile(dataDir.Path, "SELECT count(*) FROM counters"));
        await store.FlushAsync(CancellationToken.None);
        await store.MaintainAsync(CancellationToken.None);
        Assert.Equal(4L, StoreTesting.CountInDataFile(dataDir.Path, "SELECT sum(value) FROM counters"));
        Assert.Equal(0, LogRows(dataDir.Path));
    }

    [Fact]
    public async Task CreateAndDeleteCyclesLeaveNeitherLogRowsNorCountersBehind()
    {
        using var dataDir = new TempDirectory();
        const int foldAfter = 1000, names = 10_000;
        var clock = new ManualClock(1_700_000_000_000);
        var store = StoreTesting.CreateSqlite(dataDir.Path, clock, foldAfter);
        await store.OpenAsync(CancellationToken.None);
        try
        {
            long most = 0;
            for (var cycle = 0; cycle < 3; cycle++)
            {
                foreach (var make in (Func<int, CounterCommand>[])[i => CounterCommand.Increment($"c{i:D5}", 1), i => CounterCommand.Delete($"c{i:D5}")])
                {
                    for (var start = 0; start < names; start += 1000)
                    {
                        await store.CommitAsync([.. Enumerable.Range(start, 1000).Select(make)]);
                        most = Math.Max(most, LogRows(dataDir.Path));
                    }
                }
                Assert.Equal(0, store.Count);
            }
            Assert.True(most <= 3 * foldAfter + 2 * 1000, $"The counter log reached {most} rows over 60,000 appended.");

            for (var calls = 0; calls < 20 && LogRows(dataDir.Path) > 0; calls++)
            {
                await store.MaintainAsync(CancellationToken.None);
            }
            Assert.Equal(0, LogRows(dataDir.Path));
            Assert.Equal(0, StoreTesting.CountInDataFile(dataDir.Path, "SELECT count(*) FROM counters"));

            // A restart has nothing to replay and starts empty.
            await store.DisposeAsync();
            store = StoreTesting.CreateSqlite(dataDir.Path, clock, foldAfter);
            await store.OpenAsync(CancellationToken.None);
            Assert.Equal(0, store.Count);
        }
        finally
        {
            await store.DisposeAsync();
        }
    }

    private static long LogRows(string dataDir) => StoreTesting.CountInDataFile(dataDir, "SELECT count(*) FROM counter_log");

    /// <summary>Names whose only state is in the log (not yet folded into the counters table).</summary>
    private static long LogOnlyNames(string dataDir) =>
        StoreTesting.CountInDataFile(dataDir, "SELECT count(DISTINCT name) FROM counter_log WHERE name NOT IN (SELECT name FROM counters)");
}
