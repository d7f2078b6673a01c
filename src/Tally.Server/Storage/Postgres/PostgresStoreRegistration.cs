using Microsoft.Extensions.Options;
using Npgsql;
using Tally.Server.Alerts;
using Tally.Server.Auth;
using Tally.Server.Configuration;

namespace Tally.Server.Storage.Postgres;

internal static class PostgresStoreRegistration
{
    /// <summary>
    /// The shared engine: counters, their idempotency records and the API keys in one PostgreSQL database,
    /// through one <see cref="NpgsqlDataSource"/> (its connection pool) per instance.
    /// </summary>
    public static IServiceCollection AddPostgresStore(this IServiceCollection services)
    {
        services.AddSingleton(provider =>
        {
            var connectionString = provider.GetRequiredService<IOptions<TallyOptions>>().Value.Postgres
                ?? throw new StoreStartupException("Store=postgres needs a connection string: set Postgres (or ConnectionStrings:Postgres).");
            var builder = new NpgsqlDataSourceBuilder(connectionString);
            if (!builder.ConnectionStringBuilder.ContainsKey("Timeout"))
            {
                // While PostgreSQL is down, answer 503 within seconds rather than after Npgsql's default 15 s.
                builder.ConnectionStringBuilder.Timeout = 3;
            }
            builder.UseLoggerFactory(provider.GetRequiredService<ILoggerFactory>());
            return builder.Build();
        });
        services.AddSingleton<ICounterStore, PostgresCounterStore>();
        services.AddSingleton<PostgresEventRelay>();
        services.AddHostedService(provider => provider.GetRequiredService<PostgresEventRelay>());
        services.AddSingleton<ApiKeyStore, PostgresApiKeyStore>();
        services.AddSingleton<PostgresAlertStore>();
        services.AddSingleton<AlertRegistry>(provider => provider.GetRequiredService<PostgresAlertStore>());
        services.AddSingleton<IAlertOutbox>(provider => provider.GetRequiredService<PostgresAlertStore>());
        services.AddSingleton<PostgresClusterMembership>();
        services.AddSingleton<IClusterSize>(provider => provider.GetRequiredService<PostgresClusterMembership>());
        services.AddHostedService(provider => provider.GetRequiredService<PostgresClusterMembership>());
        return services;
    }
}
