using Tally.Server.Counters;

namespace Tally.Server.Events;

internal enum EventKind
{
    /// <summary><c>event: counter</c>: the counter after a commit changed it.</summary>
    Counter,
    /// <summary><c>event: deleted</c>: <c>{"name": …}</c>.</summary>
    Deleted,
    /// <summary><c>event: alert</c>: an alert's crossing, its data given by the alerts (<see cref="EventHub.PublishAlert"/>).</summary>
    Alert,
}

/// <summary>
/// One event as the hub numbered it: shared by every stream it goes to and by the ring, so its data, id and frame (the
/// bytes every stream writes) are made once, when the hub delivers it.
/// </summary>
internal sealed class HubEvent(string instance, long sequence, EventKind kind, string name, Counter? state, string? data = null)
{
    private string? _data = data;
    private string? _id;
    private byte[]? _frame;

    public long Sequence { get; } = sequence;

    public EventKind Kind { get; } = kind;

    /// <summary>The counter the event is about; streams are matched by it.</summary>
    public string Name { get; } = name;

    /// <summary>The counter after the change (null for deleted and alert events).</summary>
    public Counter? State { get; } = state;

    public string Id => _id ??= EventIds.Format(instance, Sequence);

    public string Data => _data ??= State is { } counter ? EventJson.Counter(counter) : EventJson.Deleted(Name);

    public string Type => TypeOf(Kind);

    /// <summary>The event as written on the stream.</summary>
    public byte[] Frame => _frame ??= EventFrames.Of(Type, Id, Data);

    public static string TypeOf(EventKind kind) => kind switch
    {
        EventKind.Counter => "counter",
        EventKind.Deleted => "deleted",
        _ => "alert",
    };
}
