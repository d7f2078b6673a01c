using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Options;
using Tally.Server.Configuration;
using Tally.Server.Http;
using Tally.Server.Observability;

namespace Tally.Server.Auth;

/// <summary>
/// ASP.NET Core's rate limiter: a token bucket per API key (per client address for requests without
/// a valid key), refilled at <c>RateLimit:PermitsPerSecond</c> up to <c>RateLimit:Burst</c>. A refused
/// request gets <c>429 rate_limited</c> with <c>Retry-After</c> before any endpoint runs, so it changes nothing.
/// </summary>
internal static class RateLimiting
{
    public static IServiceCollection AddTallyRateLimiting(this IServiceCollection services)
    {
        services.AddRateLimiter(_ => { });
        services.AddOptions<RateLimiterOptions>().Configure<IOptions<RateLimitOptions>>((limiter, settings) =>
        {
            var limits = settings.Value;
            limiter.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            limiter.OnRejected = OnRejectedAsync;
            if (limits.Enabled)
            {
                limiter.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, string>(context =>
                {
                    if (IsNeverLimited(context.Request.Path))
                    {
                        return RateLimitPartition.GetNoLimiter(string.Empty);
                    }
                    // The cluster's budget split between the instances: a new partition (a fresh bucket) when their number changes.
                    var instances = context.RequestServices.GetRequiredService<IClusterSize>().Instances;
                    return RateLimitPartition.GetTokenBucketLimiter($"{PartitionOf(context)}/{instances}", _ => new TokenBucketRateLimiterOptions
                    {
                        TokenLimit = Share(limits.BucketSize, instances),
                        TokensPerPeriod = Share(limits.PermitsPerSecond, instances),
                        ReplenishmentPeriod = TimeSpan.FromSeconds(1),
                        QueueLimit = 0,
                        AutoReplenishment = false, // the partitioned limiter replenishes every bucket on its own timer
                    });
                });
            }
        });
        return services;
    }

    private static int Share(int total, int instances) => Math.Max(1, (total + instances - 1) / instances);

    /// <summary>
    /// Health probes and the metrics scrape are never throttled: a refused liveness probe would restart a
    /// healthy instance, and a refused scrape is a gap in the metrics (and a false alert).
    /// </summary>
    private static bool IsNeverLimited(PathString path) =>
        path.StartsWithSegments("/healthz") || path.StartsWithSegments("/readyz") || path.StartsWithSegments("/metrics");

    /// <summary>The key's id once authenticated (not with Auth=off), else "ip:" and the client's address (key ids never contain ':').</summary>
    private static string PartitionOf(HttpContext context) =>
        context.User.FindFirst(TallyClaims.KeyId)?.Value is { } id && id != ApiKey.AnonymousId
            ? id
            : "ip:" + (context.Connection.RemoteIpAddress?.ToString() ?? "unknown");

    private static async ValueTask OnRejectedAsync(OnRejectedContext rejected, CancellationToken cancellationToken)
    {
        var context = rejected.HttpContext;
        var seconds = rejected.Lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds)) : 1;
        context.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
        context.RequestServices.GetRequiredService<TallyMetrics>().RecordOperation("request", "rate_limited");
        await Problems.Create(Problems.RateLimited,
            $"Too many requests for this API key (or address); nothing was done. Retry after {seconds} s.").ExecuteAsync(context);
    }
}
