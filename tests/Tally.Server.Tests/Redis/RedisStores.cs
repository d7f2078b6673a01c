using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;
using Tally.Server.Configuration;
using Tally.Server.History;
using Tally.Server.Storage;
using Tally.Server.Storage.Redis;
using Tally.Server.Tests.Storage;

namespace Tally.Server.Tests.Redis;

/// <summary>Redis counter stores on one server; disposing this closes their connections.</summary>
internal sealed class RedisStores(string configuration) : IAsyncDisposable
{
    private readonly List<ConnectionMultiplexer> _connections = [];

    public string Configuration { get; } = configuration;

    /// <summary>A new, unopened store (as a new instance would be), with its own connection.</summary>
    public ICounterStore Create(TimeProvider clock, QuotaOptions? quotas = null, bool allowDataLoss = false, HistoryOptions? history = null)
    {
        var connection = RedisStoreRegistration.Connect(Configuration);
        _connections.Add(connection);
        var options = Microsoft.Extensions.Options.Options.Create(new TallyOptions { Store = StoreKind.Redis, Redis = Configuration, RedisAllowDataLoss = allowDataLoss });
        return ActivatorUtilities.CreateInstance<RedisCounterStore>(StoreTesting.Shared, (IConnectionMultiplexer)connection, clock, options,
            Microsoft.Extensions.Options.Options.Create(quotas ?? new QuotaOptions()), Microsoft.Extensions.Options.Options.Create(history ?? new HistoryOptions()));
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var connection in _connections)
        {
            await connection.DisposeAsync();
        }
    }
}
