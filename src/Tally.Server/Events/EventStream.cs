using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;

namespace Tally.Server.Events;

/// <summary>
/// One stream's events as <see cref="SseItem{T}"/>s for <c>TypedResults.ServerSentEvents</c>, which writes and flushes
/// each: first the initial state (or the events missed since <c>Last-Event-ID</c>), then what the hub queues, with a
/// comment line as heartbeat whenever <see cref="EventOptions.HeartbeatIntervalMs"/> passes. It ends when the client
/// goes, when the hub ends it (dropped as too slow, the instance stopping), never by itself.
/// </summary>
/// <remarks>
/// SSE comments are not items (<see cref="SseItem{T}"/> has no comment), so the heartbeat is written to the response
/// body here, between two items. That is safe: the formatter writes only after this enumerator yields, and it is
/// waiting on it meanwhile.
/// </remarks>
internal sealed class EventStream(
    EventSubscription subscription, IReadOnlyList<SseItem<string>> first, InitialState? shown, HttpResponse response,
    TimeSpan heartbeat, TimeProvider clock)
{
    private static readonly byte[] Heartbeat = ": heartbeat\n\n"u8.ToArray();

    public async IAsyncEnumerable<SseItem<string>> ReadAllAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        try
        {
            // The headers go now, so the client knows the stream is open before the first event (a flush sends them
            // on every server; StartAsync alone does not reach a TestServer client).
            await response.Body.FlushAsync(cancellationToken);
            foreach (var item in first)
            {
                yield return item;
            }
            var reader = subscription.Reader;
            Task<bool>? waiting = null;
            Task? beat = null;
            while (!cancellationToken.IsCancellationRequested && !subscription.Dropped)
            {
                if (reader.TryRead(out var e))
                {
                    if (shown is not null && e.Sequence > shown.UpTo)
                    {
                        shown = null; // past the events the initial state may already show
                    }
                    if (shown is null || !shown.Covers(e))
                    {
                        yield return e.ToItem();
                    }
                    continue;
                }
                waiting ??= reader.WaitToReadAsync(CancellationToken.None).AsTask();
                beat ??= Task.Delay(heartbeat, clock, cancellationToken);
                if (await Task.WhenAny(waiting, beat) == beat)
                {
                    beat = null;
                    if (cancellationToken.IsCancellationRequested)
                    {
                        break;
                    }
                    await response.Body.WriteAsync(Heartbeat, cancellationToken);
                    await response.Body.FlushAsync(cancellationToken);
                    continue;
                }
                if (!await waiting)
                {
                    break; // ended by the hub, and read to the end
                }
                waiting = null;
            }
        }
        finally
        {
            subscription.Dispose();
        }
    }
}

/// <summary>
/// The counters a stream's initial state showed, for the events queued while it was read: one of those that shows a
/// counter at a version the client has already seen (same incarnation, not newer) is left out.
/// </summary>
internal sealed class InitialState(Dictionary<string, (long CreatedAt, long Version)> counters, long upTo)
{
    /// <summary>Events numbered after this were published after the initial state was read.</summary>
    public long UpTo { get; } = upTo;

    public bool Covers(HubEvent e) =>
        e.Sequence <= UpTo && e.State is { } state && counters.TryGetValue(e.Name, out var seen)
        && seen.CreatedAt == state.CreatedAt && seen.Version >= state.Version;
}
