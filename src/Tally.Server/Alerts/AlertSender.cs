using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Options;
using Tally.Server.Observability;

namespace Tally.Server.Alerts;

/// <summary>
/// Drains the outbox: takes due events (leased, so with several instances each event is sent by one of them), POSTs
/// each to its alert's webhook with Standard Webhooks headers, and records the attempt. A 2xx is delivered; a
/// <c>410 Gone</c> disables the alert's webhook; anything else is tried again after the next delay of
/// <c>Alerts:RetrySchedule</c> (±20 % jitter, at least a <c>Retry-After</c> the receiver sent), and dropped after the
/// last. Woken by commits that wrote events on this instance; otherwise it looks every <c>Alerts:PollIntervalMs</c>.
/// </summary>
internal sealed class AlertSender(
    IAlertOutbox outbox, AlertRegistry registry, AlertCatalog catalog, IHttpClientFactory httpClients, IOptions<AlertOptions> options,
    TimeProvider clock, TallyMetrics metrics, ILogger<AlertSender> logger)
    : BackgroundService
{
    public const string HttpClientName = "tally-webhooks";

    /// <summary>Events taken at once; delivered concurrently, up to <see cref="Concurrency"/> at a time.</summary>
    private const int BatchSize = 32;
    private const int Concurrency = 8;

    /// <summary>How long an event of an alert this instance does not know yet waits for its definition to arrive.</summary>
    private static readonly TimeSpan UnknownAlertGrace = TimeSpan.FromMinutes(1);
    private static readonly TimeSpan CountEvery = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan PruneEvery = TimeSpan.FromMinutes(1);
    private static readonly TimeSpan LongestRetryAfter = TimeSpan.FromHours(24);

    private readonly IReadOnlyList<TimeSpan> _delays = options.Value.RetryDelays;
    private long _nextCount;
    private long _nextPrune;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await UpkeepIfDueAsync(stoppingToken);
                var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
                var leased = await outbox.LeaseAsync(BatchSize, now, options.Value.Lease, stoppingToken);
                if (leased.Count == 0)
                {
                    await catalog.WaitAsync(options.Value.PollInterval, stoppingToken);
                    continue;
                }
                await Parallel.ForEachAsync(leased, new ParallelOptions { MaxDegreeOfParallelism = Concurrency, CancellationToken = stoppingToken },
                    async (leasedEvent, token) => await SendAsync(leasedEvent, token));
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                // The store does not answer (readiness says so): the outbox keeps the events; look again later.
                logger.LogWarning(ex, "Alert deliveries paused: the outbox could not be read or updated");
                await Task.Delay(options.Value.PollInterval, clock, stoppingToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }
    }

    /// <summary>Every few seconds the backlog gauge; every minute a step of forgetting old delivery attempts.</summary>
    private async Task UpkeepIfDueAsync(CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
        if (now >= _nextCount)
        {
            _nextCount = now + (long)CountEvery.TotalMilliseconds;
            metrics.SetAlertBacklog(await outbox.CountAsync(cancellationToken));
        }
        if (now >= _nextPrune)
        {
            _nextPrune = now + (long)PruneEvery.TotalMilliseconds;
            await outbox.PruneDeliveriesAsync(now - (long)TimeSpan.FromDays(options.Value.DeliveryHistoryDays).TotalMilliseconds, cancellationToken);
        }
    }

    private async Task SendAsync(OutboxEvent leased, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
        var alert = catalog.Current.Find(leased.AlertId);
        if (alert is null)
        {
            // Made on an instance that knew the alert before this one did, or the alert was deleted since.
            if (now - leased.CreatedAt < UnknownAlertGrace.TotalMilliseconds)
            {
                await outbox.FinishAsync(leased, null, now + 1000, cancellationToken);
                return;
            }
            await FinishAsync(leased, new DeliveryAttempt(leased.AlertId, leased.Id, leased.Type, leased.Attempts, now, null,
                "The alert was deleted.", DeliveryOutcome.Dropped), null, cancellationToken);
            return;
        }
        if (!alert.WebhookEnabled)
        {
            await FinishAsync(leased, new DeliveryAttempt(alert.Id, leased.Id, leased.Type, leased.Attempts, now, null,
                "The alert's webhook is disabled.", DeliveryOutcome.Dropped), null, cancellationToken);
            return;
        }

        var attempt = leased.Attempts + 1;
        var (status, error, retryAfter) = await PostAsync(alert, leased, cancellationToken);
        now = clock.GetUtcNow().ToUnixTimeMilliseconds();
        if (status is >= 200 and < 300)
        {
            await FinishAsync(leased, new DeliveryAttempt(alert.Id, leased.Id, leased.Type, attempt, now, status, null, DeliveryOutcome.Delivered), null, cancellationToken);
            return;
        }
        if (status == StatusCodes.Status410Gone)
        {
            var reason = $"The receiver answered 410 Gone on {DateTimeOffset.FromUnixTimeMilliseconds(now):u}.";
            await FinishAsync(leased, new DeliveryAttempt(alert.Id, leased.Id, leased.Type, attempt, now, status,
                "The receiver answered 410 Gone: the webhook is disabled until the alert is PUT again.", DeliveryOutcome.Disabled), null, cancellationToken);
            if (await registry.DisableWebhookAsync(alert.Id, alert.Webhook, reason, now, cancellationToken))
            {
                logger.LogWarning("Alert {AlertId}: the webhook at {Host} answered 410 Gone and is disabled; PUT the alert to enable it again",
                    alert.Id, HostOf(alert.Webhook));
            }
            return;
        }
        if (attempt > _delays.Count)
        {
            await FinishAsync(leased, new DeliveryAttempt(alert.Id, leased.Id, leased.Type, attempt, now, status, error, DeliveryOutcome.GaveUp), null, cancellationToken);
            logger.LogWarning("Alert {AlertId}: event {EventId} could not be delivered to {Host} in {Attempts} attempts and is dropped (last: {Error})",
                alert.Id, leased.Id, HostOf(alert.Webhook), attempt, error);
            return;
        }
        var delay = Jittered(_delays[attempt - 1]);
        if (retryAfter is { } asked && asked > delay)
        {
            delay = asked < LongestRetryAfter ? asked : LongestRetryAfter;
        }
        await FinishAsync(leased, new DeliveryAttempt(alert.Id, leased.Id, leased.Type, attempt, now, status, error, DeliveryOutcome.Failed),
            now + (long)delay.TotalMilliseconds, cancellationToken);
    }

    private async Task FinishAsync(OutboxEvent leased, DeliveryAttempt attempt, long? retryAt, CancellationToken cancellationToken)
    {
        await outbox.FinishAsync(leased, attempt, retryAt, cancellationToken);
        metrics.RecordAlertDelivery(DeliveryAttempt.OutcomeName(attempt.Outcome));
    }

    /// <summary>One POST: the receiver's status (null: no answer) with what went wrong, and a <c>Retry-After</c> it sent.</summary>
    private async Task<(int? Status, string? Error, TimeSpan? RetryAfter)> PostAsync(AlertDefinition alert, OutboxEvent leased, CancellationToken cancellationToken)
    {
        var timestamp = clock.GetUtcNow().ToUnixTimeSeconds();
        using var request = new HttpRequestMessage(HttpMethod.Post, alert.Webhook)
        {
            Content = new StringContent(leased.Payload, Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("webhook-id", leased.Id);
        request.Headers.Add("webhook-timestamp", timestamp.ToString(CultureInfo.InvariantCulture));
        request.Headers.Add("webhook-signature", WebhookSecret.Sign(alert.Secret, leased.Id, timestamp, leased.Payload));
        request.Headers.UserAgent.Add(new ProductInfoHeaderValue("Tally-Webhooks", "1"));
        try
        {
            using var client = httpClients.CreateClient(HttpClientName);
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            var status = (int)response.StatusCode;
            return status switch
            {
                >= 200 and < 300 => (status, null, null),
                >= 300 and < 400 => (status, $"The receiver answered {status}; redirects are not followed: PUT the alert with the new URL.", null),
                _ => (status, $"The receiver answered {status}.", RetryAfterOf(response)),
            };
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return (null, $"No answer within {options.Value.DeliveryTimeoutSeconds} s.", null);
        }
        catch (HttpRequestException ex)
        {
            return (null, Describe(ex), null);
        }
    }

    private static string Describe(HttpRequestException ex)
    {
        for (Exception? inner = ex; inner is not null; inner = inner.InnerException)
        {
            switch (inner)
            {
                case WebhookRefusedException refused:
                    return refused.Message;
                case SocketException socket:
                    return socket.SocketErrorCode switch
                    {
                        SocketError.ConnectionRefused => "Connection refused.",
                        SocketError.HostNotFound or SocketError.NoData or SocketError.TryAgain => "The host name does not resolve.",
                        SocketError.TimedOut => "The connection timed out.",
                        _ => $"The connection failed ({socket.SocketErrorCode}).",
                    };
                case System.Security.Authentication.AuthenticationException:
                    return "The TLS handshake failed (the receiver's certificate is not trusted).";
            }
        }
        return ex.HttpRequestError switch
        {
            HttpRequestError.ResponseEnded or HttpRequestError.InvalidResponse => "The receiver's answer was not valid HTTP.",
            HttpRequestError.SecureConnectionError => "The TLS handshake failed.",
            _ => "The request failed before an answer.",
        };
    }

    private TimeSpan? RetryAfterOf(HttpResponseMessage response)
    {
        if (response.Headers.RetryAfter is not { } retryAfter)
        {
            return null;
        }
        if (retryAfter.Delta is { } delta)
        {
            return delta;
        }
        return retryAfter.Date is { } date ? date - clock.GetUtcNow() : null;
    }

    private static TimeSpan Jittered(TimeSpan delay) => delay * (0.8 + (Random.Shared.NextDouble() * 0.4));

    private static string HostOf(string webhook) => Uri.TryCreate(webhook, UriKind.Absolute, out var uri) ? uri.Authority : "?";

    /// <summary>The HTTP client's handler: no proxy (it would connect instead of the checked address), no redirects, the SSRF check on connect.</summary>
    public static SocketsHttpHandler CreateHandler(AlertOptions options)
    {
        var allowed = options.AllowedHostSet;
        return new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            UseCookies = false,
            ConnectTimeout = options.DeliveryTimeout,
            PooledConnectionLifetime = TimeSpan.FromMinutes(1),
            ConnectCallback = (context, cancellationToken) => WebhookAddress.ConnectAsync(context.DnsEndPoint, allowed, cancellationToken),
        };
    }
}
