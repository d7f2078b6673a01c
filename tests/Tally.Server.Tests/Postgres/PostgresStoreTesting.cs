using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Tally.Server.Configuration;
using Tally.Server.History;
using Tally.Server.Storage;
using Tally.Server.Storage.Postgres;
using Tally.Server.Tests.Storage;

namespace Tally.Server.Tests.Postgres;

/// <summary>PostgreSQL counter stores over a database of the test's own; disposing this disposes their connection pools.</summary>
internal sealed class PostgresStores(string connectionString) : IAsyncDisposable
{
    private readonly List<NpgsqlDataSource> _dataSources = [];

    public string ConnectionString { get; } = connectionString;

    /// <summary>A new, unopened store (as a new instance would be), with its own connection pool.</summary>
    public ICounterStore Create(TimeProvider clock, QuotaOptions? quotas = null, HistoryOptions? history = null)
    {
        var dataSource = NpgsqlDataSource.Create(ConnectionString);
        _dataSources.Add(dataSource);
        var options = Microsoft.Extensions.Options.Options.Create(new TallyOptions { Store = StoreKind.Postgres, Postgres = ConnectionString });
        return ActivatorUtilities.CreateInstance<PostgresCounterStore>(StoreTesting.Shared, dataSource, clock, options,
            Microsoft.Extensions.Options.Options.Create(quotas ?? new QuotaOptions()), Microsoft.Extensions.Options.Options.Create(history ?? new HistoryOptions()));
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var dataSource in _dataSources)
        {
            await dataSource.DisposeAsync();
        }
    }
}
