using Microsoft.Extensions.Options;
using StackExchange.Redis;
using Tally.Server.Alerts;
using Tally.Server.Auth;
using Tally.Server.Configuration;

namespace Tally.Server.Storage.Redis;

internal static class RedisStoreRegistration
{
    /// <summary>
    /// The Redis engine: counters, their idempotency records and the API keys in one Redis, through one
    /// multiplexed connection per instance (StackExchange.Redis reconnects by itself after an outage).
    /// </summary>
    public static IServiceCollection AddRedisStore(this IServiceCollection services)
    {
        services.AddSingleton<IConnectionMultiplexer>(provider =>
        {
            var configuration = provider.GetRequiredService<IOptions<TallyOptions>>().Value.Redis
                ?? throw new StoreStartupException("Store=redis needs a configuration string: set Redis (or ConnectionStrings:Redis).");
            return Connect(configuration, provider.GetRequiredService<ILoggerFactory>());
        });
        services.AddSingleton<ICounterStore, RedisCounterStore>();
        services.AddSingleton<RedisEventRelay>();
        services.AddSingleton<Pipeline.ICommitObserver>(provider => provider.GetRequiredService<RedisEventRelay>());
        services.AddHostedService(provider => provider.GetRequiredService<RedisEventRelay>());
        services.AddSingleton<ApiKeyStore, RedisApiKeyStore>();
        services.AddSingleton<RedisAlertStore>();
        services.AddSingleton<AlertRegistry>(provider => provider.GetRequiredService<RedisAlertStore>());
        services.AddSingleton<IAlertOutbox>(provider => provider.GetRequiredService<RedisAlertStore>());
        services.AddSingleton<RedisClusterMembership>();
        services.AddSingleton<IClusterSize>(provider => provider.GetRequiredService<RedisClusterMembership>());
        services.AddHostedService(provider => provider.GetRequiredService<RedisClusterMembership>());
        return services;
    }

    /// <summary>
    /// A connection that gives up on a command within seconds rather than the client's default, so an outage is a
    /// quick 503, not a hung request. The connection itself does not wait for Redis, but the start does: when Redis
    /// does not answer at start, the store refuses to open and Tally exits with code 2. After the start, an outage
    /// gives 503s and the connection reconnects by itself.
    /// </summary>
    public static ConnectionMultiplexer Connect(string configuration, ILoggerFactory? loggerFactory = null)
    {
        ConfigurationOptions options;
        try
        {
            options = ConfigurationOptions.Parse(configuration);
        }
        catch (ArgumentException ex)
        {
            throw new StoreStartupException($"The Redis configuration string cannot be read: {ex.Message}", ex);
        }
        options.AbortOnConnectFail = false;
        options.AllowAdmin = true; // CONFIG GET (the persistence check) and FUNCTION LOAD
        options.ClientName ??= "tally";
        if (!configuration.Contains("connectTimeout", StringComparison.OrdinalIgnoreCase))
        {
            options.ConnectTimeout = 3000;
        }
        if (!configuration.Contains("syncTimeout", StringComparison.OrdinalIgnoreCase))
        {
            options.SyncTimeout = 3000;
        }
        if (!configuration.Contains("asyncTimeout", StringComparison.OrdinalIgnoreCase))
        {
            options.AsyncTimeout = 3000;
        }
        // While Redis is unreachable a command fails at once (503 with Retry-After) instead of waiting in a backlog
        // for the timeout, so requests do not pile up during an outage.
        options.BacklogPolicy = BacklogPolicy.FailFast;
        options.LoggerFactory = loggerFactory;
        return ConnectionMultiplexer.Connect(options);
    }
}
