using StackExchange.Redis;
using Tally.Server.Counters;
using Tally.Server.History;
using Tally.Server.Storage;
using Tally.Server.Storage.Redis;
using Tally.Server.Tests.History;
using Tally.Server.Tests.Infrastructure;
using Tally.Server.Tests.Storage;
using static Tally.Server.Tests.Storage.StoreTesting;

namespace Tally.Server.Tests.Redis;

/// <summary>
/// The history contract on a real Redis, where tally.lua appends one entry per commit to a log inside the commit's
/// function call, a fold adds the log to the buckets (chunk hashes that Redis expires by themselves, and an index per
/// counter for deleting them with it), and reads merge the unfolded log.
/// </summary>
[Trait("Layer", "Process")]
public sealed class RedisHistoryTests(RedisFixture redis) : PersistentHistoryStoreContractTests, IClassFixture<RedisFixture>
{
    private RedisStores _stores = null!;

    public override async Task InitializeAsync()
    {
        _stores = new RedisStores(await redis.ResetAsync());
        await base.InitializeAsync();
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        await _stores.DisposeAsync();
    }

    private protected override ICounterStore CreateStore(HistoryOptions? history) => _stores.Create(Clock, history: history);

    /// <summary>
    /// Redis prunes by itself: each chunk lives until its last bucket is past the retention (by Redis's clock, relative to
    /// the write), and what is past the retention by Tally's clock is not answered meanwhile.
    /// </summary>
    [Fact]
    public override async Task UpkeepPrunesBucketsPastTheirRetention()
    {
        await Store.CommitAsync(CounterCommand.Increment("a", 1));
        await FoldAllAsync();
        await using var connection = await ConnectionMultiplexer.ConnectAsync(_stores.Configuration);
        var database = connection.GetDatabase();

        // Minute chunk of 22:00–23:00: until 23:00 + 48 h + a minute; written at 22:13:20.
        var minuteTtl = await database.KeyTimeToLiveAsync($"tally:h:m:{Hour}:a");
        var expected = TimeSpan.FromMilliseconds(Hour + HistoryIntervals.HourMs + 48 * HistoryIntervals.HourMs + HistoryIntervals.MinuteMs - T);
        Assert.InRange(minuteTtl!.Value, expected - TimeSpan.FromSeconds(10), expected);
        // Day chunk: 30 days of days from its start, then 5 × 366 days and a day.
        var dayChunk = HistoryIntervals.Floor(Day, 30 * HistoryIntervals.DayMs);
        var dayTtl = await database.KeyTimeToLiveAsync($"tally:h:d:{dayChunk}:a");
        expected = TimeSpan.FromMilliseconds(dayChunk + 31 * HistoryIntervals.DayMs + 5 * 366 * HistoryIntervals.DayMs - T);
        Assert.InRange(dayTtl!.Value, expected - TimeSpan.FromSeconds(10), expected);
        // The index lives as long as the longest-lived chunk.
        Assert.InRange((await database.KeyTimeToLiveAsync("tally:hk:a"))!.Value, expected - TimeSpan.FromSeconds(10), expected);

        // Past the retention by Tally's clock: not answered by the API, which reads from the oldest bucket kept.
        Clock.NowMs = T + 48 * HistoryIntervals.HourMs + 30 * HistoryIntervals.MinuteMs;
        var kept = new HistoryOptions().OldestKept(HistoryInterval.Minute, Clock.NowMs);
        Assert.Empty(await Store.ReadHistoryAsync("a", HistoryInterval.Minute, kept, long.MaxValue, CancellationToken.None));
        Assert.Single(await ReadAsync("a", HistoryInterval.Day));
    }

    [Fact]
    public async Task DeletingACounterDeletesEveryHistoryKeyItHad()
    {
        await Store.CommitAsync(CounterCommand.Increment("a", 1), CounterCommand.Increment("b", 1));
        Clock.NowMs = T + 3 * HistoryIntervals.HourMs;
        await Store.CommitAsync(CounterCommand.Increment("a", 1));
        await FoldAllAsync();
        await using var connection = await ConnectionMultiplexer.ConnectAsync(_stores.Configuration);
        var server = connection.GetServer(connection.GetEndPoints()[0]);
        // Two minute chunks (22:00, 01:00), two hour chunks (two days), one chunk of 30 days, and the index.
        Assert.Equal(6, server.Keys(pattern: "tally:h*:a").Count());

        await Store.CommitAsync(CounterCommand.Delete("a"));
        await FoldAllAsync();

        Assert.Empty(server.Keys(pattern: "tally:h*:a"));
        Assert.Equal(4, server.Keys(pattern: "tally:h*:b").Count());
    }

    [Fact]
    public async Task AfterRedisIsKilledMidLoadTheHistoryStillAddsUpToEveryValue()
    {
        await using var server = await RedisServer.StartNewAsync();
        await using (var before = new RedisStores(server.ConfigurationString))
        {
            var store = before.Create(Clock);
            await store.OpenAsync(CancellationToken.None);
            var committed = await HistoryCrash.CommitUntilKilledAsync(store, Clock, killAfter: 200, server.KillAsync);
            Assert.InRange(committed, 200, 20_000);
        }

        await server.StartAsync();
        await using var after = new RedisStores(server.ConfigurationString);
        var restarted = after.Create(Clock);
        await restarted.OpenAsync(CancellationToken.None);
        await HistoryCrash.AssertAddsUpAsync(restarted, "after Redis was killed and restarted");
    }

    [Fact]
    public async Task ACommitFromATallyOlderThanHistoryStillApplies()
    {
        // During a rolling upgrade, an older instance's commit document has no "history": it changes the counter, records none.
        await using var connection = await ConnectionMultiplexer.ConnectAsync(_stores.Configuration);
        var database = connection.GetDatabase();
        var document = $$"""
            {"now":"{{T}}","retention":"86400000","maxCounters":"1000","recordBytes":"65536",
             "requests":[{"batch":false,"atomic":false,"ops":[["i","old","3",false]]}]}
            """;
        await database.ExecuteAsync("FCALL", "tally_v1_commit", 0, document);

        Assert.Equal(3, (await Store.GetAsync("old"))!.Value);
        Assert.Empty(await ReadAsync("old", HistoryInterval.Minute));
    }

    /// <summary>
    /// A commit appends one entry to the log, however many counters it changed, and writes no bucket; reads are exact
    /// from the log alone, and the same once upkeep has folded it (not right after a commit: only once commits stopped).
    /// </summary>
    [Fact]
    public async Task ACommitAppendsOneLogEntryAndReadsAreExactBeforeAnyFold()
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync(_stores.Configuration);
        var database = connection.GetDatabase();
        var server = connection.GetServer(connection.GetEndPoints()[0]);
        // Two minutes, 3 s apart: less than the background fold's interval, so only upkeep folds here.
        Clock.NowMs = Minute + 58_000;
        await Store.CommitAsync(CounterCommand.Increment("a", 5), CounterCommand.Increment("b", 1), CounterCommand.Decrement("a", 2));
        Clock.NowMs = Minute + 61_000;
        await Store.CommitAsync(CounterCommand.Decrement("a", 1), CounterCommand.Put("b", Fields(value: 7)), CounterCommand.Get("a"));
        await Store.CommitAsync(CounterCommand.Get("a")); // changes nothing: no entry

        Assert.Equal(2, await LogLengthAsync()); // an entry per commit that changed something, however many counters
        Assert.Empty(server.Keys(pattern: "tally:h:*"));
        Assert.Equal([new(Minute, 5, 2, 0, 3), new(Minute + 60_000, 0, 1, 0, 2)], await ReadAsync("a", HistoryInterval.Minute));
        Assert.Equal([new HistoryBucket(Hour, 5, 3, 0, 2)], await ReadAsync("a", HistoryInterval.Hour));
        Assert.Equal([new HistoryBucket(Day, 1, 0, 1, 7)], await ReadAsync("b", HistoryInterval.Day));
        Assert.Equal([new HistoryBucket(Minute + 60_000, 0, 1, 0, 2)],
            await Store.ReadHistoryAsync("a", HistoryInterval.Minute, Minute + 1, long.MaxValue, CancellationToken.None));
        var before = await ReadAllAsync(["a", "b"]);

        var logged = await LogLengthAsync();
        await Store.MaintainAsync(CancellationToken.None); // right after commits: no fold yet
        await ((RedisCounterStore)Store).FoldUnderWay;
        Assert.Equal(logged, await LogLengthAsync());
        await Store.MaintainAsync(CancellationToken.None); // idle: folded in the background
        await ((RedisCounterStore)Store).FoldUnderWay;
        Assert.Equal(0, await LogLengthAsync());
        Assert.Equal(2, await database.HashLengthAsync($"tally:h:m:{Hour}:a"));
        Assert.Equal(before, await ReadAllAsync(["a", "b"]));
    }

    /// <summary>
    /// A deletion while the counter's entries are still in the log, folded or not, drops them all; what follows starts
    /// afresh. Folded one entry at a time, every read in between answers the same.
    /// </summary>
    [Fact]
    public async Task ADeletionDropsTheCountersEntriesStillInTheLog()
    {
        ((RedisCounterStore)Store).FoldEveryMs = 365 * HistoryIntervals.DayMs; // folded by the test alone
        await Store.CommitAsync(CounterCommand.Increment("a", 5), CounterCommand.Increment("keep", 1));
        await FoldAllAsync();
        Clock.NowMs = T + 60_000;
        await Store.CommitAsync(CounterCommand.Increment("a", 1), CounterCommand.Increment("keep", 2));
        await Store.CommitAsync(CounterCommand.Delete("a"));
        foreach (var interval in HistoryIntervals.All)
        {
            Assert.Empty(await ReadAsync("a", interval));
        }
        Clock.NowMs = T + 2 * 60_000;
        await Store.CommitAsync(CounterCommand.Increment("a", 2), CounterCommand.Delete("gone"));
        await Store.CommitAsync(CounterCommand.Decrement("a", 1), CounterCommand.Delete("a"), CounterCommand.Increment("a", 4));
        var expected = new HistoryBucket(Minute + 2 * 60_000, 4, 0, 0, 4);
        Assert.Equal([expected], await ReadAsync("a", HistoryInterval.Minute));
        var before = await ReadAllAsync(["a", "keep"]);

        Assert.Equal(4, await LogLengthAsync()); // the failed deletion of "gone" is no change
        var store = (RedisCounterStore)Store;
        store.FoldBytesPerRound = 1; // whole entries, at least one: a round each
        store.FoldCountersPerCall = 1;
        var rounds = 0;
        while ((await store.FoldRoundAsync(async () => Assert.Equal(before, await ReadAllAsync(["a", "keep"])))).Entries > 0)
        {
            rounds++;
            Assert.Equal(before, await ReadAllAsync(["a", "keep"]));
        }
        Assert.Equal(4, rounds);
        Assert.Equal(0, await LogLengthAsync());
        Assert.Equal(before, await ReadAllAsync(["a", "keep"]));
        Assert.Equal([expected with { Start = Day }], await ReadAsync("a", HistoryInterval.Day));
        Assert.Equal([new HistoryBucket(Day, 3, 0, 0, 3)], await ReadAsync("keep", HistoryInterval.Day));
        await using var connection = await ConnectionMultiplexer.ConnectAsync(_stores.Configuration);
        var chunk = await connection.GetDatabase().HashGetAllAsync($"tally:h:m:{Hour}:a");
        Assert.Equal([(Minute + 2 * 60_000).ToString(System.Globalization.CultureInfo.InvariantCulture)], chunk.Select(entry => entry.Name.ToString()));
    }

    /// <summary>
    /// Two instances folding one log at the same time, in small rounds, leave exactly the buckets that one instance
    /// folding the same commits leaves: a round holds a lease, so no entry is folded twice or lost.
    /// </summary>
    [Fact]
    public async Task TwoInstancesFoldingAtOnceLeaveTheSameBucketsAsOne()
    {
        var names = Enumerable.Range(0, 20).Select(i => $"f{i:D2}").ToArray();
        var alone = await CommitAndFoldAsync(names, folders: 1);
        await ResetAsync();
        var together = await CommitAndFoldAsync(names, folders: 2);

        Assert.Equal(alone.Buckets, together.Buckets);
        Assert.Equal(alone.Reads, together.Reads);
        Assert.True(together.RoundsPerFolder.All(rounds => rounds > 0), $"Rounds that folded entries, per instance: {string.Join(", ", together.RoundsPerFolder)}");
        foreach (var name in names)
        {
            var value = (await Store.GetAsync(name))?.Value ?? 0;
            var minutes = await ReadAsync(name, HistoryInterval.Minute);
            Assert.Equal(value, minutes.Sum(bucket => bucket.Increments - bucket.Decrements));
            Assert.Equal(value, minutes[^1].Value);
        }
    }

    /// <summary>
    /// A folder that stops half way through a round (an instance killed) leaves the counters it applied marked; reads
    /// stay exact meanwhile, and the instance that takes the lapsed lease finishes the round without adding those
    /// counters twice. A folder paused past its lease, which carries on after another instance finished its round,
    /// changes nothing more. Either way: the same buckets as a fold that never stopped.
    /// </summary>
    [Fact]
    public async Task AFoldLeftHalfDoneIsFinishedByAnotherInstanceWithTheSameBuckets()
    {
        var names = Enumerable.Range(0, 20).Select(i => $"f{i:D2}").ToArray();
        var alone = await CommitAndFoldAsync(names, folders: 1);
        await ResetAsync();
        var resumed = await CommitAndFoldAsync(names, folders: 1, stop: FolderStop.Killed);
        await ResetAsync();
        var paused = await CommitAndFoldAsync(names, folders: 1, stop: FolderStop.PausedPastItsLease);

        Assert.Equal(alone.Buckets, resumed.Buckets);
        Assert.Equal(alone.Reads, resumed.Reads);
        Assert.Equal(alone.Buckets, paused.Buckets);
        Assert.Equal(alone.Reads, paused.Reads);
    }

    public enum FolderStop { None, Killed, PausedPastItsLease }

    private async Task ResetAsync()
    {
        await Store.DisposeAsync();
        await _stores.DisposeAsync();
        _stores = new RedisStores(await redis.ResetAsync());
        Store = CreateStore(null);
        await Store.OpenAsync(CancellationToken.None);
    }

    /// <summary>
    /// The same 300 commits over <paramref name="names"/> across a few minutes (reads checked against the log before any
    /// fold), then folded by <paramref name="folders"/> instances at once in rounds of a few entries: every chunk hash,
    /// and the reads. With <paramref name="stop"/>, a first folder stops after three calls of its round and its lease
    /// lapses: killed, or paused while another instance folds, then carrying on.
    /// </summary>
    private async Task<(SortedDictionary<string, string> Buckets, HistoryBucket[][] Reads, int[] RoundsPerFolder)> CommitAndFoldAsync(
        string[] names, int folders, FolderStop stop = FolderStop.None)
    {
        Clock.NowMs = T;
        ((RedisCounterStore)Store).FoldEveryMs = 365 * HistoryIntervals.DayMs; // no background fold: the log is folded below
        var random = new Random(12);
        for (var commit = 0; commit < 300; commit++)
        {
            Clock.NowMs += random.Next(0, 3_000);
            await Store.CommitAsync([.. Enumerable.Range(0, random.Next(1, 6)).Select(_ =>
            {
                var name = names[random.Next(names.Length)];
                return random.Next(4) == 0 ? CounterCommand.Decrement(name, random.Next(1, 50)) : CounterCommand.Increment(name, random.Next(1, 100));
            })]);
        }
        Assert.True(await LogLengthAsync() >= 300);
        var reads = await ReadAllAsync(names);

        RedisCounterStore Folder()
        {
            var folder = (RedisCounterStore)_stores.Create(Clock);
            folder.FoldBytesPerRound = 2_000; // some dozens of entries a round
            folder.FoldCountersPerCall = 3;
            return folder;
        }
        var instances = Enumerable.Range(0, folders).Select(_ => Folder()).ToArray();
        if (stop != FolderStop.None)
        {
            await using var leaseConnection = await ConnectionMultiplexer.ConnectAsync(_stores.Configuration);
            var lapse = () => leaseConnection.GetDatabase().KeyExpireAsync("tally:hf:lease", TimeSpan.FromMilliseconds(1));
            var stopping = Folder();
            var calls = 0;
            var round = stopping.FoldRoundAsync(async () =>
            {
                Assert.Equal(reads, await ReadAllAsync(names));
                if (++calls < 3)
                {
                    return;
                }
                if (stop == FolderStop.Killed)
                {
                    throw new TimeoutException("the folder stops here");
                }
                await lapse();
                await Task.Delay(20);
                var other = Folder();
                while ((await other.FoldRoundAsync()).Left > 0)
                {
                }
                await other.DisposeAsync();
                Assert.Equal(reads, await ReadAllAsync(names));
            });
            if (stop == FolderStop.Killed)
            {
                await Assert.ThrowsAsync<TimeoutException>(() => round);
                Assert.Equal(reads, await ReadAllAsync(names));
                Assert.Equal((0, -1), await instances[0].FoldRoundAsync()); // its lease holds yet
                await lapse();
                await Task.Delay(20);
            }
            else
            {
                Assert.Equal((0, -1), await round); // carrying on after its lease lapsed, it changed nothing more
            }
            await stopping.DisposeAsync();
        }
        var rounds = new int[folders];
        using (var start = new Barrier(folders))
        {
            await Task.WhenAll(instances.Select((instance, i) => Task.Run(async () =>
            {
                start.SignalAndWait();
                while (true)
                {
                    var (entries, left) = await instance.FoldRoundAsync(() => Task.Delay(1));
                    if (entries > 0)
                    {
                        rounds[i]++;
                    }
                    if (left == 0)
                    {
                        break;
                    }
                    await Task.Delay(2); // between rounds (or while the other holds the lease): the other may take the next
                }
            })));
        }
        foreach (var instance in instances)
        {
            await instance.DisposeAsync();
        }
        Assert.Equal(reads, await ReadAllAsync(names));

        await using var connection = await ConnectionMultiplexer.ConnectAsync(_stores.Configuration);
        var database = connection.GetDatabase();
        Assert.Equal(0, await LogLengthAsync());
        var buckets = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var key in connection.GetServer(connection.GetEndPoints()[0]).Keys(pattern: "tally:h:*"))
        {
            foreach (var entry in await database.HashGetAllAsync(key))
            {
                buckets[$"{key}/{entry.Name}"] = entry.Value.ToString();
            }
        }
        Assert.True(buckets.Count > 3 * names.Length, $"Only {buckets.Count} buckets.");
        return (buckets, reads, rounds);
    }

    /// <summary>Entries in the history log (and in what revision 3's parts hold).</summary>
    private async Task<long> LogLengthAsync()
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync(_stores.Configuration);
        var database = connection.GetDatabase();
        var length = await database.ListLengthAsync("tally:hl");
        for (var part = 0; part < RedisHistory.LogParts; part++)
        {
            length += await database.ListLengthAsync($"tally:hl:{part}");
        }
        return length;
    }

    /// <summary>
    /// What a revision-3 Tally left unfolded in its log parts (tally:hl:&lt;part&gt;: per entry, a counter's deletion
    /// and/or its totals) comes before the log, in reads and in the fold, even within one minute.
    /// </summary>
    [Fact]
    public async Task WhatARevision3TallyLeftInItsLogPartsComesBeforeTheLog()
    {
        ((RedisCounterStore)Store).FoldEveryMs = 365 * HistoryIntervals.DayMs; // folded by the test alone
        await Store.CommitAsync(CounterCommand.Increment("old", 5));
        await FoldAllAsync();
        await Store.CommitAsync(CounterCommand.Increment("old", 1));
        await using var connection = await ConnectionMultiplexer.ConnectAsync(_stores.Configuration);
        var database = connection.GetDatabase();
        var entry = (string)(await database.ListLeftPopAsync("tally:hl"))!;
        Assert.EndsWith("|;old,1,0,0,6;", entry);
        // As revision 3 logged a commit that deleted the counter and made it again with 3, in the same minute.
        await database.ListRightPushAsync($"tally:hl:{RedisHistory.LogPartOf("old")}", entry[..(entry.IndexOf('|') + 1)] + ";!old;old,3,0,0,3;");
        await Store.CommitAsync(CounterCommand.Increment("old", 2));

        Assert.Equal([new HistoryBucket(Minute, 5, 0, 0, 8)], await ReadAsync("old", HistoryInterval.Minute));
        var before = await ReadAllAsync(["old"]);
        await FoldAllAsync();
        Assert.Equal(0, await LogLengthAsync());
        Assert.Equal(before, await ReadAllAsync(["old"]));
    }

    /// <summary>Sums past 2^53 and up to the saturation at 2^63-1, added in the instance and in Redis, fold after fold.</summary>
    [Fact]
    public async Task SumsSaturateAcrossFolds()
    {
        ((RedisCounterStore)Store).FoldEveryMs = 365 * HistoryIntervals.DayMs;
        await Store.CommitAsync(
            CounterCommand.Increment("a", long.MaxValue), CounterCommand.Decrement("a", long.MaxValue),
            CounterCommand.Increment("a", long.MaxValue), CounterCommand.Decrement("a", long.MaxValue - 1));
        await Store.CommitAsync(CounterCommand.Increment("b", 1L << 53), CounterCommand.Increment("b", 3));
        await FoldAllAsync();
        await Store.CommitAsync(CounterCommand.Increment("a", long.MaxValue - 1), CounterCommand.Decrement("a", 5));
        await Store.CommitAsync(CounterCommand.Increment("b", 1L << 53));
        var expected = new[] { new HistoryBucket(Minute, long.MaxValue, long.MaxValue, 0, long.MaxValue - 5) };
        Assert.Equal(expected, await ReadAsync("a", HistoryInterval.Minute));
        Assert.Equal([new HistoryBucket(Minute, (1L << 54) + 3, 0, 0, (1L << 54) + 3)], await ReadAsync("b", HistoryInterval.Minute));
        await FoldAllAsync();
        Assert.Equal(expected, await ReadAsync("a", HistoryInterval.Minute));
        Assert.Equal([new HistoryBucket(Minute, (1L << 54) + 3, 0, 0, (1L << 54) + 3)], await ReadAsync("b", HistoryInterval.Minute));
    }

    /// <summary>
    /// What a revision-3 instance reads during an upgrade (tally_v1_history_log): per record of its counter, the entry's
    /// header and "!" or the record's sums; a counter's changes in one commit come added up.
    /// </summary>
    [Fact]
    public async Task TheLogFunctionThatRevision3InstancesReadGivesTheCountersRecords()
    {
        ((RedisCounterStore)Store).FoldEveryMs = 365 * HistoryIntervals.DayMs;
        await Store.CommitAsync(CounterCommand.Increment("a", 1), CounterCommand.Increment("ab", 2), CounterCommand.Increment("a", 3));
        await Store.CommitAsync(CounterCommand.Delete("a"), CounterCommand.Increment("a", 5));
        await using var connection = await ConnectionMultiplexer.ConnectAsync(_stores.Configuration);
        async Task<string[]> PiecesAsync(string name) =>
            [.. ((RedisValue[])(await connection.GetDatabase().ExecuteAsync("FCALL_RO", "tally_v1_history_log", 0, name))!)
                .Select(piece => piece.ToString()[(piece.ToString().IndexOf('|') + 1)..])];

        Assert.Equal(["4,0,0,4", "!", "5,0,0,5"], await PiecesAsync("a"));
        Assert.Equal(["2,0,0,2"], await PiecesAsync("ab"));
    }

    /// <summary>A read finds its counter's records among names that contain it, or that it contains.</summary>
    [Fact]
    public async Task AReadTakesOnlyItsOwnCountersRecordsFromTheLog()
    {
        ((RedisCounterStore)Store).FoldEveryMs = 365 * HistoryIntervals.DayMs;
        string[] names = ["a", "ab", "b.a", "a:1", "xa", "a-"];
        await Store.CommitAsync([.. names.Select((name, i) => CounterCommand.Increment(name, i + 1))]);
        await Store.CommitAsync(CounterCommand.Delete("ab"), CounterCommand.Increment("a", 10), CounterCommand.Increment("ab", 7));
        for (var i = 0; i < names.Length; i++)
        {
            var expected = names[i] switch { "a" => 11, "ab" => 7, _ => i + 1 };
            Assert.Equal(expected, (await ReadAsync(names[i], HistoryInterval.Minute)).Single().Increments);
        }
        var before = await ReadAllAsync(names);
        await FoldAllAsync();
        Assert.Equal(before, await ReadAllAsync(names));
    }

    /// <summary>
    /// Instances' clocks differ a little, so a commit logged later may carry an earlier minute: the hour's and day's value
    /// is still the one written last, folded or not.
    /// </summary>
    [Fact]
    public async Task TheValueLoggedLastWinsAfterTheFoldEvenUnderAnEarlierMinute()
    {
        Clock.NowMs = Minute + 61_000;
        await Store.CommitAsync(CounterCommand.Increment("skew", 5));
        Clock.NowMs = Minute + 1_000; // the next commit's clock is a minute behind
        await Store.CommitAsync(CounterCommand.Increment("skew", 1));
        var before = await ReadAllAsync(["skew"]);

        await FoldAllAsync();

        Assert.Equal(before, await ReadAllAsync(["skew"]));
        Assert.Equal([new HistoryBucket(Hour, 6, 0, 0, 6)], await ReadAsync("skew", HistoryInterval.Hour));
    }

    /// <summary>Folds the whole log (as the background fold and idle upkeep do).</summary>
    private async Task FoldAllAsync()
    {
        var store = (RedisCounterStore)Store;
        await store.FoldUnderWay; // a background fold holds the lease until it ends
        Assert.True(await store.FoldToEndAsync());
        // Folded indeed (a failing fold is logged, not thrown, and reads are exact from the log alone).
        Assert.Equal(0, await LogLengthAsync());
        await using var connection = await ConnectionMultiplexer.ConnectAsync(_stores.Configuration);
        Assert.Equal(0, await connection.GetDatabase().KeyExistsAsync(["tally:hf:lease", "tally:hf:k", "tally:hf:done"]));
    }

    private async Task<HistoryBucket[][]> ReadAllAsync(string[] names) =>
        await Task.WhenAll(names.SelectMany(name => HistoryIntervals.All.Select(async interval => (await ReadAsync(name, interval)).ToArray())));
}
