using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Tally.Server.Auth;
using Tally.Server.Counters;
using Tally.Server.Http;

namespace Tally.Server.Alerts;

/// <summary>
/// <c>/alerts</c>: threshold alerts on a counter or a prefix, and their delivery attempts. Managing an alert needs
/// <c>write</c> (or <c>admin</c>) on what it watches: a key with a prefix sees and changes only the alerts inside it.
/// </summary>
internal static class AlertEndpoints
{
    public const string InvalidAlertId = "invalid_alert_id";
    public const string InvalidAlert = "invalid_alert";
    public const string InvalidWebhook = "invalid_webhook";
    public const string WebhookNotAllowed = "webhook_not_allowed";
    public const string InvalidSecret = "invalid_secret";
    public const string AlertNotFound = "alert_not_found";
    public const string AlertQuotaExceeded = "alert_quota_exceeded";

    public const int DefaultDeliveries = 100;
    public const int MaxDeliveries = 1000;

    private const string WhatToSend =
        "Send {\"counter\": \"signups\", \"above\": 1000, \"webhook\": \"https://example.com/hooks/tally\"} (or \"prefix\", \"below\", \"resolve\", \"secret\").";

    public static RouteGroupBuilder MapAlerts(this IEndpointRouteBuilder routes)
    {
        var group = routes.MapGroup("/alerts").WithTags("Alerts").RequireAuthorization(AuthPolicies.Write).RefuseUnknownQuery();
        group.MapGet("/", ListAlerts).WithName("ListAlerts").WithSummary("List the alerts this key may manage (no secrets)");
        group.MapGet("/{id}", GetAlert).WithName("GetAlert").WithSummary("Read an alert (never its secret)")
            .ProducesProblem(StatusCodes.Status404NotFound);
        group.MapPut("/{id}", PutAlert).WithName("PutAlert").WithSummary("Create or replace a threshold alert; a generated secret is shown this once")
            .Accepts<AlertRequest>("application/json")
            .ProducesProblem(StatusCodes.Status400BadRequest).ProducesProblem(StatusCodes.Status403Forbidden).ProducesProblem(StatusCodes.Status415UnsupportedMediaType);
        group.MapDelete("/{id}", DeleteAlert).WithName("DeleteAlert").WithSummary("Delete an alert with its undelivered events")
            .ProducesProblem(StatusCodes.Status404NotFound);
        group.MapGet("/{id}/deliveries", ListDeliveries).WithName("ListAlertDeliveries").WithSummary("The alert's latest delivery attempts, newest first")
            .AllowQuery("limit").ProducesProblem(StatusCodes.Status404NotFound);
        return group;
    }

    private static Ok<AlertListResponse> ListAlerts(HttpContext context, AlertRegistry registry)
    {
        var caller = Caller.From(context.User)!;
        return TypedResults.Ok(new AlertListResponse([.. registry.Current.All.Where(alert => caller.Covers(alert.Watched)).Select(AlertResponse.From)]));
    }

    private static Results<Ok<AlertResponse>, ProblemHttpResult> GetAlert(string id, HttpContext context, AlertRegistry registry) =>
        Visible(id, context, registry) is { } alert ? TypedResults.Ok(AlertResponse.From(alert)) : NotFound(id);

    private static async Task<Results<NoContent, ProblemHttpResult>> DeleteAlert(string id, HttpContext context, AlertRegistry registry, ILogger<AlertRegistry> logger)
    {
        if (await RequestBody.RefuseAsync(context.Request, "DELETE takes no body. Nothing changed.") is ProblemHttpResult hasBody)
        {
            return hasBody;
        }
        if (Visible(id, context, registry) is null)
        {
            return NotFound(id);
        }
        try
        {
            await registry.RemoveAsync(id, context.RequestAborted);
        }
        catch (AlertStoreException ex)
        {
            return StoreUnavailable(context, logger, ex);
        }
        logger.LogInformation("Deleted alert {AlertId}", id);
        return TypedResults.NoContent();
    }

    private static async Task<Results<Ok<DeliveryListResponse>, ProblemHttpResult>> ListDeliveries(
        string id, HttpContext context, AlertRegistry registry, IAlertOutbox outbox, string? limit = null)
    {
        if (Visible(id, context, registry) is null)
        {
            return NotFound(id);
        }
        long count = DefaultDeliveries;
        if (limit is not null && (!RequestParsing.TryParseDigits(limit, out count) || count is < 1 or > MaxDeliveries))
        {
            return Problems.Create(Problems.InvalidQuery, $"'limit' must be an integer from 1 to {MaxDeliveries}.");
        }
        var attempts = await outbox.ListDeliveriesAsync(id, (int)count, context.RequestAborted);
        return TypedResults.Ok(new DeliveryListResponse([.. attempts.Select(DeliveryResponse.From)]));
    }

    private static async Task<Results<Created<AlertResponse>, Ok<AlertResponse>, ProblemHttpResult>> PutAlert(
        string id, HttpContext context, AlertRegistry registry, IOptions<AlertOptions> options, TimeProvider clock, ILogger<AlertRegistry> logger)
    {
        if (!IsValidId(id))
        {
            return Problems.Create(InvalidAlertId, $"'{Truncate(id)}' is not a valid alert id: use ^[A-Za-z0-9][A-Za-z0-9._:-]{{0,63}}$.");
        }
        var (body, bodyProblem) = await RequestBody.ReadJsonAsync(context.Request);
        if (bodyProblem is ProblemHttpResult unreadable)
        {
            return unreadable;
        }
        if (ParseRequest(body, out var request) is { } invalid)
        {
            return invalid;
        }

        var caller = Caller.From(context.User)!;
        var watched = request.Counter ?? request.Prefix!;
        if (!caller.Covers(watched))
        {
            return Problems.Create(Problems.Forbidden,
                $"The alert would watch '{Truncate(watched)}', outside this key's prefix '{caller.Prefix}'. Nothing was stored.");
        }
        var existing = registry.Current.Find(id);
        if (existing is not null && !caller.Covers(existing.Watched))
        {
            return Problems.Create(Problems.Forbidden, $"The alert '{id}' exists and watches outside this key's prefix '{caller.Prefix}'. Nothing was stored.");
        }
        if (existing is null && registry.Current.All.Count >= options.Value.MaxAlerts)
        {
            return Problems.Create(AlertQuotaExceeded, $"The store holds {options.Value.MaxAlerts} alerts, its most (Alerts:MaxAlerts). Delete one first. Nothing was stored.");
        }
        if (await CheckWebhookAsync(request.Webhook, options.Value, context.RequestAborted) is { } refused)
        {
            return refused;
        }

        // The secret sent is taken; none on a replacement keeps the alert's; null, or none on a new alert, makes one, shown this once.
        string? generated = null;
        var secret = request.Secret ?? (!request.SecretGiven && existing is not null ? existing.Secret : generated = WebhookSecret.Generate());
        var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
        var alert = new AlertDefinition(id, request.Counter, request.Prefix, request.Direction, request.Threshold, request.Resolve, request.Webhook,
            secret, Revision: 0, existing?.CreatedBy ?? caller.KeyId, existing?.CreatedAt ?? now, now);
        // What it watches unchanged: the states carry over; changed: every counter starts over as ok.
        alert = alert with { Revision = existing is not null && existing.SameWatch(alert) ? existing.Revision : AlertDefinition.NewRevision() };
        try
        {
            await registry.PutAsync(alert, context.RequestAborted);
        }
        catch (AlertStoreException ex)
        {
            return StoreUnavailable(context, logger, ex);
        }
        // Never the secret, nor the webhook's path or query (they may hold a token of the receiver's): its host.
        logger.LogInformation("{Change} alert {AlertId} on {Kind} '{Watched}' ({Direction} {Threshold}) to a webhook at {Host}",
            existing is null ? "Created" : "Replaced", id, alert.Counter is null ? "prefix" : "counter", watched,
            alert.Direction == AlertDirection.Above ? "above" : "below", alert.Threshold, new Uri(alert.Webhook).Authority);

        var response = AlertResponse.From(alert) with { Secret = generated };
        if (generated is not null)
        {
            // The only answer that ever carries the secret: no cache may keep it.
            context.Response.Headers.CacheControl = "no-store";
        }
        return existing is null ? TypedResults.Created($"/alerts/{id}", response) : TypedResults.Ok(response);
    }

    private static async Task<ProblemHttpResult?> CheckWebhookAsync(string webhook, AlertOptions options, CancellationToken cancellationToken)
    {
        if (WebhookAddress.Parse(webhook, out var problem) is not { } uri)
        {
            return Problems.Create(InvalidWebhook, problem!);
        }
        try
        {
            return await WebhookAddress.CheckHostAsync(uri.IdnHost, options.AllowedHostSet, cancellationToken) is { } refusal
                ? Problems.Create(WebhookNotAllowed, refusal + " Nothing was stored.")
                : null;
        }
        catch (SocketException)
        {
            return Problems.Create(InvalidWebhook, $"The webhook host '{Truncate(uri.Host)}' does not resolve. Nothing was stored.");
        }
    }

    /// <summary>The alert, if it exists and the caller may manage it; an alert outside the key's prefix is as good as absent.</summary>
    private static AlertDefinition? Visible(string id, HttpContext context, AlertRegistry registry) =>
        registry.Current.Find(id) is { } alert && Caller.From(context.User)!.Covers(alert.Watched) ? alert : null;

    /// <summary>
    /// <c>{"counter"|"prefix", "above"|"below", "resolve"?, "webhook", "secret"?}</c>; unknown or repeated members are refused.
    /// </summary>
    internal static ProblemHttpResult? ParseRequest(ReadOnlyMemory<byte> body, out ParsedAlert request)
    {
        request = default!;
        if (RequestParsing.ParseDocument(body, 4, WhatToSend, out var document) is { } problem)
        {
            return problem;
        }
        using (document)
        {
            try
            {
                return ParseObject(document.RootElement, out request);
            }
            catch (InvalidOperationException)
            {
                return RequestParsing.NotText();
            }
        }
    }

    private static ProblemHttpResult? ParseObject(JsonElement root, out ParsedAlert request)
    {
        request = default!;
        if (root.ValueKind != JsonValueKind.Object)
        {
            return Problems.Create(Problems.InvalidBody, "The body must be a JSON object. " + WhatToSend);
        }
        string? counter = null, prefix = null, webhook = null, secret = null;
        long? above = null, below = null, resolve = null;
        var secretGiven = false;
        foreach (var member in root.EnumerateObject())
        {
            switch (member.Name)
            {
                case "counter":
                    if (member.Value.ValueKind != JsonValueKind.String || !CounterName.IsValid(member.Value.GetString()))
                    {
                        return Problems.Create(InvalidAlert, $"'counter' must be a counter name: {CounterName.Pattern}.");
                    }
                    counter = member.Value.GetString();
                    break;
                case "prefix":
                    if (member.Value.ValueKind != JsonValueKind.String || !CounterName.IsValidPrefix(member.Value.GetString()))
                    {
                        return Problems.Create(InvalidAlert, "'prefix' must be the beginning of a counter name, such as \"api:\" (\"\" watches every counter).");
                    }
                    prefix = member.Value.GetString();
                    break;
                case "above" or "below" or "resolve":
                    if (member.Value.ValueKind == JsonValueKind.Null && member.Name == "resolve")
                    {
                        break;
                    }
                    if (member.Value.ValueKind != JsonValueKind.Number || !member.Value.TryGetInt64(out var level))
                    {
                        return Problems.Create(InvalidAlert, $"'{member.Name}' must be an integer from {long.MinValue} to {long.MaxValue}.");
                    }
                    if (member.Name == "above")
                    {
                        above = level;
                    }
                    else if (member.Name == "below")
                    {
                        below = level;
                    }
                    else
                    {
                        resolve = level;
                    }
                    break;
                case "webhook":
                    if (member.Value.ValueKind != JsonValueKind.String)
                    {
                        return Problems.Create(InvalidWebhook, "'webhook' must be an http or https URL, as a string.");
                    }
                    webhook = member.Value.GetString();
                    break;
                case "secret":
                    secretGiven = true;
                    if (member.Value.ValueKind == JsonValueKind.Null)
                    {
                        break;
                    }
                    if (WebhookSecret.Check(member.Value.ValueKind == JsonValueKind.String ? member.Value.GetString()! : string.Empty) is { } badSecret)
                    {
                        return Problems.Create(InvalidSecret, badSecret);
                    }
                    secret = member.Value.GetString();
                    break;
                default:
                    return Problems.Create(Problems.InvalidBody,
                        $"Unknown member '{Truncate(member.Name)}'; an alert has counter or prefix, above or below, resolve, webhook and secret.");
            }
        }
        if ((counter is null) == (prefix is null))
        {
            return Problems.Create(InvalidAlert, "Give exactly one of 'counter' (one counter) and 'prefix' (every counter under it).");
        }
        if ((above is null) == (below is null))
        {
            return Problems.Create(InvalidAlert, "Give exactly one of 'above' and 'below': the threshold.");
        }
        var direction = above is not null ? AlertDirection.Above : AlertDirection.Below;
        var threshold = above ?? below!.Value;
        if (resolve is { } back && (direction == AlertDirection.Above ? back > threshold : back < threshold))
        {
            return Problems.Create(InvalidAlert, direction == AlertDirection.Above
                ? $"'resolve' ({back}) must be at or below 'above' ({threshold}): the alert is back to ok once the value is at or below it."
                : $"'resolve' ({back}) must be at or above 'below' ({threshold}): the alert is back to ok once the value is at or above it.");
        }
        if (webhook is null)
        {
            return Problems.Create(InvalidWebhook, "'webhook' is required: the http or https URL the alert's events are POSTed to.");
        }
        request = new ParsedAlert(counter, prefix, direction, threshold, resolve, webhook, secretGiven, secret);
        return null;
    }

    /// <summary>Alert ids: <c>^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$</c>, case-sensitive.</summary>
    public static bool IsValidId(string id) => id.Length <= 64 && CounterName.IsValid(id);

    private static ProblemHttpResult NotFound(string id) =>
        Problems.Create(AlertNotFound, $"There is no alert '{Truncate(id)}' that this key may manage.");

    private static ProblemHttpResult StoreUnavailable(HttpContext context, ILogger logger, AlertStoreException ex)
    {
        logger.LogError(ex, "An alert change could not be stored");
        context.Response.Headers.RetryAfter = "1";
        return Problems.Create(Counters.ErrorCodes.StoreUnavailable, "The store could not write the alert; nothing changed. Retry shortly.");
    }

    private static string Truncate(string text) => text.Length <= 140 ? text : text[..140] + "…";
}

/// <summary>A parsed PUT body. <see cref="SecretGiven"/> with a null <see cref="Secret"/>: generate a new one.</summary>
internal sealed record ParsedAlert(
    string? Counter, string? Prefix, AlertDirection Direction, long Threshold, long? Resolve, string Webhook, bool SecretGiven, string? Secret);

/// <summary>For the OpenAPI document: the body of <c>PUT /alerts/{id}</c>.</summary>
internal sealed record AlertRequest(string? Counter, string? Prefix, long? Above, long? Below, long? Resolve, string Webhook, string? Secret);

/// <summary>An alert as the API shows it: never its secret, except <see cref="Secret"/> in the answer to the PUT that generated it.</summary>
internal sealed record AlertResponse(
    string Id, string? Counter, string? Prefix, long? Above, long? Below, long? Resolve, string Webhook, bool WebhookEnabled,
    DateTime? WebhookDisabledAt, string? WebhookDisabledReason, DateTime CreatedAt, DateTime UpdatedAt)
{
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Secret { get; init; }

    public static AlertResponse From(AlertDefinition alert) => new(
        alert.Id, alert.Counter, alert.Prefix,
        alert.Direction == AlertDirection.Above ? alert.Threshold : null,
        alert.Direction == AlertDirection.Below ? alert.Threshold : null,
        alert.Resolve, alert.Webhook, alert.WebhookEnabled,
        alert.DisabledAt is { } at ? DateTime.UnixEpoch.AddMilliseconds(at) : null, alert.DisabledReason,
        DateTime.UnixEpoch.AddMilliseconds(alert.CreatedAt), DateTime.UnixEpoch.AddMilliseconds(alert.UpdatedAt));
}

internal sealed record AlertListResponse(IReadOnlyList<AlertResponse> Items);

/// <summary>One delivery attempt as listed.</summary>
internal sealed record DeliveryResponse(DateTime At, string Event, string Type, int Attempt, int? Status, string? Error, string Outcome)
{
    public static DeliveryResponse From(DeliveryAttempt attempt) => new(
        DateTime.UnixEpoch.AddMilliseconds(attempt.At), attempt.EventId, attempt.TypeName, attempt.Attempt, attempt.Status, attempt.Error,
        DeliveryAttempt.OutcomeName(attempt.Outcome));
}

internal sealed record DeliveryListResponse(IReadOnlyList<DeliveryResponse> Items);

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
[JsonSerializable(typeof(AlertResponse))]
[JsonSerializable(typeof(AlertListResponse))]
[JsonSerializable(typeof(DeliveryListResponse))]
[JsonSerializable(typeof(AlertRequest))]
internal sealed partial class AlertJsonContext : JsonSerializerContext;
