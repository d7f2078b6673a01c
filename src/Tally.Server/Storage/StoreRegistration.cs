using Microsoft.Extensions.Options;
using Tally.Server.Configuration;
using Tally.Server.Idempotency;
using Tally.Server.Pipeline;
using Tally.Server.Storage.Memory;
using Tally.Server.Storage.Sqlite;

namespace Tally.Server.Storage;

internal static class StoreRegistration
{
    /// <summary>One setting, <c>Store</c>, picks the store; the commit pipeline opens it at start-up.</summary>
    public static IServiceCollection AddTallyStore(this IServiceCollection services)
    {
        services.AddSingleton<ICounterStore>(provider =>
            provider.GetRequiredService<IOptions<TallyOptions>>().Value.Store switch
            {
                StoreKind.Memory => ActivatorUtilities.CreateInstance<MemoryCounterStore>(provider),
                StoreKind.Sqlite => ActivatorUtilities.CreateInstance<SqliteCounterStore>(provider),
                var other => throw new StoreStartupException($"Store={other} is not available in this version."),
            });
        services.AddSingleton<CommitPipeline>();
        services.AddSingleton<InFlightKeys>();
        services.AddHostedService(provider => provider.GetRequiredService<CommitPipeline>());
        return services;
    }
}
