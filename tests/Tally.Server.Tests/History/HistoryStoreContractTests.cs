using Tally.Server.Backup;
using Tally.Server.Batch;
using Tally.Server.Configuration;
using Tally.Server.Counters;
using Tally.Server.History;
using Tally.Server.Idempotency;
using Tally.Server.Pipeline;
using Tally.Server.Storage;
using Tally.Server.Tests.Infrastructure;
using Tally.Server.Tests.Storage;
using static Tally.Server.Tests.Storage.StoreTesting;

namespace Tally.Server.Tests.History;

/// <summary>What every store must do with history, whatever keeps the data. Run against each store (PostgreSQL and Redis in their folders).</summary>
public abstract class HistoryStoreContractTests : IAsyncLifetime
{
    // 2023-11-14T22:13:20Z: the minute 22:13, the hour 22:00, the day 2023-11-14.
    private protected const long T = 1_700_000_000_000;
    private protected const long Minute = 1_699_999_980_000;
    private protected const long Hour = 1_699_999_200_000;
    private protected const long Day = 1_699_920_000_000;

    private readonly TempDirectory _dataDir = new();

    private protected ManualClock Clock { get; } = new(T);

    private protected ICounterStore Store { get; set; } = null!;

    private protected string DataDir => _dataDir.Path;

    public virtual async Task InitializeAsync()
    {
        Store = CreateStore(null);
        await Store.OpenAsync(CancellationToken.None);
    }

    public virtual async Task DisposeAsync()
    {
        await Store.DisposeAsync();
        _dataDir.Dispose();
    }

    /// <summary>A new, unopened store of this kind on this test's data, with these history settings (null: the defaults).</summary>
    private protected abstract ICounterStore CreateStore(HistoryOptions? history);

    /// <summary>Closes the store (with Durability=async, after flushing it, as the pipeline does) and opens another on the same data.</summary>
    private protected async Task ReopenAsync(HistoryOptions? history = null)
    {
        if (Store is IDeferredDurability)
        {
            await Store.FlushAsync(CancellationToken.None);
        }
        await Store.DisposeAsync();
        Store = CreateStore(history);
        await Store.OpenAsync(CancellationToken.None);
    }

    private protected Task<IReadOnlyList<HistoryBucket>> ReadAsync(string name, HistoryInterval interval) =>
        Store.ReadHistoryAsync(name, interval, 0, long.MaxValue, CancellationToken.None).AsTask();

    private protected async Task<RequestOutcome> SendAsync(PendingRequest request) =>
        (await Store.CommitAsync([request], CancellationToken.None))[0];

    [Fact]
    public async Task ChangesLandInTheirMinuteHourAndDayBuckets()
    {
        await Store.CommitAsync(CounterCommand.Increment("a", 5), CounterCommand.Decrement("a", 2));
        Clock.NowMs = T + 30_000;
        await Store.CommitAsync(CounterCommand.Put("a", Fields(value: 10)), CounterCommand.Increment("b", 1));
        Clock.NowMs = T + 60_000;
        await Store.CommitAsync(CounterCommand.Increment("a", 1), CounterCommand.Reset("a"));

        Assert.Equal([new(Minute, 5, 2, 1, 10), new(Minute + 60_000, 1, 0, 1, 0)], await ReadAsync("a", HistoryInterval.Minute));
        Assert.Equal([new HistoryBucket(Hour, 6, 2, 2, 0)], await ReadAsync("a", HistoryInterval.Hour));
        Assert.Equal([new HistoryBucket(Day, 6, 2, 2, 0)], await ReadAsync("a", HistoryInterval.Day));
        Assert.Equal([new HistoryBucket(Minute, 1, 0, 0, 1)], await ReadAsync("b", HistoryInterval.Minute));
        Assert.Empty(await ReadAsync("never", HistoryInterval.Minute));
        // A range is of bucket starts, [from, to).
        Assert.Equal([new HistoryBucket(Minute + 60_000, 1, 0, 1, 0)],
            await Store.ReadHistoryAsync("a", HistoryInterval.Minute, Minute + 1, Minute + 120_000, CancellationToken.None));
        Assert.Equal([new HistoryBucket(Minute, 5, 2, 1, 10)],
            await Store.ReadHistoryAsync("a", HistoryInterval.Minute, Minute, Minute + 60_000, CancellationToken.None));
    }

    [Fact]
    public async Task DeletingACounterDeletesItsHistory()
    {
        await Store.CommitAsync(CounterCommand.Increment("a", 5), CounterCommand.Increment("keep", 1));
        Clock.NowMs = T + HistoryIntervals.DayMs;
        await Store.CommitAsync(CounterCommand.Increment("a", 1));
        await Store.CommitAsync(CounterCommand.Delete("a"));
        foreach (var interval in HistoryIntervals.All)
        {
            Assert.Empty(await ReadAsync("a", interval));
        }

        Clock.NowMs = T + HistoryIntervals.DayMs + 1000;
        await Store.CommitAsync(CounterCommand.Increment("a", 2));
        Assert.Equal([new HistoryBucket(Day + HistoryIntervals.DayMs, 2, 0, 0, 2)], await ReadAsync("a", HistoryInterval.Day));
        Assert.Equal([new HistoryBucket(Day, 1, 0, 0, 1)], await ReadAsync("keep", HistoryInterval.Day));
    }

    [Fact]
    public async Task ADeletionInsideACommitDropsWhatCameBeforeIt()
    {
        await Store.CommitAsync(CounterCommand.Increment("a", 5));
        await Store.CommitAsync(CounterCommand.Increment("a", 1), CounterCommand.Delete("a"), CounterCommand.Decrement("a", 3), CounterCommand.Increment("a", 1));

        Assert.Equal([new HistoryBucket(Minute, 1, 3, 0, -2)], await ReadAsync("a", HistoryInterval.Minute));
    }

    [Fact]
    public async Task FailedChangesAbortedBatchesAndReplaysAddNothing()
    {
        await Store.CommitAsync(CounterCommand.Put("bounded", Fields(value: 0, max: 10)));
        // Refused by the rules: nothing.
        await Store.CommitAsync(CounterCommand.Increment("bounded", 11), CounterCommand.Reset("missing"), CounterCommand.Get("bounded"));
        // An atomic batch that fails at its last operation: none of it.
        var aborted = await SendAsync(PendingRequest.For(new BatchCommand(
            [CounterCommand.Increment("bounded", 4), CounterCommand.Increment("fresh", 1), CounterCommand.Increment("bounded", 7)], Atomic: true)));
        Assert.True(aborted.Batch!.Aborted);
        // A keyed increment and its retry: once.
        var key = new IdempotencyKey("caller", "key-1", IdempotencyKey.FingerprintOf("POST", "/counters/bounded/increment", "", "by=2"u8));
        await SendAsync(PendingRequest.For(CounterCommand.Increment("bounded", 2), key));
        var replay = await SendAsync(PendingRequest.For(CounterCommand.Increment("bounded", 2), key));
        Assert.True(replay.Replayed);
        // A batch that is not atomic keeps what succeeded.
        await SendAsync(PendingRequest.For(new BatchCommand([CounterCommand.Increment("bounded", 20), CounterCommand.Decrement("bounded", 1)], Atomic: false)));

        Assert.Equal([new HistoryBucket(Minute, 2, 1, 1, 1)], await ReadAsync("bounded", HistoryInterval.Minute));
        Assert.Empty(await ReadAsync("fresh", HistoryInterval.Minute));
        Assert.Empty(await ReadAsync("missing", HistoryInterval.Minute));
    }

    [Fact]
    public async Task SumsSaturateAtTheLargest64BitValueAndNeverFailACommit()
    {
        var results = await Store.CommitAsync(
            CounterCommand.Increment("a", long.MaxValue), CounterCommand.Decrement("a", long.MaxValue),
            CounterCommand.Increment("a", long.MaxValue), CounterCommand.Decrement("a", long.MaxValue - 1));
        Assert.All(results, result => Assert.True(result.Succeeded));
        // Past the saturation in the stored bucket too, from later commits.
        results = await Store.CommitAsync(CounterCommand.Increment("a", long.MaxValue - 1), CounterCommand.Decrement("a", 5));
        Assert.All(results, result => Assert.True(result.Succeeded));
        Clock.NowMs = T + 1;
        results = await Store.CommitAsync(CounterCommand.Decrement("a", long.MaxValue));
        Assert.All(results, result => Assert.True(result.Succeeded));

        Assert.Equal([new HistoryBucket(Minute, long.MaxValue, long.MaxValue, 0, -5)], await ReadAsync("a", HistoryInterval.Minute));
        Assert.Equal(-5, (await Store.GetAsync("a"))!.Value);
    }

    [Fact]
    public async Task WithHistoryOffNothingIsRecorded()
    {
        await ReopenAsync(new HistoryOptions { Enabled = false });
        await Store.CommitAsync(CounterCommand.Increment("a", 5), CounterCommand.Put("b", Fields(value: 1)));
        Assert.Equal(5, (await Store.GetAsync("a"))!.Value);
        foreach (var interval in HistoryIntervals.All)
        {
            Assert.Empty(await ReadAsync("a", interval));
            Assert.Empty(await ReadAsync("b", interval));
        }
    }

    /// <summary>48 h 30 min later, minute buckets from before 30 min after the first commit (48 h ago) are pruned by upkeep; hour and day buckets stay.</summary>
    [Fact]
    public virtual async Task UpkeepPrunesBucketsPastTheirRetention()
    {
        await Store.CommitAsync(CounterCommand.Increment("a", 1));
        Clock.NowMs = T + HistoryIntervals.HourMs;
        await Store.CommitAsync(CounterCommand.Increment("a", 2));
        Clock.NowMs = T + 48 * HistoryIntervals.HourMs + 30 * HistoryIntervals.MinuteMs;
        if (Store is IDeferredDurability)
        {
            await Store.FlushAsync(CancellationToken.None); // as the pipeline does within FlushIntervalMs
        }
        for (var step = 0; step < 3; step++)
        {
            await Store.MaintainAsync(CancellationToken.None);
            Clock.NowMs += 61_000;
        }

        Assert.Equal([new HistoryBucket(Minute + HistoryIntervals.HourMs, 2, 0, 0, 3)], await ReadAsync("a", HistoryInterval.Minute));
        Assert.Equal(2, (await ReadAsync("a", HistoryInterval.Hour)).Count);
        Assert.Equal([new HistoryBucket(Day, 3, 0, 0, 3)], await ReadAsync("a", HistoryInterval.Day));
    }
}

/// <summary>History where the data outlives the store instance (a file, a database server).</summary>
public abstract class PersistentHistoryStoreContractTests : HistoryStoreContractTests
{
    [Fact]
    public async Task HistoryOutlivesTheStoreInstance()
    {
        await Store.CommitAsync(CounterCommand.Increment("a", 5), CounterCommand.Put("b", Fields(value: 3)));
        Clock.NowMs = T + 60_000;
        await Store.CommitAsync(CounterCommand.Decrement("a", 1));

        await ReopenAsync();

        Assert.Equal([new(Minute, 5, 0, 0, 5), new(Minute + 60_000, 0, 1, 0, 4)], await ReadAsync("a", HistoryInterval.Minute));
        Assert.Equal([new HistoryBucket(Day, 0, 0, 1, 3)], await ReadAsync("b", HistoryInterval.Day));
    }

    [Fact]
    public async Task WithHistoryOffADeletionStillDeletesTheHistoryOfBefore()
    {
        await Store.CommitAsync(CounterCommand.Increment("a", 5));
        await ReopenAsync(new HistoryOptions { Enabled = false });
        await Store.CommitAsync(CounterCommand.Delete("a"), CounterCommand.Increment("a", 1));
        await ReopenAsync();

        foreach (var interval in HistoryIntervals.All)
        {
            Assert.Empty(await ReadAsync("a", interval));
        }
    }
}

public sealed class MemoryHistoryTests : HistoryStoreContractTests
{
    private protected override ICounterStore CreateStore(HistoryOptions? history) => StoreTesting.Create("memory", DataDir, Clock, history: history);
}

public sealed class SqliteHistoryTests : PersistentHistoryStoreContractTests
{
    private protected override ICounterStore CreateStore(HistoryOptions? history) => StoreTesting.Create("sqlite", DataDir, Clock, history: history);

    [Fact]
    public async Task AFileFromBeforeHistoryGainsItsTable()
    {
        await Store.CommitAsync(CounterCommand.Increment("a", 1));
        await Store.DisposeAsync();
        using (var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(DataDir, "tally.db")};Pooling=False"))
        {
            connection.Open();
            using var command = connection.CreateCommand();
            // A version-4 file: neither history (5) nor the alert tables (6) nor the history log (7).
            command.CommandText = """
                DROP TABLE history; DROP TABLE alerts; DROP TABLE alert_states; DROP TABLE alert_outbox; DROP TABLE alert_deliveries;
                DROP TABLE history_log; DROP TABLE history_folded;
                UPDATE tally_schema SET version = 4;
                """;
            command.ExecuteNonQuery();
        }

        Store = CreateStore(null);
        await Store.OpenAsync(CancellationToken.None);
        await Store.CommitAsync(CounterCommand.Increment("a", 2));

        Assert.Equal(3, (await Store.GetAsync("a"))!.Value);
        Assert.Equal([new HistoryBucket(Minute, 2, 0, 0, 3)], await ReadAsync("a", HistoryInterval.Minute));
    }

    /// <summary>
    /// The history log (SqliteHistory) folded while commits go on: the files as a kill would leave them after any
    /// commit, in the middle of a fold cycle too, open to exactly the buckets the running store answers.
    /// </summary>
    [Fact]
    public async Task AKillInTheMiddleOfAFoldNeitherLosesNorRepeatsABucket()
    {
        // CounterLogFoldAfter 5: a fold cycle from 25 logged counters (or 50 rows) on, 9 counters per commit of 4.
        await Store.DisposeAsync();
        Store = CreateSqlite(DataDir, Clock, foldAfter: 5);
        await Store.OpenAsync(CancellationToken.None);
        var names = Enumerable.Range(0, 40).Select(i => $"c{i:D2}").ToArray();
        var checkedMidFold = 0;
        for (var commit = 0; commit < 60; commit++)
        {
            Clock.NowMs = T + commit * 20_000L;
            await Store.CommitAsync([.. Enumerable.Range(0, 4).Select(i => i == 3 && commit % 5 == 4
                ? CounterCommand.Decrement(names[(commit * 7 + i) % names.Length], 2)
                : CounterCommand.Increment(names[(commit * 7 + i) % names.Length], i + 1))]);

            using var crashed = new TempDirectory();
            foreach (var file in Directory.GetFiles(DataDir, "tally.db*"))
            {
                File.Copy(file, Path.Combine(crashed.Path, Path.GetFileName(file)));
            }
            if (QueryCount(crashed.Path, "SELECT count(*) FROM history_folded") == 0 && commit % 10 != 9)
            {
                continue; // between cycles: checked every tenth commit only
            }
            checkedMidFold += QueryCount(crashed.Path, "SELECT count(*) FROM history_folded") > 0 ? 1 : 0;
            var reopened = CreateSqlite(crashed.Path, Clock, foldAfter: 5);
            await reopened.OpenAsync(CancellationToken.None);
            try
            {
                foreach (var name in names)
                {
                    foreach (var interval in HistoryIntervals.All)
                    {
                        Assert.Equal(await ReadAsync(name, interval),
                            await reopened.ReadHistoryAsync(name, interval, 0, long.MaxValue, CancellationToken.None));
                    }
                }
            }
            finally
            {
                await reopened.DisposeAsync();
            }
            // Opened (the whole log folded) and closed: nothing left in the log.
            Assert.Equal(0, QueryCount(crashed.Path, "SELECT count(*) FROM history_log"));
        }
        Assert.True(checkedMidFold >= 3, $"Only {checkedMidFold} copies were taken in the middle of a fold cycle.");
        Assert.Equal(0, QueryCount(DataDir, "SELECT count(*) FROM history_log WHERE seq <= 20"));

        foreach (var name in names)
        {
            var net = (await ReadAsync(name, HistoryInterval.Day)).Sum(bucket => bucket.Increments - bucket.Decrements);
            Assert.Equal((await Store.GetAsync(name))?.Value ?? 0, net);
        }
    }

    /// <summary>
    /// A prune while the pruned buckets are still in the history log: neither the fold of a clean stop (then the start)
    /// nor the fold in a backup's copy brings them back.
    /// </summary>
    [Fact]
    public async Task FoldingTheLogNeverBringsBackAPrunedBucket()
    {
        var retention = new HistoryOptions { MinuteRetentionHours = 1 };
        await ReopenAsync(retention);
        await Store.CommitAsync(CounterCommand.Increment("a", 1));
        Clock.NowMs = T + HistoryIntervals.HourMs;
        await Store.CommitAsync(CounterCommand.Increment("a", 2));
        Clock.NowMs = T + HistoryIntervals.HourMs + 30 * HistoryIntervals.MinuteMs;
        await Store.MaintainAsync(CancellationToken.None); // prunes the first minute; commits just went on, so no fold yet
        Assert.Equal(2, QueryCount(DataDir, "SELECT count(*) FROM history_log"));
        var kept = new HistoryBucket(Minute + HistoryIntervals.HourMs, 2, 0, 0, 3);
        Assert.Equal([kept], await ReadAsync("a", HistoryInterval.Minute));

        using var copy = new TempDirectory();
        await ((IBackupSource)Store).BackupToAsync(Path.Combine(copy.Path, "tally.db"), CancellationToken.None);
        var restored = StoreTesting.Create("sqlite", copy.Path, Clock, history: retention);
        await restored.OpenAsync(CancellationToken.None);
        try
        {
            Assert.Equal([kept], await restored.ReadHistoryAsync("a", HistoryInterval.Minute, 0, long.MaxValue, CancellationToken.None));
        }
        finally
        {
            await restored.DisposeAsync();
        }

        await ReopenAsync(retention);
        Assert.Equal([kept], await ReadAsync("a", HistoryInterval.Minute));
        Assert.Equal(1, QueryCount(DataDir, $"SELECT count(*) FROM history WHERE name = 'a' AND period = {(int)HistoryInterval.Minute}"));
        Assert.Equal([new HistoryBucket(Day, 3, 0, 0, 3)], await ReadAsync("a", HistoryInterval.Day));
    }

    /// <summary>Upkeep folds the history log once commits pause (not while they go on, which fold as they go).</summary>
    [Fact]
    public async Task AnIdleStoreFoldsItsHistoryLog()
    {
        await Store.CommitAsync(CounterCommand.Increment("a", 5), CounterCommand.Increment("b", 1));
        Clock.NowMs = T + 60_000;
        await Store.CommitAsync(CounterCommand.Decrement("a", 2));
        var before = await Task.WhenAll(HistoryIntervals.All.Select(interval => ReadAsync("a", interval)));

        await Store.MaintainAsync(CancellationToken.None);
        Assert.Equal(2, QueryCount(DataDir, "SELECT count(*) FROM history_log"));
        await Store.MaintainAsync(CancellationToken.None);
        Assert.Equal(0, QueryCount(DataDir, "SELECT count(*) FROM history_log"));
        Assert.Equal(4, QueryCount(DataDir, "SELECT count(*) FROM history WHERE name = 'a'")); // 2 minutes, 1 hour, 1 day

        Assert.Equal(before, await Task.WhenAll(HistoryIntervals.All.Select(interval => ReadAsync("a", interval))));
        Assert.Equal([new HistoryBucket(Day, 1, 0, 0, 1)], await ReadAsync("b", HistoryInterval.Day));
    }

    private static long QueryCount(string dataDir, string sql)
    {
        using var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(dataDir, "tally.db")};Mode=ReadOnly;Pooling=False");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return (long)command.ExecuteScalar()!;
    }
}

/// <summary>
/// Durability=async: history is acknowledged with the change and read from memory over the file until the flush writes
/// it with the counters. (A store closed without flushing loses its unflushed changes; the pipeline flushes before closing.)
/// </summary>
public sealed class SqliteAsyncHistoryTests : PersistentHistoryStoreContractTests
{
    private protected override ICounterStore CreateStore(HistoryOptions? history) =>
        StoreTesting.Create("sqlite", DataDir, Clock, DurabilityMode.Async, history);

    [Fact]
    public async Task UnflushedHistoryIsAnsweredAndTheFlushWritesItWithTheCounters()
    {
        await Store.CommitAsync(CounterCommand.Increment("a", 5));
        await Store.FlushAsync(CancellationToken.None);
        await Store.CommitAsync(CounterCommand.Increment("a", 2));
        await Store.CommitAsync(CounterCommand.Delete("b"), CounterCommand.Increment("b", 1));
        Assert.NotNull(Store.UnflushedSince());

        Assert.Equal([new HistoryBucket(Minute, 7, 0, 0, 7)], await ReadAsync("a", HistoryInterval.Minute));
        await Store.CommitAsync(CounterCommand.Delete("a"), CounterCommand.Decrement("a", 1));
        Assert.Equal([new HistoryBucket(Minute, 0, 1, 0, -1)], await ReadAsync("a", HistoryInterval.Minute));

        await ReopenAsync();
        Assert.Equal([new HistoryBucket(Minute, 0, 1, 0, -1)], await ReadAsync("a", HistoryInterval.Minute));
        Assert.Equal([new HistoryBucket(Hour, 1, 0, 0, 1)], await ReadAsync("b", HistoryInterval.Hour));
    }
}
