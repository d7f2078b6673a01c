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
        await using var stores = new RedisStores(await redis.ResetAsync());
        await SharedStoreModelRuns.CountersAsync(clock => stores.Create(clock), seed, steps: 2_000, "redis");
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
        await using var stores = new RedisStores(await redis.ResetAsync());
        await SharedStoreModelRuns.HistoryAsync(clock => stores.Create(clock), seed, steps: 1_200, "redis");
    }
}
