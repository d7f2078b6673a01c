using System.Diagnostics.Metrics;
using Tally.Server.Counters;

namespace Tally.Server.Observability;

/// <summary>
/// Tally's own instruments (meter "Tally"). No counter names as labels: their number is unbounded.
/// </summary>
internal sealed class TallyMetrics : IDisposable
{
    public const string MeterName = "Tally";

    private static readonly KeyValuePair<string, object?> LocalOrigin = new("origin", "local");
    private static readonly KeyValuePair<string, object?> RemoteOrigin = new("origin", "remote");

    private readonly Meter _meter;
    private readonly Counter<long> _operations;
    private readonly Histogram<int> _batchSize;
    private readonly Histogram<double> _commitDuration;
    private readonly Counter<long> _storeErrors;
    private readonly Counter<long> _storeWrites;
    private readonly Counter<long> _eventsPublished;
    private readonly Counter<long> _streamsDropped;
    private readonly Counter<long> _alertEvents;
    private readonly Counter<long> _alertDeliveries;
    private long _alertBacklog;

    public TallyMetrics(IMeterFactory meterFactory)
    {
        _meter = meterFactory.Create(MeterName);
        _operations = _meter.CreateCounter<long>("tally.operations", "{operation}", "Counter operations by kind and outcome.");
        _batchSize = _meter.CreateHistogram<int>("tally.commit.batch_size", "{operation}", "Operations per commit (group commit).");
        _commitDuration = _meter.CreateHistogram<double>("tally.commit.duration", "s", "Time to apply and durably commit one batch.");
        _storeErrors = _meter.CreateCounter<long>("tally.store.errors", "{error}", "Commits or flushes the store failed.");
        _storeWrites = _meter.CreateCounter<long>("tally.store.writes", "{transaction}", "Durable write transactions (disk flushes) the store made.");

        _eventsPublished = _meter.CreateCounter<long>("tally.events.published", "{event}",
            "Live events made for this instance's streams, by origin: local (its own commits) or remote (other instances').");
        _streamsDropped = _meter.CreateCounter<long>("tally.events.streams_dropped", "{stream}", "Event streams ended because their client read too slowly.");

        // Exported as 0 from the start, so that rate() and increase() see the first error.
        _storeErrors.Add(0);
        _storeWrites.Add(0);
        _eventsPublished.Add(0, LocalOrigin);
        _eventsPublished.Add(0, RemoteOrigin);
        _streamsDropped.Add(0);

        _alertEvents = _meter.CreateCounter<long>("tally.alerts.events", "{event}", "Alert transitions committed to the outbox, by type (firing, resolved).");
        _alertDeliveries = _meter.CreateCounter<long>("tally.alerts.deliveries", "{attempt}", "Webhook delivery attempts by outcome.");
        _meter.CreateObservableGauge("tally.alerts.backlog", () => Interlocked.Read(ref _alertBacklog), "{event}", "Alert events in the outbox, not yet delivered.");
        foreach (var type in (string[])["firing", "resolved"])
        {
            _alertEvents.Add(0, new KeyValuePair<string, object?>("type", type));
        }
        foreach (var outcome in (string[])["delivered", "failed", "disabled", "gave_up", "dropped"])
        {
            _alertDeliveries.Add(0, new KeyValuePair<string, object?>("outcome", outcome));
        }
    }

    public void RecordAlertEvents(int firing, int resolved)
    {
        _alertEvents.Add(firing, new KeyValuePair<string, object?>("type", "firing"));
        _alertEvents.Add(resolved, new KeyValuePair<string, object?>("type", "resolved"));
    }

    public void RecordAlertDelivery(string outcome) => _alertDeliveries.Add(1, new KeyValuePair<string, object?>("outcome", outcome));

    public void SetAlertBacklog(long events) => Interlocked.Exchange(ref _alertBacklog, events);

    /// <summary>Registers the gauge of how many counters exist; called once the store is known.</summary>
    public void ObserveCounterCount(Func<long> count) =>
        _meter.CreateObservableGauge("tally.counters", count, "{counter}", "Counters that exist.");

    public void ObserveClusterSize(Func<int> instances) =>
        _meter.CreateObservableGauge("tally.cluster.instances", instances, "{instance}", "Instances sharing the store (1 for the embedded store); rate limits are split between them.");

    /// <summary>Registers the gauge of open event streams; called once by the event hub.</summary>
    public void ObserveOpenStreams(Func<int> streams) =>
        _meter.CreateObservableGauge("tally.events.streams", streams, "{stream}", "Event streams (Server-Sent Events) open on this instance.");

    public void RecordEventsPublished(int count, bool remote)
    {
        if (count > 0)
        {
            _eventsPublished.Add(count, remote ? RemoteOrigin : LocalOrigin);
        }
    }

    public void RecordStreamsDropped(int count) => _streamsDropped.Add(count);

    public void RecordOperation(string op, string outcome, long count = 1) =>
        _operations.Add(count, new KeyValuePair<string, object?>("op", op), new KeyValuePair<string, object?>("outcome", outcome));

    public void RecordCommit(int batchSize, TimeSpan duration, bool committed)
    {
        _batchSize.Record(batchSize);
        _commitDuration.Record(duration.TotalSeconds);
        if (!committed)
        {
            _storeErrors.Add(1);
        }
    }

    public void RecordStoreWrite() => _storeWrites.Add(1);

    public void RecordStoreError() => _storeErrors.Add(1);

    /// <summary>The outcome label: "ok", "created", "deleted", or the error code.</summary>
    public static string OutcomeOf(CommandResult result) => result.Status switch
    {
        CommandStatus.Created => "created",
        CommandStatus.Deleted => "deleted",
        CommandStatus.Failed => result.Error!.Code,
        _ => "ok",
    };

    public static string OpName(CommandKind kind) => kind switch
    {
        CommandKind.Get => "get",
        CommandKind.Increment => "increment",
        CommandKind.Decrement => "decrement",
        CommandKind.Put => "put",
        CommandKind.Reset => "reset",
        CommandKind.Delete => "delete",
        CommandKind.Import => "import",
        _ => "other",
    };

    public void Dispose() => _meter.Dispose();
}
