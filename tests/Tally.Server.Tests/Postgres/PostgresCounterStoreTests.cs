using Npgsql;
using Tally.Server.Counters;
using Tally.Server.Storage;
using Tally.Server.Storage.Postgres;
using Tally.Server.Tests.Infrastructure;
using Tally.Server.Tests.Storage;

namespace Tally.Server.Tests.Postgres;

/// <summary>The store contract on a real PostgreSQL, plus what only a shared database must do.</summary>
[Trait("Layer", "Process")]
[Collection(PostgresCollection.Name)]
public sealed class PostgresCounterStoreTests(PostgresFixture postgres) : CounterStoreContractTests
{
    private PostgresStores _stores = null!;

    private protected override string Kind => "postgres";

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

    private protected override ICounterStore CreateStore() => _stores.Create(Clock);

    [Fact]
    public async Task ACommitOnOneInstanceIsReadAtOnceOnAnother()
    {
        await using var other = _stores.Create(Clock);
        await other.OpenAsync(CancellationToken.None);

        await Store.CommitAsync(CounterCommand.Increment("shared", 5));
        Assert.Equal(5, (await other.GetAsync("shared"))!.Value);
        await other.CommitAsync(CounterCommand.Increment("shared", 2));
        Assert.Equal(7, (await Store.GetAsync("shared"))!.Value);
    }

    [Fact]
    public async Task AKeyReusedAfterItExpiredDoesNotCountTwice()
    {
        var clock = new ManualClock(T1);
        await using var store = _stores.Create(clock, new Tally.Server.Configuration.QuotaOptions { IdempotencyBytesPerKey = 4096 });
        await store.OpenAsync(CancellationToken.None);
        await Tally.Server.Tests.Quotas.IdempotencyQuotaTests.AssertExpiredKeysGiveTheirBytesBackAsync(store, clock);
    }

    [Fact]
    public async Task ListingsAreInOrdinalNameOrderLikeTheOtherStores()
    {
        string[] names = ["b", "B", "a", "a.b", "a:b", "a-b", "a_b", "Z9", "0"];
        await Store.CommitAsync([.. names.Select(name => CounterCommand.Increment(name, 1))]);

        Assert.Equal(names.Order(StringComparer.Ordinal), await Store.ListNamesAsync());
        Assert.Equal(["a", "a-b", "a.b", "a:b", "a_b"], await Store.ListNamesAsync(prefix: "a"));
    }

    [Fact]
    public async Task InstancesStartingTogetherOnAnEmptyDatabaseMigrateItOnce()
    {
        var connectionString = await postgres.CreateDatabaseAsync();
        await using var stores = new PostgresStores(connectionString);
        var instances = Enumerable.Range(0, 4).Select(_ => stores.Create(Clock)).ToList();

        await Task.WhenAll(instances.Select(store => store.OpenAsync(CancellationToken.None)));

        await instances[0].CommitAsync(CounterCommand.Increment("a", 1));
        Assert.Equal(1, (await instances[3].GetAsync("a"))!.Value);
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var version = new NpgsqlCommand("SELECT count(*), max(version) FROM tally_schema", connection);
        await using var reader = await version.ExecuteReaderAsync();
        await reader.ReadAsync();
        Assert.Equal((1L, PostgresSchema.CurrentVersion), (reader.GetInt64(0), reader.GetInt32(1)));
        foreach (var instance in instances)
        {
            await instance.DisposeAsync();
        }
    }

    [Fact]
    public async Task ADatabaseFromANewerTallyIsRefused()
    {
        await using (var connection = new NpgsqlConnection(_stores.ConnectionString))
        {
            await connection.OpenAsync();
            await using var newer = new NpgsqlCommand("UPDATE tally_schema SET version = 99", connection);
            await newer.ExecuteNonQueryAsync();
        }
        var store = _stores.Create(Clock);
        var error = await Assert.ThrowsAsync<StoreStartupException>(() => store.OpenAsync(CancellationToken.None));
        Assert.Contains("newer", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ConcurrentIncrementsFromManyInstancesAreExact()
    {
        var instances = Enumerable.Range(0, 3).Select(_ => _stores.Create(Clock)).ToList();
        foreach (var instance in instances)
        {
            await instance.OpenAsync(CancellationToken.None);
        }
        // Each instance commits batches that touch the same names in different orders: no lost update, no deadlock shown.
        var work = instances.Select((store, i) => Task.Run(async () =>
        {
            for (var round = 0; round < 40; round++)
            {
                var names = i % 2 == 0 ? new[] { "x", "y", "z" } : ["z", "y", "x"];
                await store.CommitAsync([.. names.Select(name => CounterCommand.Increment(name, 1))]);
            }
        }));
        await Task.WhenAll(work);

        foreach (var name in new[] { "x", "y", "z" })
        {
            Assert.Equal(120, (await Store.GetAsync(name))!.Value);
        }
        foreach (var instance in instances)
        {
            await instance.DisposeAsync();
        }
    }
}
