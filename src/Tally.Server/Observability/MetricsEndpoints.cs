namespace Tally.Server.Observability;

internal static class MetricsEndpoints
{
    public static IServiceCollection AddTallyMetrics(this IServiceCollection services)
    {
        services.AddMetrics();
        services.AddSingleton<TallyMetrics>();
        services.AddSingleton<PrometheusExporter>();
        return services;
    }

    public static IEndpointRouteBuilder MapMetrics(this IEndpointRouteBuilder routes)
    {
        // Created now, not at the first scrape, so it sees every measurement from the start.
        routes.ServiceProvider.GetRequiredService<PrometheusExporter>();
        var cluster = routes.ServiceProvider.GetRequiredService<Auth.IClusterSize>();
        routes.ServiceProvider.GetRequiredService<TallyMetrics>().ObserveClusterSize(() => cluster.Instances);
        routes.MapGet("/metrics", (PrometheusExporter exporter) =>
                TypedResults.Text(exporter.Render(), "text/plain; version=0.0.4; charset=utf-8"))
            .WithTags("Operations").WithName("Metrics").WithSummary("Prometheus text exposition");
        return routes;
    }
}
