using Tally.Server.Alerts;
using Tally.Server.Configuration;
using Tally.Server.Idempotency;
using Tally.Server.Pipeline;
using Tally.Server.Storage.Memory;
using Tally.Server.Storage.Postgres;
using Tally.Server.Storage.Redis;
using Tally.Server.Storage.Sqlite;

namespace Tally.Server.Storage;

internal static class StoreRegistration
{
    /// <summary>
    /// One setting, <c>Store</c>, picks the engine; its folder registers its parts (counter engine with its
    /// idempotency records, API key store, alerts). The commit pipeline opens the engine at start-up. An unknown
    /// value registers the default here and is refused by the settings check before anything starts.
    /// </summary>
    public static IServiceCollection AddTallyStore(this IServiceCollection services, IConfiguration configuration)
    {
        // The pipeline opens the engine: as the first hosted service, a store that refuses to open stops the start
        // before anything else of the engine's runs (such as a heartbeat announcing this instance to the others).
        services.AddSingleton<CommitPipeline>();
        services.AddSingleton<InFlightKeys>();
        services.AddHostedService(provider => provider.GetRequiredService<CommitPipeline>());
        var store = Enum.TryParse<StoreKind>(configuration[nameof(TallyOptions.Store)], ignoreCase: true, out var kind) ? kind : StoreKind.Sqlite;
        switch (store)
        {
            case StoreKind.Memory:
                services.AddMemoryStore();
                break;
            case StoreKind.Postgres:
                services.AddPostgresStore();
                break;
            case StoreKind.Redis:
                services.AddRedisStore();
                break;
            default:
                services.AddSqliteStore();
                break;
        }
        // The alert definitions every engine's commits evaluate (loaded by the engine's AlertRegistry).
        services.AddSingleton<AlertCatalog>();
        return services;
    }
}
