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
        await using var stores = new PostgresStores(await postgres.CreateDatabaseAsync());
        await SharedStoreModelRuns.CountersAsync(clock => stores.Create(clock), seed, steps: 1_500, "postgres");
    }

    /// <summary>The random model with history (<see cref="HistoryModel"/>) over a clock that crosses minutes, hours and days.</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public async Task HistoryAgreesWithTheModel(int seed)
    {
        await using var stores = new PostgresStores(await postgres.CreateDatabaseAsync());
        await SharedStoreModelRuns.HistoryAsync(clock => stores.Create(clock), seed, steps: 1_000, "postgres");
    }
}
