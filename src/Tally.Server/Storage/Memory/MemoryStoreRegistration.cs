using Tally.Server.Alerts;
using Tally.Server.Auth;

namespace Tally.Server.Storage.Memory;

internal static class MemoryStoreRegistration
{
    /// <summary>Counters, idempotency records, API keys and alerts in memory: for tests and throw-away use.</summary>
    public static IServiceCollection AddMemoryStore(this IServiceCollection services)
    {
        services.AddSingleton<ICounterStore, MemoryCounterStore>();
        services.AddSingleton<ApiKeyStore, MemoryApiKeyStore>();
        services.AddSingleton<IClusterSize, SingleInstance>();
        services.AddSingleton<MemoryAlertStore>();
        services.AddSingleton<AlertRegistry>(provider => provider.GetRequiredService<MemoryAlertStore>());
        services.AddSingleton<IAlertOutbox>(provider => provider.GetRequiredService<MemoryAlertStore>());
        return services;
    }
}
