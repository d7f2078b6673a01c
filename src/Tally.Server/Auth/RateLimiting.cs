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
                // Made once: a bucket for (caller, number of instances), the cluster's budget split between the instances.
                Func<(string Caller, int Instances), TokenBucketRateLimiterOptions> bucket = partition => new TokenBucketRateLimiterOptions
                {
                    TokenLimit = Share(limits.BucketSize, partition.Instances),
                    TokensPerPeriod = Share(limits.PermitsPerSecond, partition.Instances),
                    ReplenishmentPeriod = TimeSpan.FromSeconds(1),
                    QueueLimit = 0,
                    AutoReplenishment = false, // the partitioned limiter replenishes every bucket on its own timer
                };
                limiter.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, (string, int)>(context =>
                    IsNeverLimited(context.Request.Path)
                        ? RateLimitPartition.GetNoLimiter((string.Empty, 0))
                        // A new partition (a fresh bucket) when the number of instances changes.
                        : RateLimitPartition.GetTokenBucketLimiter(
                            (PartitionOf(context), context.RequestServices.GetRequiredService<IClusterSize>().Instances), bucket));
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
