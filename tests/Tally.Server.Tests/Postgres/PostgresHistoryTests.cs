using Tally.Server.History;
using Tally.Server.Storage;
using Tally.Server.Tests.History;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Postgres;

/// <summary>The history contract on a real PostgreSQL: buckets written in the commit's own round trip, pruned by upkeep.</summary>
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
}

