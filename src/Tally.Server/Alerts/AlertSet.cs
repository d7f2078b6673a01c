using System.Threading.Channels;
using Tally.Server.Observability;

namespace Tally.Server.Alerts;

/// <summary>
/// The alert definitions at one moment, indexed for the commit path: alerts on one counter by name, alerts on a
/// prefix in a short list. Immutable; a change publishes a new set (<see cref="AlertCatalog"/>).
/// </summary>
internal sealed class AlertSet
{
    public static readonly AlertSet Empty = new([]);

    private readonly Dictionary<string, AlertDefinition> _byId;
    private readonly Dictionary<string, AlertDefinition[]> _byCounter;
    private readonly AlertDefinition[] _prefixed;

    public AlertSet(IEnumerable<AlertDefinition> alerts)
    {
        All = [.. alerts.OrderBy(alert => alert.Id, StringComparer.Ordinal)];
        _byId = All.ToDictionary(alert => alert.Id, StringComparer.Ordinal);
        _byCounter = All.Where(alert => alert.Counter is not null)
            .GroupBy(alert => alert.Counter!, StringComparer.Ordinal)
            .ToDictionary(group => group.Key, group => group.ToArray(), StringComparer.Ordinal);
        _prefixed = [.. All.Where(alert => alert.Counter is null)];
    }

    /// <summary>Every alert, in id order.</summary>
    public IReadOnlyList<AlertDefinition> All { get; }

    public bool IsEmpty => All.Count == 0;

    public AlertDefinition? Find(string id) => _byId.GetValueOrDefault(id);

    /// <summary>Adds the alerts that watch <paramref name="name"/> to <paramref name="into"/>, in id order within each kind.</summary>
    public void Matching(string name, List<AlertDefinition> into)
    {
        if (_byCounter.TryGetValue(name, out var exact))
        {
            into.AddRange(exact);
        }
        foreach (var alert in _prefixed)
        {
            if (alert.Watches(name))
            {
                into.Add(alert);
            }
        }
    }

    public bool Watches(string name)
    {
        if (_byCounter.ContainsKey(name))
        {
            return true;
        }
        foreach (var alert in _prefixed)
        {
            if (alert.Watches(name))
            {
                return true;
            }
        }
        return false;
    }

    public AlertSet With(AlertDefinition alert) => new(All.Where(other => other.Id != alert.Id).Append(alert));

    public AlertSet Without(string id) => new(All.Where(other => other.Id != id));
}

/// <summary>
/// Where the engines find the current alert definitions (kept by the engine's <see cref="AlertRegistry"/>) and how they
/// tell the sender that a commit wrote events to the outbox, so it delivers at once rather than at its next poll.
/// </summary>
internal sealed class AlertCatalog(TallyMetrics metrics, Events.EventHub? events = null)
{
    private readonly Channel<bool> _wake = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private volatile AlertSet _current = AlertSet.Empty;

    public AlertSet Current => _current;

    public void Publish(AlertSet alerts) => _current = alerts;

    /// <summary>
    /// An engine committed (durably) the events of <paramref name="outcome"/>: counted, the sender woken, and each event
    /// put on this instance's live streams of its counter (<c>event: alert</c>, the webhook's payload).
    /// </summary>
    public void Committed(AlertOutcome outcome)
    {
        var firing = outcome.Events.Count(e => e.Type == AlertEventType.Firing);
        Committed(firing, outcome.Events.Count - firing);
        if (events is not null)
        {
            foreach (var e in outcome.Events)
            {
                if (AlertPayload.CounterOf(e.Payload) is { } counter)
                {
                    events.PublishAlert(counter, e.Payload);
                }
            }
        }
    }

    /// <summary>An engine that evaluates in the store (Redis) reports the events it committed: on this instance's live streams.</summary>
    public void Published(IReadOnlyList<Events.RemoteAlert> committed)
    {
        foreach (var alert in committed)
        {
            events?.PublishAlert(alert.Counter, alert.Payload);
        }
    }

    /// <summary>As <see cref="Committed(AlertOutcome)"/>, for an engine that evaluates in the store (Redis) and reports counts.</summary>
    public void Committed(int firing, int resolved)
    {
        if (firing + resolved == 0)
        {
            return;
        }
        metrics.RecordAlertEvents(firing, resolved);
        Wake();
    }

    /// <summary>Events reached the outbox (a deferred flush): the sender looks now.</summary>
    public void Wake() => _wake.Writer.TryWrite(true);

    /// <summary>Waits until woken or <paramref name="timeout"/> passes.</summary>
    public async Task WaitAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var timer = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timer.CancelAfter(timeout);
        try
        {
            await _wake.Reader.ReadAsync(timer.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // The poll interval passed.
        }
    }
}
