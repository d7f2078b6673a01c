using Tally.Server.Tests.Counters;
using Tally.Server.Tests.History;
using Tally.Server.Tests.Infrastructure;
using Tally.Server.Tests.Storage;

namespace Tally.Server.Tests.Postgres;

/// <summary>
/// The random model test of the other stores (values near ±2^63, bounds, versions, preconditions) on a real
/// PostgreSQL, with the store now and then replaced by a fresh instance, as after a restart or on another node.
/// </summary>
[Trait("Layer", "Process")]
[Collection(PostgresCollection.Name)]
public sealed class PostgresStoreModelTests(PostgresFixture postgres)
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public async Task CommitsAgreeWithTheModel(int seed)
    {
        const int Steps = 1_500;
        await using var stores = new PostgresStores(await postgres.CreateDatabaseAsync());
        var clock = new ManualClock(1_700_000_000_000);
        var store = stores.Create(clock);
        await store.OpenAsync(CancellationToken.None);
        var model = new CounterModel();
        var generator = new CommandGenerator(seed);
        var batchSizes = new Random(seed * 7919);
        try
        {
            var step = 0;
            for (var batch = 0; step < Steps; batch++)
            {
                step += await StoreModelTests.CommitBatchAndCheckAsync(store, model, generator, batchSizes, clock, $"postgres seed {seed}, batch {batch}");
                if (batch % 50 == 49)
                {
                    await store.DisposeAsync();
                    store = stores.Create(clock);
                    await store.OpenAsync(CancellationToken.None);
                    await StoreModelTests.AssertStoreHoldsAsync(store, model, $"postgres seed {seed}, batch {batch}, on a new instance");
                }
            }
        }
        finally
        {
            await store.DisposeAsync();
        }
    }

    /// <summary>The random model with history (<see cref="HistoryModel"/>) over a clock that crosses minutes, hours and days.</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public async Task HistoryAgreesWithTheModel(int seed)
    {
        const int Steps = 1_000;
        await using var stores = new PostgresStores(await postgres.CreateDatabaseAsync());
        var clock = new ManualClock(HistoryModelRuns.Start);
        var store = stores.Create(clock);
        await store.OpenAsync(CancellationToken.None);
        var model = new CounterModel();
        var history = new HistoryModel();
        var generator = new CommandGenerator(seed);
        var random = new Random(seed * 7919);
        try
        {
            var step = 0;
            for (var batch = 0; step < Steps; batch++)
            {
                step += await HistoryModelRuns.CommitBatchAndCheckAsync(
                    store, model, history, generator, random, clock, $"postgres history seed {seed}, batch {batch}, at {clock.NowMs}");
            }
            Assert.True(history.InvariantChecks >= 20, $"The invariant was checked only {history.InvariantChecks} times.");
        }
        finally
        {
            await store.DisposeAsync();
        }
    }
}
