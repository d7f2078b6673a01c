using System.Text.Json;
using System.Text.Json.Serialization;

namespace Tally.Server.Alerts;

[JsonConverter(typeof(JsonStringEnumConverter<AlertDirection>))]
internal enum AlertDirection
{
    /// <summary>Fires when the value goes above the threshold.</summary>
    Above,
    /// <summary>Fires when the value goes below the threshold.</summary>
    Below,
}

/// <summary>
/// One threshold alert: what it watches (one counter, or every counter under a prefix), on which side of which
/// threshold it fires, where it resolves, and the webhook it signs its events for. Immutable; a change is a new
/// instance, stored whole.
/// </summary>
/// <param name="Resolve">The hysteresis level as given; null: the threshold itself (see <see cref="ResolveLevel"/>).</param>
/// <param name="Secret">The Standard Webhooks signing secret, <c>whsec_&lt;base64&gt;</c>: stored to sign, never shown after creation, never logged.</param>
/// <param name="Revision">
/// Changes whenever what the alert watches changes (counter or prefix, direction, threshold, resolve): states recorded
/// under another revision count as ok, so such a change starts every counter over. A new webhook or secret keeps it.
/// </param>
/// <param name="DisabledAt">When a <c>410 Gone</c> disabled the webhook (Unix ms); null while it is enabled. A PUT enables it again.</param>
internal sealed record AlertDefinition(
    string Id,
    string? Counter,
    string? Prefix,
    AlertDirection Direction,
    long Threshold,
    long? Resolve,
    string Webhook,
    string Secret,
    long Revision,
    string? CreatedBy,
    long CreatedAt,
    long UpdatedAt,
    long? DisabledAt = null,
    string? DisabledReason = null)
{
    /// <summary>The level past which a firing state returns to ok.</summary>
    [JsonIgnore]
    public long ResolveLevel => Resolve ?? Threshold;

    /// <summary>The counter name, or the prefix, the alert watches: what a key's prefix must cover to manage it.</summary>
    [JsonIgnore]
    public string Watched => Counter ?? Prefix ?? string.Empty;

    [JsonIgnore]
    public bool WebhookEnabled => DisabledAt is null;

    public bool Watches(string name) => Counter is not null
        ? string.Equals(name, Counter, StringComparison.Ordinal)
        : name.StartsWith(Prefix ?? string.Empty, StringComparison.Ordinal);

    /// <summary>ok → firing: strictly past the threshold (<c>above</c>: value &gt; threshold; <c>below</c>: value &lt; threshold).</summary>
    public bool Fires(long value) => Direction == AlertDirection.Above ? value > Threshold : value < Threshold;

    /// <summary>firing → ok: back at or before the resolve level (<c>above</c>: value ≤ resolve; <c>below</c>: value ≥ resolve).</summary>
    public bool Resolves(long value) => Direction == AlertDirection.Above ? value <= ResolveLevel : value >= ResolveLevel;

    /// <summary>Whether the other definition watches the same thing the same way (then the states carry over).</summary>
    public bool SameWatch(AlertDefinition other) =>
        Counter == other.Counter && Prefix == other.Prefix && Direction == other.Direction && Threshold == other.Threshold && Resolve == other.Resolve;

    /// <summary>The stored form (JSON, secret included): one document per alert in every engine.</summary>
    public string ToDocument() => JsonSerializer.Serialize(this, AlertStorageJsonContext.Default.AlertDefinition);

    public static AlertDefinition FromDocument(string document) =>
        JsonSerializer.Deserialize(document, AlertStorageJsonContext.Default.AlertDefinition)
        ?? throw new JsonException("An alert document is null.");

    /// <summary>A new revision: random, so a deleted and re-created alert never matches the states of the old one.</summary>
    public static long NewRevision() => Random.Shared.NextInt64(1, long.MaxValue);
}

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(AlertDefinition))]
internal sealed partial class AlertStorageJsonContext : JsonSerializerContext;
