using Tally.Server.Configuration;
using Tally.Server.Counters;
using Tally.Server.Pipeline;
using Tally.Server.Storage;
using Tally.Server.Tests.Counters;
using Tally.Server.Tests.History;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Storage;

/// <summary>
/// Random command sequences through the real store path, in batches of several commands so
/// commands on the same counter meet inside one commit, compared step by step with
/// <see cref="CounterModel"/>. The SQLite store is also closed and reopened along the way and
/// must come back exactly as the model says. A failure names the seed, batch and command.
/// </summary>
public class StoreModelTests
{
    private const long Start = 1_700_000_000_000;

    public static TheoryData<string, string, int> Runs()
    {
        var runs = new TheoryData<string, string, int>();
        for (var seed = 1; seed <= 10; seed++)
        {
            runs.Add("memory", "sync", seed);
        }
        for (var seed = 1; seed <= 3; seed++)
        {
            runs.Add("sqlite", "sync", seed);
            runs.Add("sqlite", "async", seed);
            runs.Add("sqlite-fold5", "sync", seed);
            runs.Add("sqlite-fold5", "async", seed);
        }
        return runs;
    }

    [Theory]
    [MemberData(nameof(Runs))]
    public async Task StoreCommitsAgreeWithTheModel(string kind, string durability, int seed)
    {
        const int Steps = 2_000;
        var dataDir = new TempDirectory();
        var extraDirs = new List<TempDirectory> { dataDir };
        var clock = new ManualClock(Start);
        var mode = Enum.Parse<DurabilityMode>(durability, ignoreCase: true);
        var store = StoreTesting.Create(kind, dataDir.Path, clock, mode);
        await store.OpenAsync(CancellationToken.None);
        var model = new CounterModel();
        var generator = new CommandGenerator(seed);
        var batchSizes = new Random(seed * 7919);
        try
        {
            var step = 0;
            for (var batchNumber = 0; step < Steps; batchNumber++)
            {
                var where = $"{kind}/{durability} seed {seed}, batch {batchNumber}";
                step += await CommitBatchAndCheckAsync(store, model, generator, batchSizes, clock, where);

                if (kind.StartsWith("sqlite", StringComparison.Ordinal) && batchNumber % 60 == 59)
                {
                    await store.FlushAsync(CancellationToken.None);
                    if (batchNumber % 120 == 59)
                    {
                        // As after a crash: the files as they are on disk now, log not folded, opened by a new store.
                        var crashed = new TempDirectory();
                        extraDirs.Add(crashed);
                        foreach (var file in Directory.GetFiles(dataDir.Path, "tally.db*"))
                        {
                            File.Copy(file, Path.Combine(crashed.Path, Path.GetFileName(file)));
                        }
                        await store.DisposeAsync();
                        store = StoreTesting.Create(kind, crashed.Path, clock, mode);
                        dataDir = crashed;
                    }
                    else
                    {
                        await store.DisposeAsync();
                        store = StoreTesting.Create(kind, dataDir.Path, clock, mode);
                    }
                    await store.OpenAsync(CancellationToken.None);
                    await AssertStoreHoldsAsync(store, model, $"{where}, after reopening");
                }
            }
        }
        finally
        {
            await store.DisposeAsync();
            extraDirs.ForEach(directory => directory.Dispose());
        }
    }

    public static TheoryData<string, string, int> HistoryRuns() => new()
    {
        { "memory", "sync", 1 },
        { "memory", "sync", 2 },
        { "memory", "async", 3 },
        { "sqlite", "sync", 1 },
        { "sqlite", "async", 2 },
        { "sqlite-fold5", "sync", 3 },
        { "sqlite-fold5", "async", 4 },
    };

    /// <summary>
    /// The random model with history (<see cref="HistoryModel"/>), over a clock that crosses minutes, hours and days:
    /// every bucket as the model says, and for a counter that only ever moved by increment and decrement, buckets that
    /// add up to its value. SQLite is closed cleanly (with Durability=async: flushed first) or copied as a crash would
    /// leave it, and reopened, now and then.
    /// </summary>
    [Theory]
    [MemberData(nameof(HistoryRuns))]
    public async Task HistoryAgreesWithTheModel(string kind, string durability, int seed)
    {
        const int Steps = 1_200;
        var dataDir = new TempDirectory();
        var extraDirs = new List<TempDirectory> { dataDir };
        var clock = new ManualClock(HistoryModelRuns.Start);
        var mode = Enum.Parse<DurabilityMode>(durability, ignoreCase: true);
        var store = StoreTesting.Create(kind, dataDir.Path, clock, mode);
        await store.OpenAsync(CancellationToken.None);
        var model = new CounterModel();
        var history = new HistoryModel();
        var generator = new CommandGenerator(seed);
        var random = new Random(seed * 7919);
        try
        {
            var step = 0;
            for (var batchNumber = 0; step < Steps; batchNumber++)
            {
                var where = $"{kind}/{durability} history seed {seed}, batch {batchNumber}, at {clock.NowMs}";
                step += await HistoryModelRuns.CommitBatchAndCheckAsync(store, model, history, generator, random, clock, where);
                if (kind.StartsWith("sqlite", StringComparison.Ordinal) && batchNumber % 40 == 39)
                {
                    await store.FlushAsync(CancellationToken.None);
                    if (batchNumber % 80 == 39)
                    {
                        // As after a crash: the files as they are on disk now (flushed), opened by a new store.
                        var crashed = new TempDirectory();
                        extraDirs.Add(crashed);
                        foreach (var file in Directory.GetFiles(dataDir.Path, "tally.db*"))
                        {
                            File.Copy(file, Path.Combine(crashed.Path, Path.GetFileName(file)));
                        }
                        await store.DisposeAsync();
                        store = StoreTesting.Create(kind, crashed.Path, clock, mode);
                        dataDir = crashed;
                    }
                    else
                    {
                        await store.DisposeAsync();
                        store = StoreTesting.Create(kind, dataDir.Path, clock, mode);
                    }
                    await store.OpenAsync(CancellationToken.None);
                    await history.AssertStoreHoldsAsync(store, model, HistoryModelRuns.Names, $"{where}, after reopening");
                }
            }
            Assert.True(history.InvariantChecks >= 20, $"The invariant was checked only {history.InvariantChecks} times.");
        }
        finally
        {
            await store.DisposeAsync();
            extraDirs.ForEach(directory => directory.Dispose());
        }
    }

    [Theory]
    [InlineData("memory", 1)]
    [InlineData("memory", 2)]
    [InlineData("memory", 3)]
    [InlineData("sqlite", 1)]
    public async Task PipelineAgreesWithTheModel(string kind, int seed)
    {
        // Bursts of commands submitted without waiting, so the pipeline groups them into commits of
        // at most MaxBatchSize; the order of submission is the order of application.
        const int Steps = 2_000;
        using var dataDir = new TempDirectory();
        var clock = new ManualClock(Start);
        var options = StoreTesting.Options(dataDir.Path, DurabilityMode.Sync, maxBatchSize: 5);
        var store = StoreTesting.Create(kind, dataDir.Path, clock);
        var pipeline = StoreTesting.CreatePipeline(store, options);
        await pipeline.StartAsync(CancellationToken.None);
        var model = new CounterModel();
        var generator = new CommandGenerator(seed);
        var bursts = new Random(seed * 104729);
        try
        {
            var step = 0;
            for (var burst = 0; step < Steps; burst++)
            {
                clock.NowMs += 1;
                var size = bursts.Next(1, 17);
                var commands = new List<CounterCommand>(size);
                var expected = new List<ModelOutcome>(size);
                var submitted = new List<Task<CommandResult>>(size);
                for (var i = 0; i < size; i++, step++)
                {
                    var command = generator.Next(model);
                    commands.Add(command);
                    expected.Add(model.Apply(command, clock.NowMs));
                    submitted.Add(pipeline.SubmitAsync(command));
                }
                var results = await Task.WhenAll(submitted).WaitAsync(TimeSpan.FromSeconds(30));
                for (var i = 0; i < size; i++)
                {
                    CounterModel.AssertSame(commands[i], expected[i], results[i], $"{kind} pipeline seed {seed}, burst {burst}, command {i} of {size}");
                }
                await AssertStoreHoldsAsync(store, model, $"{kind} pipeline seed {seed}, burst {burst}");
            }
        }
        finally
        {
            await pipeline.StopAsync(CancellationToken.None);
        }
    }

    /// <summary>
    /// One random batch of 1–8 commands committed to the store and decided by the model, in order, as the store
    /// must; asserts every result and then the whole store against the model. Returns the number of commands.
    /// </summary>
    internal static async Task<int> CommitBatchAndCheckAsync(
        ICounterStore store, CounterModel model, CommandGenerator generator, Random batchSizes, ManualClock clock, string where)
    {
        clock.NowMs += 1 + batchSizes.Next(3);
        var size = batchSizes.Next(1, 9);
        var commands = new List<CounterCommand>(size);
        var expected = new List<ModelOutcome>(size);
        for (var i = 0; i < size; i++)
        {
            var command = generator.Next(model);
            commands.Add(command);
            expected.Add(model.Apply(command, clock.NowMs));
        }

        var results = await store.CommitAsync([.. commands]);
        for (var i = 0; i < size; i++)
        {
            CounterModel.AssertSame(commands[i], expected[i], results[i], $"{where}, command {i} of {size}");
        }
        await AssertStoreHoldsAsync(store, model, where);
        return size;
    }

    internal static async Task AssertStoreHoldsAsync(ICounterStore store, CounterModel model, string where)
    {
        var listed = await store.ListAsync("", null, 100, CancellationToken.None);
        var expected = model.Counters.ToList();
        Assert.True(listed.Count == expected.Count && listed.Zip(expected).All(pair => CounterModel.SameCounter(pair.Second, pair.First)),
            $"{where}: the store holds\n  {string.Join("\n  ", listed.Select(CounterModel.Describe))}\nbut the model\n  {string.Join("\n  ", expected.Select(CounterModel.Describe))}");
        foreach (var counter in expected)
        {
            var got = await store.GetAsync(counter.Name, CancellationToken.None);
            Assert.True(got is not null && CounterModel.SameCounter(counter, got), $"{where}: get '{counter.Name}' is {CounterModel.Describe(got)}, the model {CounterModel.Describe(counter)}");
        }
    }
}
