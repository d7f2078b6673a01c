using Tally.Server.Storage;
using Tally.Server.Tests.Counters;
using Tally.Server.Tests.History;

namespace Tally.Server.Tests.Storage;

/// <summary>
/// The random model runs for a store many instances share (PostgreSQL, Redis): the same commits and checks as
/// <see cref="StoreModelTests"/>, with the store now and then replaced by a fresh instance, as after a restart or on
/// another node.
/// </summary>
internal static class SharedStoreModelRuns
{
    /// <summary>Counters against <see cref="CounterModel"/>; every 50 batches a new instance must hold what the model says.</summary>
    public static async Task CountersAsync(Func<TimeProvider, ICounterStore> create, int seed, int steps, string label)
    {
        var clock = new ManualClock(1_700_000_000_000);
        var store = create(clock);
        await store.OpenAsync(CancellationToken.None);
        var model = new CounterModel();
        var generator = new CommandGenerator(seed);
        var batchSizes = new Random(seed * 7919);
        try
        {
            var step = 0;
            for (var batch = 0; step < steps; batch++)
            {
                step += await StoreModelTests.CommitBatchAndCheckAsync(store, model, generator, batchSizes, clock, $"{label} seed {seed}, batch {batch}");
                if (batch % 50 == 49)
                {
                    await store.DisposeAsync();
                    store = create(clock);
                    await store.OpenAsync(CancellationToken.None);
                    await StoreModelTests.AssertStoreHoldsAsync(store, model, $"{label} seed {seed}, batch {batch}, on a new instance");
                }
            }
        }
        finally
        {
            await store.DisposeAsync();
        }
    }

    /// <summary>History against <see cref="HistoryModel"/>, over a clock that crosses minutes, hours and days.</summary>
    public static async Task HistoryAsync(Func<TimeProvider, ICounterStore> create, int seed, int steps, string label)
    {
        var clock = new ManualClock(HistoryModelRuns.Start);
        var store = create(clock);
        await store.OpenAsync(CancellationToken.None);
        var model = new CounterModel();
        var history = new HistoryModel();
        var generator = new CommandGenerator(seed);
        var random = new Random(seed * 7919);
        try
        {
            var step = 0;
            for (var batch = 0; step < steps; batch++)
            {
                step += await HistoryModelRuns.CommitBatchAndCheckAsync(
                    store, model, history, generator, random, clock, $"{label} history seed {seed}, batch {batch}, at {clock.NowMs}");
            }
            Assert.True(history.InvariantChecks >= 20, $"The invariant was checked only {history.InvariantChecks} times.");
        }
        finally
        {
            await store.DisposeAsync();
        }
    }
}
