using Tally.Server.Counters;
using Tally.Server.Storage;
using Tally.Server.Tests.Infrastructure;
using Tally.Server.Tests.Quotas;
using static Tally.Server.Tests.Storage.StoreTesting;

namespace Tally.Server.Tests.Storage;

/// <summary>What every store must do, whatever keeps the data. Run against each store below.</summary>
public abstract class CounterStoreContractTests : IAsyncLifetime
{
    private protected const long T1 = 1_700_000_000_000;
    private protected const long T2 = 1_700_000_005_000;

    private readonly TempDirectory _dataDir = new();

    private protected ManualClock Clock { get; } = new(T1);

    private protected ICounterStore Store { get; set; } = null!;

    private protected string DataDir => _dataDir.Path;

    private protected abstract string Kind { get; }

    public virtual async Task InitializeAsync()
    {
        Store = CreateStore();
        await Store.OpenAsync(CancellationToken.None);
    }

    public virtual async Task DisposeAsync()
    {
        await Store.DisposeAsync();
        _dataDir.Dispose();
    }

    /// <summary>A new, unopened store of this kind on this test's data (directory or database).</summary>
    private protected virtual ICounterStore CreateStore() => StoreTesting.Create(Kind, DataDir, Clock);

    /// <summary>Closes the store and opens a new one of the same kind on the same data.</summary>
    private protected async Task ReopenAsync()
    {
        await Store.DisposeAsync();
        Store = CreateStore();
        await Store.OpenAsync(CancellationToken.None);
    }

    [Fact]
    public async Task GetMissingReturnsNull() => Assert.Null(await Store.GetAsync("nothing"));

    [Fact]
    public async Task CommittedIncrementIsVisibleWithItsTimestamps()
    {
        var results = await Store.CommitAsync(CounterCommand.Increment("a", 3));
        Assert.True(results[0].Succeeded);
        Assert.Equal(new Counter("a", 3, 0, null, null, 1, T1, T1), await Store.GetAsync("a"));
    }

    [Fact]
    public async Task BatchAppliesCommandsInOrderOnTheSameCounter()
    {
        var results = await Store.CommitAsync(
            CounterCommand.Increment("a", 1), CounterCommand.Increment("a", 2), CounterCommand.Decrement("a", 1), CounterCommand.Get("a"));
        Assert.Equal([1L, 3, 2, 2], results.Select(r => r.Counter!.Value));
        Assert.Equal([1L, 2, 3, 3], results.Select(r => r.Counter!.Version));
        Assert.Equal([true, true, true, false], results.Select(r => r.Changed));
        Assert.Equal(new Counter("a", 2, 0, null, null, 3, T1, T1), await Store.GetAsync("a"));
    }

    [Fact]
    public async Task LaterCommandInABatchSeesTheBoundsSetEarlierInIt()
    {
        var results = await Store.CommitAsync(
            CounterCommand.Put("b", Fields(value: 1, max: 2)), CounterCommand.Increment("b", 1), CounterCommand.Increment("b", 1));
        Assert.Equal([CommandStatus.Created, CommandStatus.Ok, CommandStatus.Failed], results.Select(r => r.Status));
        Assert.Equal(ErrorCodes.OutOfRange, results[2].Error!.Code);
        Assert.Equal(2, results[2].Error!.Current!.Value);
        Assert.Equal(2, (await Store.GetAsync("b"))!.Value);
    }

    [Fact]
    public async Task FailedCommandInABatchLeavesTheOthersApplied()
    {
        var results = await Store.CommitAsync(
            CounterCommand.Increment("a", 1), CounterCommand.Reset("missing"), CounterCommand.Decrement("c", long.MaxValue), CounterCommand.Decrement("c", 2));
        Assert.Equal([true, false, true, false], results.Select(r => r.Succeeded));
        Assert.Equal(1, (await Store.GetAsync("a"))!.Value);
        Assert.Null(await Store.GetAsync("missing"));
        Assert.Equal(new Counter("c", -long.MaxValue, 0, null, null, 1, T1, T1), await Store.GetAsync("c"));
    }

    [Fact]
    public async Task BatchOfReadsAndFailuresChangesNothing()
    {
        await Store.CommitAsync(CounterCommand.Put("a", Fields(value: 5, max: 5)));
        var before = await Store.GetAsync("a");
        Clock.NowMs = T2;
        var results = await Store.CommitAsync(CounterCommand.Get("a"), CounterCommand.Increment("a", 1), CounterCommand.Get("nothing"));
        Assert.Equal([CommandStatus.Ok, CommandStatus.Failed, CommandStatus.Failed], results.Select(r => r.Status));
        Assert.Equal(before, await Store.GetAsync("a"));
        Assert.Equal(["a"], await Store.ListNamesAsync());
    }

    [Fact]
    public async Task DeleteThenRecreateInOneBatchStartsAFreshCounter()
    {
        await Store.CommitAsync(CounterCommand.Put("a", Fields(value: 5, initial: 2, min: 0, max: 10)));
        Clock.NowMs = T2;
        var results = await Store.CommitAsync(CounterCommand.Delete("a"), CounterCommand.Increment("a", 1));
        Assert.Equal([CommandStatus.Deleted, CommandStatus.Ok], results.Select(r => r.Status));
        Assert.Equal(new Counter("a", 1, 0, null, null, 1, T2, T2), await Store.GetAsync("a"));
    }

    [Fact]
    public async Task CreateThenDeleteInOneBatchLeavesNothing()
    {
        await Store.CommitAsync(CounterCommand.Increment("x", 1), CounterCommand.Delete("x"));
        Assert.Null(await Store.GetAsync("x"));
        Assert.Empty(await Store.ListNamesAsync());
    }

    [Fact]
    public async Task DeletedCounterIsGoneFromGetAndList()
    {
        await Store.CommitAsync(CounterCommand.Increment("a", 1), CounterCommand.Increment("b", 1));
        await Store.CommitAsync(CounterCommand.Delete("a"));
        Assert.Null(await Store.GetAsync("a"));
        Assert.Equal(["b"], await Store.ListNamesAsync());
    }

    [Fact]
    public async Task ListIsInOrdinalNameOrder()
    {
        string[] names = ["b", "B", "a", "a.1", "a-1", "a:1", "a_1", "A", "0", "aa", "a1", "Z"];
        await Store.CommitAsync([.. names.Select(name => CounterCommand.Increment(name, 1))]);
        Assert.Equal(names.Order(StringComparer.Ordinal), await Store.ListNamesAsync());
    }

    [Fact]
    public async Task ListFiltersByPrefixCaseSensitively()
    {
        await Store.CommitAsync([.. new[] { "a", "ab", "ab:1", "abc", "Ab", "b", "aB" }.Select(name => CounterCommand.Increment(name, 1))]);
        Assert.Equal(["ab", "ab:1", "abc"], await Store.ListNamesAsync("ab"));
        Assert.Equal(["a", "aB", "ab", "ab:1", "abc"], await Store.ListNamesAsync("a"));
        Assert.Empty(await Store.ListNamesAsync("c"));
    }

    [Fact]
    public async Task ListStartsStrictlyAfterTheGivenName()
    {
        await Store.CommitAsync([.. new[] { "a", "b", "c", "d" }.Select(name => CounterCommand.Increment(name, 1))]);
        Assert.Equal(["c", "d"], await Store.ListNamesAsync(after: "b"));
        Assert.Equal(["c", "d"], await Store.ListNamesAsync(after: "bb")); // a name that does not exist
        Assert.Empty(await Store.ListNamesAsync(after: "d"));
    }

    [Fact]
    public async Task ListAfterANameBeforeThePrefixStartsAtThePrefix()
    {
        await Store.CommitAsync([.. new[] { "a1", "b1", "b2", "c1" }.Select(name => CounterCommand.Increment(name, 1))]);
        Assert.Equal(["b1", "b2"], await Store.ListNamesAsync("b", after: "a1"));
        Assert.Equal(["b2"], await Store.ListNamesAsync("b", after: "b1"));
        Assert.Empty(await Store.ListNamesAsync("b", after: "c"));
    }

    [Fact]
    public async Task ListReturnsAtMostTheLimit()
    {
        await Store.CommitAsync([.. Enumerable.Range(0, 10).Select(i => CounterCommand.Increment($"n{i}", 1))]);
        Assert.Equal(["n0", "n1", "n2"], await Store.ListNamesAsync(limit: 3));
        Assert.Equal(["n3"], await Store.ListNamesAsync(after: "n2", limit: 1));
    }

    [Fact]
    public async Task ListPagesThroughThousandsOfNamesAfterInsertsAndDeletes()
    {
        // Enough names, in random order, to split and empty the name index's chunks.
        var random = new Random(42);
        var names = Enumerable.Range(0, 3000).Select(i => $"k{i:x}").ToArray();
        random.Shuffle(names);
        foreach (var chunk in names.Chunk(500))
        {
            await Store.CommitAsync([.. chunk.Select(name => CounterCommand.Increment(name, 1))]);
        }
        var deleted = names.Where((_, i) => i % 3 == 0 || (i > 1000 && i < 1800)).ToHashSet();
        await Store.CommitAsync([.. deleted.Select(name => CounterCommand.Delete(name))]);

        var expected = names.Where(name => !deleted.Contains(name)).Order(StringComparer.Ordinal).ToList();
        foreach (var limit in new[] { 1, 7, 100, 1000 })
        {
            var seen = new List<string>();
            string? after = null;
            while (true)
            {
                var page = await Store.ListNamesAsync(after: after, limit: limit);
                Assert.True(page.Count <= limit);
                seen.AddRange(page);
                if (page.Count < limit)
                {
                    break;
                }
                after = page[^1];
            }
            Assert.Equal(expected, seen);
        }
    }

    [Fact]
    public async Task ListItemsCarryTheCommittedState()
    {
        await Store.CommitAsync(CounterCommand.Put("a", Fields(value: 4, initial: 1, min: -1, max: 9)), CounterCommand.Increment("a", 2));
        var listed = Assert.Single(await Store.ListAsync("", null, 10, CancellationToken.None));
        Assert.Equal(new Counter("a", 6, 1, -1, 9, 2, T1, T1), listed);
    }

    [Fact]
    public async Task AKeyAtItsCounterQuotaCannotDeleteAndRecreatePastIt()
    {
        var limited = new Tally.Server.Pipeline.Requester("key_one", 1);
        Assert.True((await Store.SendAsync(CounterCommand.Increment("y", 1), limited)).Result.Succeeded);
        await Store.SendAsync(CounterCommand.Increment("x", 1), new Tally.Server.Pipeline.Requester("key_other", null));

        var batch = Tally.Server.Pipeline.PendingRequest.For(new Tally.Server.Batch.BatchCommand(
            [CounterCommand.Delete("x"), CounterCommand.Increment("x", 1)], Atomic: true), requester: limited);
        var outcome = (await Store.CommitAsync([batch], CancellationToken.None))[0];

        Assert.Equal(ErrorCodes.CounterQuotaExceeded, outcome.Batch!.Results[1].Error?.Code);
        Assert.Equal("key_other", (await Store.GetAsync("x"))!.CreatedBy);
    }

    [Fact]
    public async Task TopIsByValueThenNameWithinThePrefixAndFollowsChanges()
    {
        await Store.CommitAsync(
            CounterCommand.Put("shop:a", Fields(value: 5)), CounterCommand.Put("shop:b", Fields(value: 9)),
            CounterCommand.Put("shop:c", Fields(value: 5)), CounterCommand.Put("shop:eu:d", Fields(value: 7)),
            CounterCommand.Put("shopping", Fields(value: 100)), CounterCommand.Put("other", Fields(value: -3)),
            CounterCommand.Put("max", Fields(value: long.MaxValue)), CounterCommand.Put("max-1", Fields(value: long.MaxValue - 1)),
            CounterCommand.Put("max-2", Fields(value: long.MaxValue - 2)), CounterCommand.Put("min", Fields(value: long.MinValue)));

        async Task<List<string>> Top(string prefix, int limit) =>
            [.. (await Store.TopAsync(prefix, limit, CancellationToken.None)).Select(counter => $"{counter.Name}={counter.Value}")];

        Assert.Equal(["shop:b=9", "shop:eu:d=7", "shop:a=5", "shop:c=5"], await Top("shop:", 10));
        Assert.Equal(["shop:b=9", "shop:eu:d=7", "shop:a=5"], await Top("shop:", 3));
        Assert.Equal(["shopping=100", "shop:b=9"], await Top("shop", 2));
        // Past 2^53 neighbouring values are one double apart or less: the order is still exact.
        Assert.Equal([$"max={long.MaxValue}", $"max-1={long.MaxValue - 1}", $"max-2={long.MaxValue - 2}", "shopping=100"], await Top("", 4));
        Assert.Equal([$"min={long.MinValue}"], await Top("min", 5));

        await Store.CommitAsync(CounterCommand.Increment("shop:a", 10), CounterCommand.Delete("shop:b"), CounterCommand.Delete("max"));
        Assert.Equal(["shop:a=15", "shop:eu:d=7", "shop:c=5"], await Top("shop:", 10));
        Assert.Equal([$"max-1={long.MaxValue - 1}"], await Top("", 1));
        Assert.Empty(await Top("nothing:", 10));
    }

    [Fact]
    public async Task StoreIsHealthyOnceOpen() =>
        Assert.True((await Store.CheckHealthAsync(CancellationToken.None)).Healthy);
}

public sealed class MemoryCounterStoreTests : CounterStoreContractTests
{
    private protected override string Kind => "memory";

    [Fact]
    public async Task MemoryStoreForgetsEverythingWhenReopened()
    {
        await Store.CommitAsync(CounterCommand.Increment("a", 1));
        await ReopenAsync();
        Assert.Null(await Store.GetAsync("a"));
    }
}

public sealed class SqliteCounterStoreTests : CounterStoreContractTests
{
    private protected override string Kind => "sqlite";

    [Fact]
    public async Task ReopenKeepsEveryFieldOfEveryCounter()
    {
        await Store.CommitAsync(
            CounterCommand.Put("bounded", Fields(value: 7, initial: 3, min: -10, max: 10)),
            CounterCommand.Put("extremes", Fields(value: long.MaxValue, initial: long.MinValue, min: long.MinValue, max: long.MaxValue)),
            CounterCommand.Decrement("low", long.MaxValue), CounterCommand.Decrement("low", 1),
            CounterCommand.Increment("plain", 1));
        Clock.NowMs = T2;
        await Store.CommitAsync(CounterCommand.Increment("bounded", 2), CounterCommand.Put("plain", Fields(max: 100)));
        var before = await Store.ListAsync("", null, 100, CancellationToken.None);

        await ReopenAsync();

        Assert.Equal(before, await Store.ListAsync("", null, 100, CancellationToken.None));
        Assert.Equal(new Counter("low", long.MinValue, 0, null, null, 2, T1, T1), await Store.GetAsync("low"));
        Assert.Equal(new Counter("bounded", 9, 3, -10, 10, 2, T1, T2), await Store.GetAsync("bounded"));
    }

    [Fact]
    public async Task ReopenDoesNotBringBackDeletedCounters()
    {
        await Store.CommitAsync(CounterCommand.Increment("a", 1), CounterCommand.Increment("b", 1));
        await Store.CommitAsync(CounterCommand.Delete("a"));
        await ReopenAsync();
        Assert.Equal(["b"], await Store.ListNamesAsync());
    }

    [Fact]
    public async Task DeleteThenRecreateInOneBatchSurvivesReopenAsTheFreshCounter()
    {
        // The batch's net change for "a" is an upsert of the new counter; the row of the deleted
        // one must not leak its creation time into the new one.
        await Store.CommitAsync(CounterCommand.Put("a", Fields(value: 5)));
        Clock.NowMs = T2;
        await Store.CommitAsync(CounterCommand.Delete("a"), CounterCommand.Increment("a", 1));
        var live = await Store.GetAsync("a");

        await ReopenAsync();

        Assert.Equal(new Counter("a", 1, 0, null, null, 1, T2, T2), live);
        Assert.Equal(live, await Store.GetAsync("a"));
    }

    [Fact]
    public async Task SecondStoreOnTheSameDataDirIsRefused()
    {
        var second = StoreTesting.Create(Kind, DataDir, Clock);
        var error = await Assert.ThrowsAsync<StoreStartupException>(() => second.OpenAsync(CancellationToken.None));
        Assert.Contains("in use", error.Message, StringComparison.Ordinal);
        await second.DisposeAsync();
        // The first store is unharmed.
        await Store.CommitAsync(CounterCommand.Increment("a", 1));
        Assert.Equal(1, (await Store.GetAsync("a"))!.Value);
    }

    [Fact]
    public async Task MissingDataDirIsCreated()
    {
        var nested = Path.Combine(DataDir, "deeper", "still");
        var store = StoreTesting.Create(Kind, nested, Clock);
        await store.OpenAsync(CancellationToken.None);
        await store.CommitAsync(CounterCommand.Increment("a", 1));
        await store.DisposeAsync();
        Assert.True(File.Exists(Path.Combine(nested, "tally.db")));
    }

    [Fact]
    public async Task FileThatIsNotSqliteIsRefusedAndLeftUntouched()
    {
        var dir = Path.Combine(DataDir, "other");
        Directory.CreateDirectory(dir);
        var file = Path.Combine(dir, "tally.db");
        await File.WriteAllTextAsync(file, "these are somebody's notes, not a database");

        var store = StoreTesting.Create(Kind, dir, Clock);
        var error = await Assert.ThrowsAsync<StoreStartupException>(() => store.OpenAsync(CancellationToken.None));
        await store.DisposeAsync();

        Assert.Contains("not a SQLite database", error.Message, StringComparison.Ordinal);
        Assert.Equal("these are somebody's notes, not a database", await File.ReadAllTextAsync(file));
    }

    [Fact]
    public async Task SqliteDatabaseOfAnotherApplicationIsRefusedAndLeftUntouched()
    {
        var dir = Path.Combine(DataDir, "other");
        Directory.CreateDirectory(dir);
        var file = Path.Combine(dir, "tally.db");
        using (var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={file};Pooling=False"))
        {
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = "CREATE TABLE invoices (id INTEGER PRIMARY KEY); INSERT INTO invoices VALUES (1);";
            command.ExecuteNonQuery();
        }
        var bytes = await File.ReadAllBytesAsync(file);

        var store = StoreTesting.Create(Kind, dir, Clock);
        var error = await Assert.ThrowsAsync<StoreStartupException>(() => store.OpenAsync(CancellationToken.None));
        await store.DisposeAsync();

        Assert.Contains("another application", error.Message, StringComparison.Ordinal);
        Assert.Equal(bytes, await File.ReadAllBytesAsync(file));
    }

    [Fact]
    public async Task DataFileFromANewerTallyIsRefused()
    {
        await Store.CommitAsync(CounterCommand.Increment("a", 1));
        await Store.DisposeAsync();
        using (var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(DataDir, "tally.db")};Pooling=False"))
        {
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = "UPDATE tally_schema SET version = 99";
            command.ExecuteNonQuery();
        }

        Store = StoreTesting.Create(Kind, DataDir, Clock);
        var error = await Assert.ThrowsAsync<StoreStartupException>(() => Store.OpenAsync(CancellationToken.None));
        Assert.Contains("newer", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AsyncDurabilityDeleteThenRecreateBeforeAFlushSurvivesReopenAsTheFreshCounter()
    {
        // With Durability=async the two changes meet in the unflushed set even across batches.
        var dir = Path.Combine(DataDir, "async");
        var store = StoreTesting.Create(Kind, dir, Clock, Tally.Server.Configuration.DurabilityMode.Async);
        await store.OpenAsync(CancellationToken.None);
        await store.CommitAsync(CounterCommand.Put("a", Fields(value: 5)));
        await store.FlushAsync(CancellationToken.None);
        Clock.NowMs = T2;
        await store.CommitAsync(CounterCommand.Delete("a"));
        await store.CommitAsync(CounterCommand.Increment("a", 1));
        await store.FlushAsync(CancellationToken.None);
        await store.DisposeAsync();

        store = StoreTesting.Create(Kind, dir, Clock, Tally.Server.Configuration.DurabilityMode.Async);
        await store.OpenAsync(CancellationToken.None);
        Assert.Equal(new Counter("a", 1, 0, null, null, 1, T2, T2), await store.GetAsync("a"));
        await store.DisposeAsync();
    }

    [Fact]
    public async Task StoreIsUnhealthyOnceClosed()
    {
        await Store.DisposeAsync();
        Assert.False((await Store.CheckHealthAsync(CancellationToken.None)).Healthy);
    }

    [Fact]
    public async Task AsyncDurabilityStoreKeepsFlushedStateAcrossReopen()
    {
        var dir = Path.Combine(DataDir, "async");
        var store = StoreTesting.Create(Kind, dir, Clock, Tally.Server.Configuration.DurabilityMode.Async);
        await store.OpenAsync(CancellationToken.None);
        await store.CommitAsync(CounterCommand.Increment("a", 5), CounterCommand.Put("b", Fields(value: 2, max: 3)));
        Assert.NotNull(store.UnflushedSince());
        await store.FlushAsync(CancellationToken.None);
        Assert.Null(store.UnflushedSince());
        await store.DisposeAsync();

        store = StoreTesting.Create(Kind, dir, Clock, Tally.Server.Configuration.DurabilityMode.Async);
        await store.OpenAsync(CancellationToken.None);
        Assert.Equal(["a", "b"], await store.ListNamesAsync());
        Assert.Equal(5, (await store.GetAsync("a"))!.Value);
        Assert.Equal(3, (await store.GetAsync("b"))!.Max);
        await store.DisposeAsync();
    }
}
