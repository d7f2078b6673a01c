using Tally.Server.Auth;

namespace Tally.Server.Storage.Memory;

internal static class MemoryStoreRegistration
{
    /// <summary>Counters, idempotency records and API keys in memory: for tests and throw-away use.</summary>
    public static IServiceCollection AddMemoryStore(this IServiceCollection services)
    {
        services.AddSingleton<ICounterStore, MemoryCounterStore>();
        services.AddSingleton<ApiKeyStore, MemoryApiKeyStore>();
        services.AddSingleton<IClusterSize, SingleInstance>();
        return services;
    }
}
