using Npgsql;
using Tally.Server.Counters;
using Tally.Server.History;
using Tally.Server.Storage;
using Tally.Server.Storage.Postgres;
using Tally.Server.Tests.History;
using Tally.Server.Tests.Infrastructure;
using Tally.Server.Tests.Storage;

namespace Tally.Server.Tests.Postgres;

/// <summary>The history contract on a real PostgreSQL: a log row written in the commit's own round trip, folded into buckets, pruned by upkeep.</summary>
[Trait("Layer", "Process")]
[Collection(PostgresCollection.Name)]
public sealed class PostgresHistoryTests(PostgresFixture postgres) : PersistentHistoryStoreContractTests
{
    private PostgresStores _stores = null!;

    public override async Task InitializeAsync()
    {
        _stores = new PostgresStores(await postgres.CreateDatabaseAsync());
        await base.InitializeAsync();
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        await _stores.DisposeAsync();
    }

    private protected override ICounterStore CreateStore(HistoryOptions? history) => _stores.Create(Clock, history: history);

    [Fact]
    public async Task AfterPostgresIsKilledMidLoadTheHistoryStillAddsUpToEveryValue()
    {
        await using var server = await PostgresServer.StartNewAsync();
        var connectionString = await server.CreateDatabaseAsync();
        await using (var before = new PostgresStores(connectionString))
        {
            var store = before.Create(Clock);
            await store.OpenAsync(CancellationToken.None);
            var committed = await HistoryCrash.CommitUntilKilledAsync(store, Clock, killAfter: 100, server.KillAsync);
            Assert.InRange(committed, 100, 10_000);
        }

        await server.StartAsync();
        // A new pool: the connections of the old one died with the server.
        await using var after = new PostgresStores(connectionString);
        var restarted = after.Create(Clock);
        await restarted.OpenAsync(CancellationToken.None);
        await HistoryCrash.AssertAddsUpAsync(restarted, "after PostgreSQL was killed and restarted");
    }

    /// <summary>A commit appends one log row, whatever it changed; upkeep folds the log into buckets, and reads answer the same before and after.</summary>
    [Fact]
    public async Task CommitsAppendToTheLogAndUpkeepFoldsItIntoTheSameBuckets()
    {
        // Two minutes, 6 s apart: less than the background fold's interval, so only upkeep folds here.
        Clock.NowMs = Minute + 55_000;
        await Store.CommitAsync(CounterCommand.Increment("a", 5), CounterCommand.Increment("b", 1), CounterCommand.Decrement("a", 2));
        Clock.NowMs = Minute + 61_000;
        await Store.CommitAsync(CounterCommand.Decrement("a", 1), CounterCommand.Put("b", StoreTestingFields(7)));
        Assert.Equal(2, await CountAsync("SELECT count(*) FROM history_log"));
        Assert.Equal(0, await CountAsync("SELECT count(*) FROM history"));
        var before = await ReadAllAsync(["a", "b"]);
        Assert.Equal([new(Minute, 5, 2, 0, 3), new(Minute + 60_000, 0, 1, 0, 2)], await ReadAsync("a", HistoryInterval.Minute));

        // Upkeep folds once commits stopped: not in the first call after a commit (a pause of a busy loop), in the next.
        await Store.MaintainAsync(CancellationToken.None);
        Assert.Equal(2, await CountAsync("SELECT count(*) FROM history_log"));
        await Store.MaintainAsync(CancellationToken.None);

        Assert.Equal(0, await CountAsync("SELECT count(*) FROM history_log"));
        Assert.Equal(4, await CountAsync("SELECT count(*) FROM history WHERE name = 'a'")); // 2 minutes, 1 hour, 1 day
        Assert.Equal(before, await ReadAllAsync(["a", "b"]));
    }

    /// <summary>Entries of a counter in the log, folded or not, before its deletion never come back; after it, they start afresh.</summary>
    [Fact]
    public async Task ADeletionDropsTheCountersEntriesStillInTheLog()
    {
        await Store.CommitAsync(CounterCommand.Increment("a", 5));
        await FoldByUpkeepAsync();
        await Store.CommitAsync(CounterCommand.Increment("a", 1));
        await Store.CommitAsync(CounterCommand.Delete("a"));
        foreach (var interval in HistoryIntervals.All)
        {
            Assert.Empty(await ReadAsync("a", interval));
        }
        await Store.CommitAsync(CounterCommand.Increment("a", 2), CounterCommand.Increment("keep", 3));
        var expected = new HistoryBucket(Day, 2, 0, 0, 2);
        Assert.Equal([expected], await ReadAsync("a", HistoryInterval.Day));

        await FoldByUpkeepAsync();
        Assert.Equal(0, await CountAsync("SELECT count(*) FROM history_log"));
        Assert.Equal([expected], await ReadAsync("a", HistoryInterval.Day));
        Assert.Equal([new HistoryBucket(Day, 3, 0, 0, 3)], await ReadAsync("keep", HistoryInterval.Day));
    }

    /// <summary>One folder at a time: while another session holds the fold lock, a fold step leaves the log alone.</summary>
    [Fact]
    public async Task AFoldWaitsForTheFoldLockAndNeverTakesItTwice()
    {
        await Store.CommitAsync(CounterCommand.Increment("a", 5));
        await using (var other = new NpgsqlConnection(_stores.ConnectionString))
        {
            await other.OpenAsync();
            await using var locking = new NpgsqlCommand($"SELECT pg_advisory_lock({PostgresCounterStore.FoldLock})", other);
            await locking.ExecuteNonQueryAsync();
            Assert.Equal(-1, (await ((PostgresCounterStore)Store).FoldStepAsync(CancellationToken.None)).Rows);
            await Store.MaintainAsync(CancellationToken.None);
            Assert.Equal(1, await CountAsync("SELECT count(*) FROM history_log"));
            // A session lock outlives a pooled connection's close: given back explicitly.
            await using var unlocking = new NpgsqlCommand($"SELECT pg_advisory_unlock({PostgresCounterStore.FoldLock})", other);
            await unlocking.ExecuteNonQueryAsync();
        }
        Assert.Equal((1, false), await ((PostgresCounterStore)Store).FoldStepAsync(CancellationToken.None));
        Assert.Equal(0, await CountAsync("SELECT count(*) FROM history_log"));
        Assert.Equal([new HistoryBucket(Minute, 5, 0, 0, 5)], await ReadAsync("a", HistoryInterval.Minute));
    }

    /// <summary>
    /// Three instances on one database commit to overlapping counters while all of them fold as fast as they can: every
    /// read in between is exact, and at the end each counter's buckets add up to its value and the last one ends at it.
    /// </summary>
    [Fact]
    public async Task SeveralInstancesFoldingWhileOthersCommitKeepEveryReadExact()
    {
        var stores = new[] { (PostgresCounterStore)Store, (PostgresCounterStore)_stores.Create(Clock), (PostgresCounterStore)_stores.Create(Clock) };
        try
        {
            await stores[1].OpenAsync(CancellationToken.None);
            await stores[2].OpenAsync(CancellationToken.None);
            var names = Enumerable.Range(0, 12).Select(i => $"m{i:D2}").ToArray();
            using var done = new CancellationTokenSource();
            var folded = 0;
            var folders = stores.Select(store => Task.Run(async () =>
            {
                while (!done.IsCancellationRequested)
                {
                    if ((await store.FoldStepAsync(CancellationToken.None)).Rows > 0)
                    {
                        Interlocked.Increment(ref folded);
                    }
                }
            })).ToArray();
            var committers = stores.Select((store, s) => Task.Run(async () =>
            {
                var random = new Random(s);
                for (var commit = 0; commit < 150; commit++)
                {
                    var commands = Enumerable.Range(0, random.Next(1, 6)).Select(_ =>
                    {
                        var name = names[random.Next(names.Length)];
                        return random.Next(3) == 0 ? CounterCommand.Decrement(name, random.Next(1, 50)) : CounterCommand.Increment(name, random.Next(1, 100));
                    }).ToArray();
                    await store.CommitAsync(commands);
                    if (commit % 10 == 0)
                    {
                        // A read while the others commit and fold: exact at some instant, so the day's sums are the value
                        // of that instant, which lies between the values just before and just after.
                        var name = names[random.Next(names.Length)];
                        var low = (await store.GetAsync(name))?.Value;
                        var day = await store.ReadHistoryAsync(name, HistoryInterval.Day, 0, long.MaxValue, CancellationToken.None);
                        Assert.True(low is null || day.Count == 1, $"{name}: {day.Count} day buckets");
                        Assert.Equal(day.Count == 0 ? 0 : day[0].Value, day.Sum(bucket => bucket.Increments - bucket.Decrements));
                    }
                }
            })).ToArray();
            await Task.WhenAll(committers);
            await done.CancelAsync();
            await Task.WhenAll(folders);
            Assert.True(folded >= 3, $"Only {folded} fold steps found something to fold.");

            foreach (var name in names)
            {
                var value = (await stores[2].GetAsync(name))?.Value ?? 0;
                var logged = await ReadAsync(name, HistoryInterval.Minute);
                await stores[1].MaintainAsync(CancellationToken.None);
                await stores[1].MaintainAsync(CancellationToken.None);
                Assert.Equal(logged, await ReadAsync(name, HistoryInterval.Minute));
                var minutes = await stores[0].ReadHistoryAsync(name, HistoryInterval.Minute, 0, long.MaxValue, CancellationToken.None);
                Assert.Equal(value, minutes.Sum(bucket => bucket.Increments - bucket.Decrements));
                Assert.Equal(value, minutes[^1].Value);
            }
            Assert.Equal(0, await CountAsync("SELECT count(*) FROM history_log"));
        }
        finally
        {
            await stores[1].DisposeAsync();
            await stores[2].DisposeAsync();
        }
    }

    /// <summary>A version-3 database (buckets upserted by commits, no log) gains the log and keeps its buckets.</summary>
    [Fact]
    public async Task ADatabaseFromBeforeTheLogGainsItAndKeepsItsBuckets()
    {
        await Store.CommitAsync(CounterCommand.Increment("a", 5));
        await FoldByUpkeepAsync();
        await Store.DisposeAsync();
        await CountAsync("SELECT count(*) FROM (SELECT 1) AS x; DROP TABLE history_log; UPDATE tally_schema SET version = 3");

        Store = CreateStore(null);
        await Store.OpenAsync(CancellationToken.None);
        Assert.Equal(PostgresSchema.CurrentVersion, await CountAsync("SELECT max(version)::bigint FROM tally_schema"));
        await Store.CommitAsync(CounterCommand.Decrement("a", 2));

        Assert.Equal(1, await CountAsync("SELECT count(*) FROM history_log"));
        Assert.Equal([new HistoryBucket(Minute, 5, 2, 0, 3)], await ReadAsync("a", HistoryInterval.Minute));
        Assert.Equal([new HistoryBucket(Day, 5, 2, 0, 3)], await ReadAsync("a", HistoryInterval.Day));
    }

    /// <summary>Upkeep twice: the first after a commit only notes that commits went on.</summary>
    private async Task FoldByUpkeepAsync()
    {
        await Store.MaintainAsync(CancellationToken.None);
        await Store.MaintainAsync(CancellationToken.None);
        Assert.Equal(0, await CountAsync("SELECT count(*) FROM history_log"));
    }

    private async Task<HistoryBucket[][]> ReadAllAsync(string[] names) =>
        await Task.WhenAll(names.SelectMany(name => HistoryIntervals.All.Select(async interval => (await ReadAsync(name, interval)).ToArray())));

    private static CounterFields StoreTestingFields(long value) => StoreTesting.Fields(value: value);

    private async Task<long> CountAsync(string sql)
    {
        await using var connection = new NpgsqlConnection(_stores.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return (long)(await command.ExecuteScalarAsync())!;
    }
}
