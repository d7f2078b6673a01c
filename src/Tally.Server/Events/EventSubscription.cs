using System.Diagnostics;

namespace Tally.Server.Events;

/// <summary>What a stream watches: one counter (<see cref="Name"/>), or every counter whose name starts with <see cref="Prefix"/>.</summary>
internal readonly record struct EventFilter(string? Name, string Prefix)
{
    public static EventFilter ForCounter(string name) => new(name, string.Empty);

    public static EventFilter ForPrefix(string prefix) => new(null, prefix);

    public bool Matches(string name) =>
        Name is null ? name.StartsWith(Prefix, StringComparison.Ordinal) : string.Equals(Name, name, StringComparison.Ordinal);
}

/// <summary>
/// One open stream as the hub sees it: its filter, its key, the events pending for its client, and who may write to
/// its response now. The hub offers events without ever waiting; whoever delivers them (the hub's tick, mostly)
/// then takes all that is pending and writes it, one writer at a time (<see cref="TryBeginWrite"/>, <see cref="EndWrite"/>).
/// </summary>
/// <remarks>
/// With conflation (<see cref="EventOptions.CoalesceMs"/> above 0) a counter's pending state is replaced by a newer
/// one, so a stream on a hot counter holds one event however fast it changes, and offering costs a lock and a store.
/// Deleted and alert events are never replaced: they wait in order beside the counters' states, and a take sorts all
/// by sequence, so ids stay increasing and no state is shown before a deletion it followed. Without conflation every
/// event waits. Pending past the capacity means the client is too slow: the stream is dropped. Disposing it (the
/// response does, however it ends) closes it in the hub; closing twice does nothing.
/// </remarks>
internal sealed class EventSubscription : IDisposable
{
    private readonly EventHub _hub;
    private readonly Lock _lock = new();
    private readonly int _capacity;
    private readonly bool _conflate;
    private readonly TaskCompletionSource _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Every event (no conflation), or the deleted and alert events (conflation).</summary>
    private readonly List<HubEvent> _queue = [];

    /// <summary>Conflation, a counter's stream: its latest state not sent yet.</summary>
    private HubEvent? _latest;

    /// <summary>Conflation, a prefix stream: the latest state not sent yet of each counter.</summary>
    private readonly Dictionary<string, HubEvent>? _latestByName;

    /// <summary>Its writer has started (the initial state was sent) and not finished: the hub may write to it.</summary>
    private bool _attached;

    /// <summary>Someone writes to the response now; nobody else may.</summary>
    private bool _busy;

    private TaskCompletionSource? _idle;
    private long _writingSince;

    internal EventSubscription(EventHub hub, string keyId, EventFilter filter, int capacity, bool conflate)
    {
        _hub = hub;
        KeyId = keyId;
        Filter = filter;
        _capacity = capacity;
        _conflate = conflate;
        if (conflate && filter.Name is null)
        {
            _latestByName = new Dictionary<string, HubEvent>(StringComparer.Ordinal);
        }
    }

    public string KeyId { get; }

    public EventFilter Filter { get; }

    /// <summary>The hub's sequence when the stream opened: what is offered comes after it.</summary>
    public long StartSequence { get; internal set; }

    /// <summary>The client fell behind: the stream ends without sending what is pending.</summary>
    public bool Dropped { get; private set; }

    /// <summary>Ends the response at once (set by the endpoint): a dropped stream whose write hangs is cut off.</summary>
    public Action? Abort { get; set; }

    /// <summary>Writes what is pending to the response (set by the stream's writer once it started).</summary>
    internal EventStream? Stream { get; set; }

    /// <summary>Completes when the hub ends the stream (dropped, or the instance stopping) or it closes.</summary>
    internal Task Ended => _ended.Task;

    /// <summary>The hub's last delivery that offered it something (the hub's, under its lock).</summary>
    internal long Delivery { get; set; }

    /// <summary>Counted in the hub's limits until closed.</summary>
    internal bool Closed { get; set; }

    /// <summary>Receiving events (not dropped, not ended).</summary>
    internal bool Receiving { get; private set; } = true;

    /// <summary>Pends <paramref name="e"/>; false when past the capacity.</summary>
    internal bool Offer(HubEvent e)
    {
        lock (_lock)
        {
            if (!_conflate || e.Kind != EventKind.Counter)
            {
                _queue.Add(e);
            }
            else if (_latestByName is null)
            {
                _latest = e;
            }
            else
            {
                _latestByName[e.Name] = e;
            }
            return _queue.Count + (_latestByName?.Count ?? 0) <= _capacity;
        }
    }

    /// <summary>
    /// Becomes the one writer when the stream's writer has started, nobody else writes, and something is pending (or
    /// <paramref name="evenIfNothing"/>), moving what is pending into <paramref name="into"/> in sequence order.
    /// </summary>
    internal bool TryBeginWrite(List<HubEvent> into, bool evenIfNothing = false)
    {
        lock (_lock)
        {
            if (_busy || !_attached || Dropped)
            {
                return false;
            }
            Take(into);
            if (into.Count == 0 && !evenIfNothing)
            {
                return false;
            }
            _busy = true;
            return true;
        }
    }

    /// <summary>
    /// The writer is done; true when it must go on: more came meanwhile (now in <paramref name="into"/>), and it stays
    /// the writer. False: it is no longer the writer.
    /// </summary>
    internal bool EndWrite(List<HubEvent> into)
    {
        TaskCompletionSource? idle;
        lock (_lock)
        {
            if (_attached && !Dropped)
            {
                Take(into);
                if (into.Count > 0)
                {
                    return true;
                }
            }
            _busy = false;
            idle = _idle;
            _idle = null;
        }
        idle?.TrySetResult();
        return false;
    }

    /// <summary>The stream's writer starts taking the hub's writes (after the initial state); what is pending is its to write.</summary>
    internal void Attach(List<HubEvent> into)
    {
        lock (_lock)
        {
            _attached = true;
            _busy = true;
            Take(into);
        }
    }

    /// <summary>After <see cref="DetachAsync"/>: what is still pending, for the stream's last write.</summary>
    internal void TakeRest(List<HubEvent> into)
    {
        lock (_lock)
        {
            Take(into);
        }
    }

    /// <summary>The stream's writer ends: no more writes start; completes once the one under way (if any) is done.</summary>
    internal Task DetachAsync()
    {
        lock (_lock)
        {
            _attached = false;
            if (!_busy)
            {
                return Task.CompletedTask;
            }
            _idle ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return _idle.Task;
        }
    }

    private void Take(List<HubEvent> into)
    {
        var start = into.Count;
        into.AddRange(_queue);
        _queue.Clear();
        if (_latest is not null)
        {
            into.Add(_latest);
            _latest = null;
        }
        if (_latestByName is { Count: > 0 })
        {
            into.AddRange(_latestByName.Values);
            _latestByName.Clear();
        }
        if (into.Count - start > 1 && _conflate)
        {
            into.Sort(start, into.Count - start, BySequence.Instance);
        }
    }

    /// <summary>The writer hands the client a write; <see cref="WriteDone"/> when it took it.</summary>
    internal void Writing() => Volatile.Write(ref _writingSince, Stopwatch.GetTimestamp());

    internal void WriteDone() => Volatile.Write(ref _writingSince, 0);

    /// <summary>Whether a write has waited for the client longer than <paramref name="limit"/> ticks at <paramref name="now"/>.</summary>
    internal bool Stalled(long now, long limit)
    {
        var since = Volatile.Read(ref _writingSince);
        return since != 0 && now - since > limit;
    }

    /// <summary>No more events: the stream ends once its client has been sent what is pending (or at once, when dropped).</summary>
    internal void End(bool dropped)
    {
        lock (_lock)
        {
            Receiving = false;
            Dropped |= dropped;
        }
        _ended.TrySetResult();
    }

    public void Dispose() => _hub.Close(this);

    private sealed class BySequence : IComparer<HubEvent>
    {
        public static readonly BySequence Instance = new();

        public int Compare(HubEvent? x, HubEvent? y) => x!.Sequence.CompareTo(y!.Sequence);
    }
}
