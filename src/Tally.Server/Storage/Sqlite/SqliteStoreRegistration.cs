using Microsoft.Extensions.Options;
using Tally.Server.Alerts;
using Tally.Server.Auth;
using Tally.Server.Configuration;

namespace Tally.Server.Storage.Sqlite;

internal static class SqliteStoreRegistration
{
    /// <summary>
    /// The embedded engine: counters and their idempotency records in one SQLite file, and the API keys in
    /// the same file (through a connection of their own, opened after the counter store has migrated it), and the alerts likewise.
    /// </summary>
    public static IServiceCollection AddSqliteStore(this IServiceCollection services)
    {
        services.AddSingleton<SqliteCounterStore>();
        services.AddSingleton<ICounterStore>(provider => provider.GetRequiredService<SqliteCounterStore>());
        services.AddSingleton<ApiKeyStore>(provider => new SqliteApiKeyStore(
            provider.GetRequiredService<IOptions<TallyOptions>>(),
            provider.GetRequiredService<TimeProvider>(),
            provider.GetRequiredService<SqliteCounterStore>().DatabasePath));
        services.AddSingleton<IClusterSize, SingleInstance>();
        services.AddSingleton(provider => new SqliteAlertStore(
            provider.GetRequiredService<AlertCatalog>(), provider.GetRequiredService<SqliteCounterStore>().DatabasePath));
        services.AddSingleton<AlertRegistry>(provider => provider.GetRequiredService<SqliteAlertStore>());
        services.AddSingleton<IAlertOutbox>(provider => provider.GetRequiredService<SqliteAlertStore>());
        return services;
    }
}
