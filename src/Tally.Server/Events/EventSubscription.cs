using System.Threading.Channels;

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
/// One open stream as the hub sees it: its filter, its key, and a bounded queue of events waiting for its client.
/// The hub writes without ever waiting; when the queue is full the client is too slow and the stream is dropped.
/// Disposing it (the response does, however it ends) closes it in the hub; closing twice does nothing.
/// </summary>
internal sealed class EventSubscription : IDisposable
{
    private readonly EventHub _hub;
    private readonly Channel<HubEvent> _queue;

    internal EventSubscription(EventHub hub, string keyId, EventFilter filter, int capacity)
    {
        _hub = hub;
        KeyId = keyId;
        Filter = filter;
        _queue = Channel.CreateBounded<HubEvent>(new BoundedChannelOptions(capacity)
        {
            SingleReader = true,
            // Wait (not drop): a full queue makes TryWrite fail, which is how the hub learns the client is too slow.
            FullMode = BoundedChannelFullMode.Wait,
        });
    }

    public string KeyId { get; }

    public EventFilter Filter { get; }

    /// <summary>The hub's sequence when the stream opened: the queue holds the events after it.</summary>
    public long StartSequence { get; internal set; }

    public ChannelReader<HubEvent> Reader => _queue.Reader;

    /// <summary>The client fell behind by a whole queue: the stream ends without sending what is queued.</summary>
    public bool Dropped { get; private set; }

    /// <summary>Counted in the hub's limits until closed.</summary>
    internal bool Closed { get; set; }

    /// <summary>Receiving events (not dropped, not ended).</summary>
    internal bool Receiving { get; private set; } = true;

    internal bool TryWrite(HubEvent e) => _queue.Writer.TryWrite(e);

    /// <summary>No more events: the stream ends once its client has read what is queued (or at once, when dropped).</summary>
    internal void End(bool dropped)
    {
        Receiving = false;
        Dropped |= dropped;
        _queue.Writer.TryComplete();
    }

    public void Dispose() => _hub.Close(this);
}
