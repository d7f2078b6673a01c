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
}
