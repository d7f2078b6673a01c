using Tally.Server.Tests.Counters;
using Tally.Server.Tests.History;
using Tally.Server.Tests.Infrastructure;
using Tally.Server.Tests.Storage;

namespace Tally.Server.Tests.Redis;

/// <summary>
/// The random model test of the other stores (values near ±2^63, bounds, versions, preconditions) on a real Redis,
/// where the rules are the Lua copy in tally.lua: this is what keeps the two rule books from drifting. Now and then the
/// store is replaced by a fresh instance, as after a restart or on another node.
/// </summary>
[Trait("Layer", "Process")]
public sealed class RedisStoreModelTests(RedisFixture redis) : IClassFixture<RedisFixture>
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public async Task CommitsAgreeWithTheModel(int seed)
    {
        const int Steps = 2_000;
        await using var stores = new RedisStores(await redis.ResetAsync());
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
                step += await StoreModelTests.CommitBatchAndCheckAsync(store, model, generator, batchSizes, clock, $"redis seed {seed}, batch {batch}");
                if (batch % 50 == 49)
                {
                    await store.DisposeAsync();
                    store = stores.Create(clock);
                    await store.OpenAsync(CancellationToken.None);
                    await StoreModelTests.AssertStoreHoldsAsync(store, model, $"redis seed {seed}, batch {batch}, on a new instance");
                }
            }
        }
        finally
        {
            await store.DisposeAsync();
        }
    }

    /// <summary>
    /// The random model with history (<see cref="HistoryModel"/>) over a clock that crosses minutes, hours and days: the
    /// history part of tally.lua against the same oracle as the C# engines.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public async Task HistoryAgreesWithTheModel(int seed)
    {
        const int Steps = 1_200;
        await using var stores = new RedisStores(await redis.ResetAsync());
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
                    store, model, history, generator, random, clock, $"redis history seed {seed}, batch {batch}, at {clock.NowMs}");
            }
            Assert.True(history.InvariantChecks >= 20, $"The invariant was checked only {history.InvariantChecks} times.");
        }
        finally
        {
            await store.DisposeAsync();
        }
    }
}
