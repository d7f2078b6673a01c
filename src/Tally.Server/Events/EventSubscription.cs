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
/// One open stream as the hub sees it: its filter, its key, and the events pending for its client. The hub offers
/// events without ever waiting; the stream's writer takes all that is pending at once.
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

    /// <summary>Every event (no conflation), or the deleted and alert events (conflation).</summary>
    private readonly List<HubEvent> _queue = [];

    /// <summary>Conflation, a counter's stream: its latest state not sent yet.</summary>
    private HubEvent? _latest;

    /// <summary>Conflation, a prefix stream: the latest state not sent yet of each counter.</summary>
    private readonly Dictionary<string, HubEvent>? _latestByName;

    private TaskCompletionSource? _wake;
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

    /// <summary>Counted in the hub's limits until closed.</summary>
    internal bool Closed { get; set; }

    /// <summary>Receiving events (not dropped, not ended).</summary>
    internal bool Receiving { get; private set; } = true;

    /// <summary>Pends <paramref name="e"/> and wakes the writer if it waits; false when past the capacity.</summary>
    internal bool Offer(HubEvent e)
    {
        TaskCompletionSource? wake;
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
            if (_queue.Count + (_latestByName?.Count ?? 0) > _capacity)
            {
                return false;
            }
            wake = _wake;
            _wake = null;
        }
        wake?.TrySetResult();
        return true;
    }

    /// <summary>Null when something is pending or the stream ended; else a task that completes when either happens.</summary>
    internal Task? WhenPending()
    {
        lock (_lock)
        {
            if (!Receiving || _queue.Count > 0 || _latest is not null || _latestByName is { Count: > 0 })
            {
                return null;
            }
            _wake ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return _wake.Task;
        }
    }

    /// <summary>Moves what is pending into <paramref name="into"/>, in sequence order. False: ended, and nothing was pending.</summary>
    internal bool TryTake(List<HubEvent> into)
    {
        lock (_lock)
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
            return into.Count > start || Receiving;
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
        TaskCompletionSource? wake;
        lock (_lock)
        {
            Receiving = false;
            Dropped |= dropped;
            wake = _wake;
            _wake = null;
        }
        wake?.TrySetResult();
    }

    public void Dispose() => _hub.Close(this);

    private sealed class BySequence : IComparer<HubEvent>
    {
        public static readonly BySequence Instance = new();

        public int Compare(HubEvent? x, HubEvent? y) => x!.Sequence.CompareTo(y!.Sequence);
    }
}
