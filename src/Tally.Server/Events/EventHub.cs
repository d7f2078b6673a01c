using System.Diagnostics;
using System.Security.Cryptography;
using Microsoft.Extensions.Options;
using Tally.Server.Counters;
using Tally.Server.Observability;
using Tally.Server.Pipeline;

namespace Tally.Server.Events;

/// <summary>
/// Live events within one instance. Commits (this instance's, through <see cref="ICommitObserver"/>, and other
/// instances', through a relay) become numbered events; each goes into a ring of recent events, for
/// <c>Last-Event-ID</c>, and is offered to every open stream that watches its counter. Nothing here waits: a
/// stream that has too much pending, or whose client has not taken a write for <see cref="EventOptions.WriteTimeoutMs"/>,
/// is dropped, so a slow client never slows a commit.
/// </summary>
/// <remarks>
/// A commit only numbers its events, keeps them in the ring and stages them: its cost does not grow with the number
/// of open streams. Delivery is the tick's, once per <see cref="EventOptions.CoalesceMs"/> after something was staged
/// (with 0, a work item queued at once): it conflates what was staged to the latest state per counter (deleted and
/// alert events all stay, in order), offers each event to the streams that watch its counter
/// (<see cref="EventSubscription.Offer"/>: a lock and a store), then, outside the hub's lock, writes to each stream
/// that got something, on the tick's own thread, one after the other (<see cref="EventStream.Send"/>): an event's
/// frame is made once and the same bytes go to every stream, a stream costs one copy and one flush per tick, and no
/// stream's writer is woken on a thread of its own.
/// </remarks>
/// <remarks>
/// Free when nobody listens: with no stream open (and none for <see cref="ResumeWindow"/>), a commit costs a read of
/// two fields — no allocation, no lock. Events are then not made, so a resume across such a time is impossible;
/// the ring's floor is raised when the next stream opens, and ids from before it start from the current state.
/// </remarks>
internal sealed class EventHub : ICommitObserver
{
    /// <summary>After the last stream closed, events are still recorded this long, so a client that reconnects can resume.</summary>
    public static readonly TimeSpan ResumeWindow = TimeSpan.FromMinutes(1);

    private const int RecentNames = 50_000;
    private static readonly long ResumeWindowTicks = (long)(ResumeWindow.TotalSeconds * Stopwatch.Frequency);

    private readonly Lock _gate = new();
    private readonly EventOptions _options;
    private readonly TallyMetrics _metrics;
    private readonly ILogger<EventHub> _logger;
    private readonly HubEvent?[] _ring;
    private readonly Dictionary<string, List<EventSubscription>> _byName = new(StringComparer.Ordinal);
    private readonly List<EventSubscription> _byPrefix = [];
    private readonly Dictionary<string, int> _perKey = new(StringComparer.Ordinal);
    private readonly RecentStates _recent = new(RecentNames);
    private readonly List<EventSubscription> _slow = [];
    private readonly long _writeTimeoutTicks;
    private readonly TimeProvider _clock;
    private readonly bool _conflate;

    /// <summary>Events staged for the next delivery: the deleted and alert ones (with conflation), or all.</summary>
    private List<HubEvent> _staged = [];

    /// <summary>Conflation: the latest state staged of each counter.</summary>
    private readonly Dictionary<string, HubEvent> _stagedLatest = new(StringComparer.Ordinal);

    private bool _deliveryScheduled;
    private ITimer? _ticker;
    private long _deliveries;

    /// <summary>The last number given to an event (or to a gap).</summary>
    private long _sequence;

    /// <summary>Every event numbered after the floor is in the ring; an id below it cannot be resumed.</summary>
    private long _floor;

    private int _streams;
    private long _quietSince;

    public EventHub(
        IOptions<EventOptions> options, TallyMetrics metrics, IHostApplicationLifetime lifetime, TimeProvider clock, ILogger<EventHub> logger)
    {
        _clock = clock;
        _options = options.Value;
        _metrics = metrics;
        _logger = logger;
        _ring = new HubEvent?[_options.ResumeBuffer];
        _writeTimeoutTicks = _options.WriteTimeoutMs * Stopwatch.Frequency / 1000;
        _conflate = _options.CoalesceMs > 0;
        _quietSince = Stopwatch.GetTimestamp() - ResumeWindowTicks;
        metrics.ObserveOpenStreams(() => Volatile.Read(ref _streams));
        // Open streams would hold a graceful stop for its whole timeout: they end as it begins, and clients reconnect elsewhere.
        lifetime.ApplicationStopping.Register(() => EndAll("this instance is stopping"));
    }

    /// <summary>This process's part of every event id: random, drawn at start.</summary>
    public string InstanceId { get; } = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));

    public int OpenStreams => Volatile.Read(ref _streams);

    /// <summary>The number of the last event.</summary>
    public long Sequence
    {
        get
        {
            lock (_gate)
            {
                return _sequence;
            }
        }
    }

    /// <summary>Whether events are being made: a stream is open, or one closed within <see cref="ResumeWindow"/>.</summary>
    public bool IsRecording =>
        Volatile.Read(ref _streams) > 0 || Stopwatch.GetTimestamp() - Volatile.Read(ref _quietSince) < ResumeWindowTicks;

    /// <summary>This instance committed: on the commit loop, so it returns at once when nobody listens.</summary>
    public void Committed(IReadOnlyList<PendingRequest> batch, IReadOnlyList<RequestOutcome> outcomes)
    {
        if (!IsRecording)
        {
            return;
        }
        var states = CommitStates.Of(batch, outcomes);
        if (states.Count > 0)
        {
            Publish(states, remote: false);
        }
    }

    /// <summary>Another instance committed (its relay read the states from the store's notification).</summary>
    public void PublishRemote(IReadOnlyList<KeyValuePair<string, Counter?>> states)
    {
        if (IsRecording && states.Count > 0)
        {
            Publish(states, remote: true);
        }
    }

    /// <summary>
    /// The hook for threshold alerts: an <c>event: alert</c> with <paramref name="json"/> as its data, to the streams that
    /// watch <paramref name="counterName"/>, numbered and kept for resuming like the others. The other instances hear of
    /// it with the commit's states (<see cref="ChangeMessage"/>), and publish it here with <paramref name="remote"/>.
    /// </summary>
    public void PublishAlert(string counterName, string json, bool remote = false)
    {
        if (!IsRecording)
        {
            return;
        }
        lock (_gate)
        {
            var e = new HubEvent(InstanceId, ++_sequence, EventKind.Alert, counterName, null, json);
            Record(e);
            Stage(e);
        }
        _metrics.RecordEventsPublished(1, remote);
    }

    /// <summary>
    /// Opens a stream for <paramref name="keyId"/>, or refuses it past the limits (the refusal says which). With a
    /// <paramref name="lastEventId"/> this instance can resume from, the opening carries the events missed since it,
    /// else the caller starts the stream with the current state read after this call.
    /// </summary>
    public EventOpening Open(string keyId, EventFilter filter, string? lastEventId)
    {
        lock (_gate)
        {
            if (_streams >= _options.MaxStreams)
            {
                return new EventOpening(null, null,
                    $"This instance has {_options.MaxStreams} event streams open, its limit (Events:MaxStreams); retry later or on another instance.");
            }
            var held = _perKey.GetValueOrDefault(keyId);
            if (held >= _options.MaxStreamsPerKey)
            {
                return new EventOpening(null, null,
                    $"This API key has {held} event streams open on this instance, its limit (Events:MaxStreamsPerKey); close one first.");
            }
            if (_streams == 0 && !IsRecording)
            {
                // Nothing was recorded while nobody listened: what came before cannot be resumed.
                _floor = ++_sequence;
            }
            var subscription = new EventSubscription(this, keyId, filter, _options.StreamBuffer, conflate: _conflate)
            {
                StartSequence = _sequence,
            };
            if (filter.Name is { } name)
            {
                if (!_byName.TryGetValue(name, out var list))
                {
                    _byName[name] = list = [];
                }
                list.Add(subscription);
            }
            else
            {
                _byPrefix.Add(subscription);
            }
            _perKey[keyId] = held + 1;
            Volatile.Write(ref _streams, _streams + 1);
            return new EventOpening(subscription, Replay(lastEventId, filter), null);
        }
    }

    /// <summary>The stream's response ended: it stops counting against the limits.</summary>
    public void Close(EventSubscription subscription)
    {
        lock (_gate)
        {
            if (subscription.Closed)
            {
                return;
            }
            subscription.Closed = true;
            Unregister(subscription);
            subscription.End(dropped: false);
            var held = _perKey[subscription.KeyId] - 1;
            if (held == 0)
            {
                _perKey.Remove(subscription.KeyId);
            }
            else
            {
                _perKey[subscription.KeyId] = held;
            }
            if (_streams == 1)
            {
                Volatile.Write(ref _quietSince, Stopwatch.GetTimestamp());
            }
            Volatile.Write(ref _streams, _streams - 1);
        }
    }

    /// <summary>
    /// The other instances' changes may have been missed (the relay's connection to the store broke): no id from before
    /// can be resumed. With <paramref name="endStreams"/>, open streams end too, so their clients reconnect and start
    /// from the current state; a relay does that once it hears the store again.
    /// </summary>
    public void Interrupted(string why, bool endStreams)
    {
        if (endStreams)
        {
            EndAll(why);
            return;
        }
        lock (_gate)
        {
            _floor = ++_sequence;
        }
    }

    private void EndAll(string why)
    {
        int ended;
        lock (_gate)
        {
            _floor = ++_sequence;
            var all = _byName.Values.SelectMany(list => list).Concat(_byPrefix).ToList();
            foreach (var subscription in all)
            {
                Unregister(subscription);
                subscription.End(dropped: false);
            }
            ended = all.Count;
        }
        if (ended > 0)
        {
            _logger.LogInformation("Ended {Count} event streams: {Reason}", ended, why);
        }
    }

    private void Publish(IReadOnlyList<KeyValuePair<string, Counter?>> states, bool remote)
    {
        var published = 0;
        lock (_gate)
        {
            foreach (var (name, state) in states)
            {
                if (!_recent.Admit(name, state, check: remote))
                {
                    continue;
                }
                var e = new HubEvent(InstanceId, ++_sequence, state is null ? EventKind.Deleted : EventKind.Counter, name, state);
                Record(e);
                Stage(e);
                published++;
            }
        }
        _metrics.RecordEventsPublished(published, remote);
    }

    /// <summary>Under the lock: <paramref name="e"/> waits for the next delivery, which is scheduled if none is.</summary>
    private void Stage(HubEvent e)
    {
        if (_streams == 0)
        {
            return; // recorded for a resume, but no stream to deliver to
        }
        if (_conflate && e.Kind == EventKind.Counter)
        {
            _stagedLatest[e.Name] = e;
        }
        else
        {
            _staged.Add(e);
        }
        if (_deliveryScheduled)
        {
            return;
        }
        _deliveryScheduled = true;
        if (_conflate)
        {
            _ticker ??= _clock.CreateTimer(static hub => ((EventHub)hub!).Deliver(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            _ticker.Change(TimeSpan.FromMilliseconds(_options.CoalesceMs), Timeout.InfiniteTimeSpan);
        }
        else
        {
            ThreadPool.UnsafeQueueUserWorkItem(static hub => hub.Deliver(), this, preferLocal: false);
        }
    }

    /// <summary>
    /// The tick: what was staged is offered to the streams that watch it, under the lock, then written to each stream
    /// that got something, outside it (a commit never waits for a write).
    /// </summary>
    private void Deliver()
    {
        List<HubEvent> events;
        var writers = new List<EventSubscription>();
        lock (_gate)
        {
            _deliveryScheduled = false;
            events = _staged;
            if (_stagedLatest.Count > 0)
            {
                events.AddRange(_stagedLatest.Values);
                _stagedLatest.Clear();
                events.Sort(static (x, y) => x.Sequence.CompareTo(y.Sequence));
            }
            if (events.Count == 0)
            {
                return;
            }
            _staged = [];
            var delivery = ++_deliveries;
            var now = Stopwatch.GetTimestamp();
            foreach (var e in events)
            {
                Deliver(e, now, delivery, writers);
            }
            EndSlowStreams();
        }
        foreach (var e in events)
        {
            _ = e.Frame; // made once, here, rather than by whichever stream writes it first
        }
        foreach (var subscription in writers)
        {
            if (subscription.Stream is { } stream && subscription.TryBeginWrite(stream.Batch))
            {
                try
                {
                    stream.Send();
                }
                catch (Exception ex)
                {
                    // On the tick's thread: one stream's failure must neither end the others' delivery nor the process.
                    _logger.LogError(ex, "Writing to an event stream failed; the stream ends");
                    subscription.End(dropped: true);
                    subscription.EndWrite(stream.Batch);
                    subscription.Abort?.Invoke();
                }
            }
        }
    }

    private void Record(HubEvent e)
    {
        if (_ring.Length == 0)
        {
            _floor = e.Sequence;
            return;
        }
        ref var slot = ref _ring[e.Sequence % _ring.Length];
        if (slot is not null)
        {
            _floor = Math.Max(_floor, slot.Sequence);
        }
        slot = e;
    }

    private void Deliver(HubEvent e, long now, long delivery, List<EventSubscription> writers)
    {
        if (_byName.TryGetValue(e.Name, out var watchers))
        {
            foreach (var subscription in watchers)
            {
                Offer(subscription, e, now, delivery, writers);
            }
        }
        foreach (var subscription in _byPrefix)
        {
            if (e.Name.StartsWith(subscription.Filter.Prefix, StringComparison.Ordinal))
            {
                Offer(subscription, e, now, delivery, writers);
            }
        }
    }

    private void Offer(EventSubscription subscription, HubEvent e, long now, long delivery, List<EventSubscription> writers)
    {
        if (!subscription.Receiving || e.Sequence <= subscription.StartSequence)
        {
            return; // a stream opened after the event was staged: its opening showed it (initial state or replay)
        }
        if (subscription.Delivery != delivery)
        {
            subscription.Delivery = delivery;
            writers.Add(subscription);
        }
        var stalled = subscription.Stalled(now, _writeTimeoutTicks);
        if (!subscription.Offer(e) || stalled)
        {
            subscription.End(dropped: true);
            _slow.Add(subscription);
            if (stalled && subscription.Abort is { } abort)
            {
                // Its write hangs on a client that does not read: only ending the connection frees it. Not under the lock.
                ThreadPool.QueueUserWorkItem(static abort => abort(), abort, preferLocal: false);
            }
        }
    }

    /// <summary>Streams whose client fell behind get no more events; their responses end.</summary>
    private void EndSlowStreams()
    {
        if (_slow.Count == 0)
        {
            return;
        }
        foreach (var subscription in _slow)
        {
            Unregister(subscription);
        }
        _metrics.RecordStreamsDropped(_slow.Count);
        _logger.LogDebug("Dropped {Count} event streams whose clients read too slowly", _slow.Count);
        _slow.Clear();
    }

    private void Unregister(EventSubscription subscription)
    {
        if (subscription.Filter.Name is { } name)
        {
            if (_byName.TryGetValue(name, out var list) && list.Remove(subscription) && list.Count == 0)
            {
                _byName.Remove(name);
            }
        }
        else
        {
            _byPrefix.Remove(subscription);
        }
    }

    /// <summary>The recorded events after <paramref name="lastEventId"/> that the filter matches, or null when it cannot be resumed from.</summary>
    private List<HubEvent>? Replay(string? lastEventId, EventFilter filter)
    {
        if (_ring.Length == 0 || !EventIds.TryParse(lastEventId, out var instance, out var last)
            || instance != InstanceId || last < _floor || last > _sequence)
        {
            return null;
        }
        var missed = new List<HubEvent>();
        for (var sequence = last + 1; sequence <= _sequence; sequence++)
        {
            if (_ring[sequence % _ring.Length] is { } e && e.Sequence == sequence && filter.Matches(e.Name))
            {
                missed.Add(e);
            }
        }
        return missed;
    }
}

/// <summary>An opened stream (with the events it missed, when resumed), or why it was refused.</summary>
internal readonly record struct EventOpening(EventSubscription? Subscription, List<HubEvent>? Replay, string? Refusal);
