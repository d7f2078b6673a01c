using System.Buffers;
using System.IO.Pipelines;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;

namespace Tally.Server.Events;

/// <summary>
/// One stream's writer, run by <c>TypedResults.ServerSentEvents</c> (which sets the headers): first the initial state
/// (or the events missed since <c>Last-Event-ID</c>), then what the hub offers, with a comment line as heartbeat
/// whenever <see cref="EventOptions.HeartbeatIntervalMs"/> passes idle. It ends when the client goes, when the hub ends
/// it (dropped as too slow, the instance stopping), never by itself.
/// </summary>
/// <remarks>
/// It writes the events to the response itself and yields no item: the formatter would write and flush each item
/// alone, while here all that is pending goes in one write and one flush. With conflation it writes only on the hub's
/// <paramref name="tick"/>, every <see cref="EventOptions.CoalesceMs"/>: a stream with something pending waits for
/// the next tick, and what comes meanwhile is merged (see <see cref="EventSubscription"/>); all streams write in the
/// same moment, rather than each on a timer of its own. That is safe: the formatter writes only after this enumerator
/// yields, and it is waiting on it meanwhile.
/// </remarks>
internal sealed class EventStream(
    EventSubscription subscription, IReadOnlyList<SseItem<string>> first, InitialState? shown, HttpResponse response,
    TimeSpan heartbeat, Func<Task>? tick, TimeProvider clock)
{
    private static readonly byte[] Heartbeat = ": heartbeat\n\n"u8.ToArray();

    public async IAsyncEnumerable<SseItem<string>> ReadAllAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        try
        {
            var body = response.BodyWriter;
            foreach (var item in first)
            {
                EventFrames.Write(body, item.EventType, item.EventId, item.Data);
            }
            // Also when there is no item: the headers go now, so the client knows the stream is open before the first
            // event (a flush sends them on every server; StartAsync alone does not reach a TestServer client).
            if (!await FlushAsync(body, cancellationToken))
            {
                yield break;
            }
            var batch = new List<HubEvent>();
            Task? beat = null;
            while (!cancellationToken.IsCancellationRequested && !subscription.Dropped)
            {
                if (subscription.WhenPending() is { } waiting)
                {
                    beat ??= Task.Delay(heartbeat, clock, cancellationToken);
                    if (await Task.WhenAny(waiting, beat) == beat)
                    {
                        beat = null;
                        if (cancellationToken.IsCancellationRequested)
                        {
                            break;
                        }
                        body.Write(Heartbeat);
                        if (!await FlushAsync(body, cancellationToken))
                        {
                            break;
                        }
                    }
                    continue;
                }
                if (tick is not null)
                {
                    await tick(); // what comes meanwhile is conflated into this write
                }
                if (!subscription.TryTake(batch))
                {
                    break; // ended by the hub, and all sent
                }
                var written = 0;
                foreach (var e in batch)
                {
                    if (shown is not null && e.Sequence > shown.UpTo)
                    {
                        shown = null; // past the events the initial state may already show
                    }
                    if (shown is null || !shown.Covers(e))
                    {
                        body.Write(e.Frame);
                        written++;
                    }
                }
                batch.Clear();
                if (written > 0 && !await FlushAsync(body, cancellationToken))
                {
                    break;
                }
            }
        }
        finally
        {
            subscription.Dispose();
        }
    }

    /// <summary>Sends what was written; false when the client is gone.</summary>
    private async Task<bool> FlushAsync(PipeWriter body, CancellationToken cancellationToken)
    {
        subscription.Writing();
        var result = await body.FlushAsync(cancellationToken);
        subscription.WriteDone();
        return !result.IsCompleted && !result.IsCanceled;
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
