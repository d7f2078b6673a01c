using Microsoft.Extensions.Options;
using Tally.Server.Pipeline;

namespace Tally.Server.Events;

internal static class EventRegistration
{
    /// <summary>
    /// The event hub, told of every commit. Across instances, the shared stores' folders add their relays
    /// (Storage/Postgres: LISTEN/NOTIFY; Storage/Redis: pub/sub); the embedded stores have one instance, no relay.
    /// </summary>
    public static IServiceCollection AddTallyEvents(this IServiceCollection services)
    {
        services.AddSingleton<IValidateOptions<EventOptions>, EventOptionsValidator>();
        services.AddOptions<EventOptions>().BindConfiguration(EventOptions.Section).ValidateOnStart();
        services.AddSingleton<EventHub>();
        services.AddSingleton<ICommitObserver>(provider => provider.GetRequiredService<EventHub>());
        return services;
    }
}
