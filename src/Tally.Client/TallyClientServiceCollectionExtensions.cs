using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.Extensions.Http.Resilience;
using Microsoft.Extensions.Options;
using Polly;
using Tally.Client;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers <see cref="TallyClient"/> with the HttpClient factory.</summary>
public static class TallyClientServiceCollectionExtensions
{
    /// <summary>
    /// Registers <see cref="TallyClient"/> as a typed HttpClient with the standard resilience handler. Transient failures
    /// (503, 429 with a <c>Retry-After</c> up to <see cref="TallyClientOptions.MaxRetryAfter"/>, other 5xx, 408, a lost
    /// connection, an attempt timeout, and 409 <c>idempotency_key_in_flight</c> for a keyed change) are retried, honouring <c>Retry-After</c>, but only for requests that are safe to
    /// repeat: GET, HEAD, PUT and DELETE, and changes carrying the client's <c>Idempotency-Key</c> (which every counter
    /// change and batch does, the same key on every attempt), so a retry never counts twice. A DELETE of an alert or a key
    /// (which carry no key) that was retried after a lost answer and then finds nothing to delete counts as done.
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="configure">Sets <see cref="TallyClientOptions.BaseAddress"/>, <see cref="TallyClientOptions.ApiKey"/>, ….</param>
    /// <returns>The client's builder, to add handlers of your own (they run inside the retries).</returns>
    public static IHttpClientBuilder AddTallyClient(this IServiceCollection services, Action<TallyClientOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.AddOptions<TallyClientOptions>().Configure(configure)
            .Validate(options => options.BaseAddress is { IsAbsoluteUri: true }, "TallyClientOptions.BaseAddress must be an absolute URI.");
        var builder = services.AddHttpClient<TallyClient>((provider, http) =>
        {
            var options = provider.GetRequiredService<IOptions<TallyClientOptions>>().Value;
            http.BaseAddress = TallyClient.AsDirectory(options.BaseAddress!);
            // Timeouts are the resilience pipeline's (per attempt); a live event stream or a long download must not end at 100 s.
            http.Timeout = Timeout.InfiniteTimeSpan;
            if (!string.IsNullOrEmpty(options.ApiKey))
            {
                http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", options.ApiKey);
            }
        });
        builder.AddStandardResilienceHandler().Configure((resilience, provider) =>
        {
            var options = provider.GetRequiredService<IOptions<TallyClientOptions>>().Value;
            resilience.AttemptTimeout.Timeout = options.AttemptTimeout;
            resilience.TotalRequestTimeout.Timeout = options.AttemptTimeout * (options.MaxRetryAttempts + 1) + options.MaxRetryAfter * options.MaxRetryAttempts;
            // The breaker opens for 5 s when, within the sampling window, at least 100 requests were sampled and 10 % of them
            // failed transiently. The window is 30 s, or twice AttemptTimeout when that is longer (the handler requires it).
            resilience.CircuitBreaker.FailureRatio = 0.1;
            resilience.CircuitBreaker.MinimumThroughput = 100;
            resilience.CircuitBreaker.BreakDuration = TimeSpan.FromSeconds(5);
            resilience.CircuitBreaker.SamplingDuration = TimeSpan.FromTicks(Math.Max(TimeSpan.FromSeconds(30).Ticks, options.AttemptTimeout.Ticks * 2));
            resilience.Retry.MaxRetryAttempts = Math.Max(1, options.MaxRetryAttempts);
            resilience.Retry.Delay = options.RetryDelay;
            resilience.Retry.ShouldRetryAfterHeader = true;
            resilience.Retry.OnRetry = args =>
            {
                // No answer (a lost connection, a timeout): the attempt may have been applied. An unkeyed DELETE reads this.
                if (args.Outcome.Exception is not null)
                {
                    args.Context.Properties.Set(TallyClient.AnswerLost, true);
                }
                return default;
            };
            var enabled = options.MaxRetryAttempts > 0;
            var maxRetryAfter = options.MaxRetryAfter;
            resilience.Retry.ShouldHandle = async args =>
            {
                if (!enabled || args.Context.GetRequestMessage() is not { } request || !SafeToRepeat(request))
                {
                    return false;
                }
                if (HttpClientResiliencePredicates.IsTransient(args.Outcome))
                {
                    return WaitIsShort(args.Outcome.Result, maxRetryAfter);
                }
                // The first attempt may still be running on the server (its answer was lost, or it timed out): once it is
                // answered, the same key gets its stored answer.
                return request.Headers.Contains(TallyClient.IdempotencyKeyHeader)
                    && await IsInFlightAsync(args.Outcome.Result, args.Context.CancellationToken).ConfigureAwait(false);
            };
        });
        return builder;
    }

    private static bool SafeToRepeat(HttpRequestMessage? request) =>
        request is not null
        && (request.Method == HttpMethod.Get || request.Method == HttpMethod.Head || request.Method == HttpMethod.Put || request.Method == HttpMethod.Delete
            || request.Headers.Contains(TallyClient.IdempotencyKeyHeader));

    private static async Task<bool> IsInFlightAsync(HttpResponseMessage? response, CancellationToken cancellationToken)
    {
        if (response is not { StatusCode: HttpStatusCode.Conflict })
        {
            return false;
        }
        // Reading buffers the body: when this is not retried, the caller still reads the problem.
        var body = await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            using var problem = JsonDocument.Parse(body);
            return problem.RootElement.ValueKind == JsonValueKind.Object && problem.RootElement.TryGetProperty("code", out var code)
                && code.ValueKind == JsonValueKind.String && code.ValueEquals("idempotency_key_in_flight");
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private static bool WaitIsShort(HttpResponseMessage? response, TimeSpan maxRetryAfter) =>
        response?.Headers.RetryAfter is not { } retryAfter
        || (retryAfter.Delta ?? (retryAfter.Date - DateTimeOffset.UtcNow) ?? TimeSpan.Zero) <= maxRetryAfter;
}
