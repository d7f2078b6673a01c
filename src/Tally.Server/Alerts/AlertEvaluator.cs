using System.Buffers;
using System.Text;
using System.Text.Json;
using Tally.Server.Counters;

namespace Tally.Server.Alerts;

internal enum AlertEventType
{
    Firing,
    Resolved,
}

/// <summary>
/// The committed state of (alert, counter) pairs, as an engine loaded it for one commit. Only firing states are kept:
/// a pair with no entry is ok.
/// </summary>
internal interface IAlertStates
{
    /// <summary>The revision of the alert under which the pair turned firing, or null when it is ok.</summary>
    long? FiringRevision(string alertId, string counter);
}

/// <summary>The firing states in a dictionary: an engine's load of them, or (SQLite, memory) all of them in memory.</summary>
internal sealed class AlertStateMap : IAlertStates
{
    public Dictionary<(string AlertId, string Counter), long> Firing { get; } = [];

    public long? FiringRevision(string alertId, string counter) =>
        Firing.TryGetValue((alertId, counter), out var revision) ? revision : null;

    /// <summary>Makes the map what a committed <paramref name="outcome"/> left.</summary>
    public void Apply(AlertOutcome outcome)
    {
        foreach (var ((alertId, counter), revision) in outcome.States)
        {
            if (revision is { } firing)
            {
                Firing[(alertId, counter)] = firing;
            }
            else
            {
                Firing.Remove((alertId, counter));
            }
        }
    }
}

/// <summary>One transition of one (alert, counter) pair, to deliver: <see cref="Payload"/> is the webhook body, fixed at commit.</summary>
/// <param name="Id">The Standard Webhooks message id (<c>webhook-id</c>): <c>evt_</c> and 32 hex digits, no dots, the same on every retry.</param>
/// <param name="CreatedAt">The commit's time, Unix ms.</param>
internal sealed record AlertEvent(string Id, string AlertId, AlertEventType Type, string Payload, long CreatedAt)
{
    public string TypeName => Type == AlertEventType.Firing ? "alert.firing" : "alert.resolved";

    public static string NewId() => "evt_" + Guid.CreateVersion7().ToString("N");

    public static AlertEventType ParseType(string name) => name == "alert.firing" ? AlertEventType.Firing : AlertEventType.Resolved;
}

/// <summary>What one commit does to alerts: the final state of each (alert, counter) pair it changed, and its events in order.</summary>
internal sealed class AlertOutcome
{
    /// <summary>(alert, counter) → the revision it now fires under, or null: ok (no state kept).</summary>
    public Dictionary<(string AlertId, string Counter), long?> States { get; } = [];

    public List<AlertEvent> Events { get; } = [];

    public bool IsEmpty => States.Count == 0 && Events.Count == 0;

    /// <summary>Adds a later commit's outcome (Durability=async: several commits written by one flush).</summary>
    public void Add(AlertOutcome later)
    {
        foreach (var (pair, revision) in later.States)
        {
            States[pair] = revision;
        }
        Events.AddRange(later.Events);
    }

    public void Clear()
    {
        States.Clear();
        Events.Clear();
    }
}

/// <summary>
/// The alert state machine, pure and shared by every engine except Redis, whose tally.lua runs the same rules inside
/// its commit (and must agree with this, rule for rule). For each committed change, in commit order, and each alert
/// that watches the counter:
/// <list type="bullet">
/// <item>a pair with no state, or a state recorded under another revision of the alert, is <c>ok</c>;</item>
/// <item><c>ok</c> → <c>firing</c> when the value after the change is strictly past the threshold
/// (<see cref="AlertDefinition.Fires"/>): one <c>alert.firing</c> event;</item>
/// <item><c>firing</c> → <c>ok</c> when it is back at or before the resolve level
/// (<see cref="AlertDefinition.Resolves"/>): one <c>alert.resolved</c> event;</item>
/// <item>deleting a firing counter resolves it (an <c>alert.resolved</c> event with <c>deleted: true</c>); a deleted
/// counter keeps no state, so one created again later starts ok;</item>
/// <item>any other change sends nothing. While the alert's webhook is disabled (<c>410</c>) states still change,
/// but no event is written.</item>
/// </list>
/// </summary>
internal static class AlertEvaluator
{
    /// <summary>What <paramref name="changes"/> do to the alerts; null when no alert watches any of them.</summary>
    public static AlertOutcome? Evaluate(AlertSet alerts, IReadOnlyList<CounterChange> changes, IAlertStates committed, long now)
    {
        if (alerts.IsEmpty || changes.Count == 0)
        {
            return null;
        }
        AlertOutcome? outcome = null;
        var matching = new List<AlertDefinition>();
        foreach (var change in changes)
        {
            matching.Clear();
            alerts.Matching(change.Name, matching);
            foreach (var alert in matching)
            {
                outcome ??= new AlertOutcome();
                var pair = (alert.Id, change.Name);
                var recorded = outcome.States.TryGetValue(pair, out var overlay) ? overlay : committed.FiringRevision(alert.Id, change.Name);
                var firing = recorded == alert.Revision;
                AlertEventType? transition = null;
                if (change.After is not { } after)
                {
                    transition = firing ? AlertEventType.Resolved : null;
                }
                else if (!firing && alert.Fires(after.Value))
                {
                    transition = AlertEventType.Firing;
                }
                else if (firing && alert.Resolves(after.Value))
                {
                    transition = AlertEventType.Resolved;
                }

                if (transition is { } type)
                {
                    outcome.States[pair] = type == AlertEventType.Firing ? alert.Revision : null;
                    if (alert.WebhookEnabled)
                    {
                        outcome.Events.Add(new AlertEvent(AlertEvent.NewId(), alert.Id, type, AlertPayload.Render(alert, type, change.Name, change.After, now), now));
                    }
                }
                else if (recorded is not null && !firing)
                {
                    outcome.States[pair] = null; // recorded under an older revision of the alert: dropped
                }
            }
        }
        if (outcome is null)
        {
            return null;
        }
        // Only what differs from the committed state is written.
        foreach (var (pair, revision) in outcome.States.ToList())
        {
            if (committed.FiringRevision(pair.AlertId, pair.Counter) == revision)
            {
                outcome.States.Remove(pair);
            }
        }
        return outcome.IsEmpty ? null : outcome;
    }
}

/// <summary>
/// The webhook body, in the Standard Webhooks payload shape:
/// <c>{"type":"alert.firing","timestamp":"…","data":{"alert":…,"counter":…,"state":…,"value":…,"version":…,"direction":…,"threshold":…,"resolve":…,"deleted":…}}</c>.
/// Written once, at commit, and sent byte for byte on every attempt.
/// </summary>
internal static class AlertPayload
{
    /// <summary>The event's time as the payload shows it: ISO 8601, UTC, milliseconds.</summary>
    public static string Timestamp(long now) =>
        DateTimeOffset.FromUnixTimeMilliseconds(now).UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The counter a payload is about (<c>data.counter</c>), or null if it names none.</summary>
    public static string? CounterOf(string payload)
    {
        using var document = JsonDocument.Parse(payload);
        return document.RootElement.TryGetProperty("data", out var data) && data.ValueKind == JsonValueKind.Object
            && data.TryGetProperty("counter", out var counter) && counter.ValueKind == JsonValueKind.String ? counter.GetString() : null;
    }

    public static string Render(AlertDefinition alert, AlertEventType type, string counter, Counter? after, long now)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("type", type == AlertEventType.Firing ? "alert.firing" : "alert.resolved");
            json.WriteString("timestamp", Timestamp(now));
            json.WriteStartObject("data");
            json.WriteString("alert", alert.Id);
            json.WriteString("counter", counter);
            json.WriteString("state", type == AlertEventType.Firing ? "firing" : "ok");
            if (after is not null)
            {
                json.WriteNumber("value", after.Value);
                json.WriteNumber("version", after.Version);
            }
            else
            {
                json.WriteNull("value");
                json.WriteNull("version");
            }
            json.WriteString("direction", alert.Direction == AlertDirection.Above ? "above" : "below");
            json.WriteNumber("threshold", alert.Threshold);
            json.WriteNumber("resolve", alert.ResolveLevel);
            json.WriteBoolean("deleted", after is null);
            json.WriteEndObject();
            json.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }
}
