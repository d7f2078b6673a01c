using System.Text.Json;
using System.Text.Json.Serialization;

namespace Tally.Client;

/// <summary>A counter as Tally shows it.</summary>
/// <param name="Name">The counter's name, case-sensitive.</param>
/// <param name="Value">The current value.</param>
/// <param name="Initial">What a reset returns to.</param>
/// <param name="Min">The inclusive lower bound, or null for none (the 64-bit limit).</param>
/// <param name="Max">The inclusive upper bound, or null for none (the 64-bit limit).</param>
/// <param name="Version">1 when created, one more with every change.</param>
/// <param name="CreatedAt">When the counter was created (UTC).</param>
/// <param name="UpdatedAt">When it last changed (UTC).</param>
public sealed record Counter(string Name, long Value, long Initial, long? Min, long? Max, long Version, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt);

/// <summary>One page of a listing in name order.</summary>
/// <param name="Items">The counters of this page.</param>
/// <param name="Next">The name to pass as <c>after</c> for the next page, or null on the last page.</param>
public sealed record CounterPage(IReadOnlyList<Counter> Items, string? Next);

/// <summary>Which buckets a history is read in.</summary>
public enum HistoryInterval
{
    /// <summary>One-minute buckets.</summary>
    Minute,

    /// <summary>One-hour buckets.</summary>
    Hour,

    /// <summary>One-day buckets (UTC days).</summary>
    Day,
}

/// <summary>A counter's history: its buckets with activity, oldest first.</summary>
/// <param name="Name">The counter.</param>
/// <param name="Interval">minute, hour or day.</param>
/// <param name="Buckets">The buckets with activity.</param>
public sealed record CounterHistory(string Name, string Interval, IReadOnlyList<HistoryBucket> Buckets);

/// <summary>One bucket of a counter's history.</summary>
/// <param name="Start">The bucket's start (UTC).</param>
/// <param name="Increments">The sum added in the bucket.</param>
/// <param name="Decrements">The sum subtracted in the bucket (a positive number).</param>
/// <param name="Sets">How many changes set the value (PUT, reset, set, import).</param>
/// <param name="Value">The value after the bucket's last change.</param>
public sealed record HistoryBucket(DateTimeOffset Start, long Increments, long Decrements, long Sets, long Value);

/// <summary>The outcome of one batch operation.</summary>
/// <param name="Status">The HTTP status of the operation (200, 201, 204, or an error status).</param>
/// <param name="Counter">The counter after the operation; null for a delete or a failure.</param>
/// <param name="Error">The operation's problem when it failed, else null.</param>
public sealed record BatchResult(int Status, Counter? Counter, TallyException? Error)
{
    /// <summary>Whether the operation succeeded.</summary>
    public bool Succeeded => Error is null;
}

/// <summary>A threshold alert as Tally shows it (never its secret, except <see cref="Secret"/> right after Tally generated one).</summary>
/// <param name="Id">The alert's id.</param>
/// <param name="Counter">The counter it watches, or null when it watches a prefix.</param>
/// <param name="Prefix">The prefix it watches, or null when it watches one counter.</param>
/// <param name="Above">The threshold of an "above" alert.</param>
/// <param name="Below">The threshold of a "below" alert.</param>
/// <param name="Resolve">The level that resolves it, as given (null: the threshold).</param>
/// <param name="Webhook">Where events are POSTed.</param>
/// <param name="WebhookEnabled">False once the receiver answered 410 Gone.</param>
/// <param name="WebhookDisabledAt">When the webhook was disabled.</param>
/// <param name="WebhookDisabledReason">Why the webhook was disabled.</param>
/// <param name="CreatedAt">When the alert was created.</param>
/// <param name="UpdatedAt">When it was last replaced.</param>
public sealed record Alert(
    string Id, string? Counter, string? Prefix, long? Above, long? Below, long? Resolve, string Webhook, bool WebhookEnabled,
    DateTimeOffset? WebhookDisabledAt, string? WebhookDisabledReason, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt)
{
    /// <summary>The webhook secret, only in the answer to the PUT that made Tally generate it; null otherwise.</summary>
    public string? Secret { get; init; }
}

/// <summary>The definition of a threshold alert (<c>PUT /alerts/{id}</c>): one of Counter/Prefix and one of Above/Below.</summary>
public sealed record AlertDefinition
{
    /// <summary>The counter to watch (it need not exist yet).</summary>
    public string? Counter { get; init; }

    /// <summary>The prefix whose counters to watch ("" for every counter).</summary>
    public string? Prefix { get; init; }

    /// <summary>Fire when a value goes strictly above this.</summary>
    public long? Above { get; init; }

    /// <summary>Fire when a value goes strictly below this.</summary>
    public long? Below { get; init; }

    /// <summary>Back to ok only past this level (hysteresis); null: the threshold.</summary>
    public long? Resolve { get; init; }

    /// <summary>An absolute http(s) URL to POST events to.</summary>
    public required string Webhook { get; init; }

    /// <summary><c>whsec_</c> and base64; null: Tally generates one for a new alert, and a replaced alert keeps its own.</summary>
    public string? Secret { get; init; }
}

/// <summary>One delivery attempt of an alert's webhook.</summary>
/// <param name="At">When it was made.</param>
/// <param name="Event">The event's id (the webhook-id header).</param>
/// <param name="Type">alert.firing or alert.resolved.</param>
/// <param name="Attempt">1 for the first attempt.</param>
/// <param name="Status">The receiver's HTTP status, or null without an answer.</param>
/// <param name="Error">What went wrong, or null.</param>
/// <param name="Outcome">delivered, failed, disabled, gave_up or dropped.</param>
public sealed record AlertDelivery(DateTimeOffset At, string Event, string Type, int Attempt, int? Status, string? Error, string Outcome);

/// <summary>An API key as listed (never its secret).</summary>
/// <param name="Id">The key's id (used to revoke it).</param>
/// <param name="Name">Its name.</param>
/// <param name="Scopes">read, increment, write, admin.</param>
/// <param name="Prefix">The counter-name prefix it may touch ("" for all).</param>
/// <param name="MaxCounters">Its own limit of live counters created, or null for the default.</param>
/// <param name="MaxAmount">Its own largest amount, or null for the default.</param>
/// <param name="CreatedAt">When it was created.</param>
public sealed record ApiKeyInfo(string Id, string Name, IReadOnlyList<string> Scopes, string Prefix, long? MaxCounters, long? MaxAmount, DateTimeOffset CreatedAt);

/// <summary>A key just created: the only time its secret <see cref="Key"/> is shown.</summary>
/// <param name="Id">The key's id.</param>
/// <param name="Key">The secret, to send as <c>Authorization: Bearer</c>.</param>
/// <param name="Name">Its name.</param>
/// <param name="Scopes">Its scopes.</param>
/// <param name="Prefix">Its prefix.</param>
/// <param name="MaxCounters">Its own counter limit, or null.</param>
/// <param name="MaxAmount">Its own amount limit, or null.</param>
/// <param name="CreatedAt">When it was created.</param>
public sealed record CreatedApiKey(string Id, string Key, string Name, IReadOnlyList<string> Scopes, string Prefix, long? MaxCounters, long? MaxAmount, DateTimeOffset CreatedAt);

/// <summary>What a new API key may do (<c>POST /admin/keys</c>).</summary>
/// <param name="Name">Printable text, 1 to 100 characters.</param>
/// <param name="Scopes">A non-empty set of read, increment, write, admin.</param>
public sealed record ApiKeyRequest(string Name, IReadOnlyList<string> Scopes)
{
    /// <summary>The counter-name prefix it may touch; "" (the default) for all.</summary>
    public string Prefix { get; init; } = "";

    /// <summary>How many live counters it may create; null for the service's default.</summary>
    public long? MaxCounters { get; init; }

    /// <summary>The largest amount of one increment or decrement; null for the service's default.</summary>
    public long? MaxAmount { get; init; }
}

/// <summary>The kind of a live event.</summary>
public enum TallyEventKind
{
    /// <summary>A counter's state after a committed change (or its current state at the start of a stream).</summary>
    Counter,

    /// <summary>A counter was deleted.</summary>
    Deleted,

    /// <summary>A threshold alert's crossing.</summary>
    Alert,
}

/// <summary>One live event from a stream.</summary>
/// <param name="Kind">What happened.</param>
/// <param name="Id">The event's id (Tally resumes from it).</param>
/// <param name="Name">The counter's name.</param>
/// <param name="Counter">The counter's state, for <see cref="TallyEventKind.Counter"/>; else null.</param>
/// <param name="Data">The event's data as sent (JSON).</param>
public sealed record TallyEvent(TallyEventKind Kind, string? Id, string? Name, Counter? Counter, string Data);

internal sealed record ItemsPage<T>(IReadOnlyList<T> Items);

internal sealed record ImportResult(int Imported);

internal sealed record CounterNameOnly(string Name);

internal sealed record AlertRequestBody(string? Counter, string? Prefix, long? Above, long? Below, long? Resolve, string Webhook, string? Secret);

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(Counter))]
[JsonSerializable(typeof(CounterPage))]
[JsonSerializable(typeof(ItemsPage<Counter>))]
[JsonSerializable(typeof(CounterHistory))]
[JsonSerializable(typeof(Alert))]
[JsonSerializable(typeof(ItemsPage<Alert>))]
[JsonSerializable(typeof(ItemsPage<AlertDelivery>))]
[JsonSerializable(typeof(ApiKeyInfo))]
[JsonSerializable(typeof(ItemsPage<ApiKeyInfo>))]
[JsonSerializable(typeof(CreatedApiKey))]
[JsonSerializable(typeof(ApiKeyRequest))]
[JsonSerializable(typeof(ImportResult))]
[JsonSerializable(typeof(CounterNameOnly))]
[JsonSerializable(typeof(AlertRequestBody))]
[JsonSerializable(typeof(AlertDelivery))]
[JsonSerializable(typeof(IReadOnlyList<Counter>))]
internal sealed partial class TallyJson : JsonSerializerContext;
