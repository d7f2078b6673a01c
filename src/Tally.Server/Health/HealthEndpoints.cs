using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Tally.Server.Storage;

namespace Tally.Server.Health;

/// <summary><c>/healthz</c>: the process answers. <c>/readyz</c>: the store answers too.</summary>
internal static class HealthEndpoints
{
    private const string ReadyTag = "ready";
    private static readonly HttpMethodMetadata ReadOnly = new([HttpMethods.Get, HttpMethods.Head]);

    public static IServiceCollection AddTallyHealthChecks(this IServiceCollection services)
    {
        services.AddHealthChecks().AddCheck<StoreHealthCheck>("store", tags: [ReadyTag]);
        return services;
    }

    public static IEndpointRouteBuilder MapHealth(this IEndpointRouteBuilder routes)
    {
        // MapHealthChecks answers every method; a probe reads, so anything but GET and HEAD is 405 with Allow.
        routes.MapHealthChecks("/healthz", new HealthCheckOptions { Predicate = _ => false })
            .WithMetadata(ReadOnly).WithTags("Health").WithSummary("Liveness: the process answers");
        routes.MapHealthChecks("/readyz", new HealthCheckOptions { Predicate = check => check.Tags.Contains(ReadyTag) })
            .WithMetadata(ReadOnly).WithTags("Health").WithSummary("Readiness: the store answers");
        return routes;
    }

    private sealed class StoreHealthCheck(ICounterStore store) : IHealthCheck
    {
        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            var health = await store.CheckHealthAsync(cancellationToken);
            return health.Healthy ? HealthCheckResult.Healthy(health.Description) : HealthCheckResult.Unhealthy(health.Description);
        }
    }
}
