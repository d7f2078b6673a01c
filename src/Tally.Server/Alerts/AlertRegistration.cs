using Microsoft.Extensions.Options;

namespace Tally.Server.Alerts;

internal static class AlertRegistration
{
    /// <summary>
    /// The parts of alerting every engine shares: the start-up that loads the definitions, and the sender with its HTTP
    /// client. <c>AddTallyStore</c> registers the <see cref="AlertCatalog"/> the commit path reads, and the engine's folder its
    /// <see cref="AlertRegistry"/> and <see cref="IAlertOutbox"/>. Call after it: the definitions load once the store is open.
    /// </summary>
    public static IServiceCollection AddTallyAlerts(this IServiceCollection services)
    {
        services.AddHostedService<AlertStartup>();
        services.AddHttpClient(AlertSender.HttpClientName, (provider, client) =>
                client.Timeout = provider.GetRequiredService<IOptions<AlertOptions>>().Value.DeliveryTimeout)
            .ConfigurePrimaryHttpMessageHandler(provider => AlertSender.CreateHandler(provider.GetRequiredService<IOptions<AlertOptions>>().Value))
            // The sender logs what matters (a disabled webhook, an event given up); no line per request with its URL.
            .RemoveAllLoggers();
        services.AddHostedService<AlertSender>();
        services.ConfigureHttpJsonOptions(json => json.SerializerOptions.TypeInfoResolverChain.Insert(0, AlertJsonContext.Default));
        return services;
    }
}

/// <summary>Loads the alert definitions at start-up, after the commit pipeline opened (and migrated) the store.</summary>
internal sealed class AlertStartup(AlertRegistry registry) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => registry.OpenAsync(cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
