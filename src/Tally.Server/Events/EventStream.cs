using System.Buffers;
using System.IO.Pipelines;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;

namespace Tally.Server.Events;

/// <summary>
/// One stream's writer, run by <c>TypedResults.ServerSentEvents</c> (which sets the headers): first the initial state
/// (or the events missed since <c>Last-Event-ID</c>), then what the hub delivers, with a comment line as heartbeat
/// whenever <see cref="EventOptions.HeartbeatIntervalMs"/> passes without a write. It ends when the client goes, when
/// the hub ends it (dropped as too slow, the instance stopping), never by itself.
/// </summary>
/// <remarks>
/// It writes to the response itself and yields no item: the formatter would format, write and flush each item alone.
/// Once the initial state is sent, the events are written by whoever delivers them — the hub's tick, once per
/// <see cref="EventOptions.CoalesceMs"/>, walking every stream with something pending — through <see cref="Send"/>:
/// the frames each event serialized once (<see cref="HubEvent.Frame"/>, the same bytes for every stream) copied into
/// the response, and one flush. A flush the transport takes at once (the usual case: the socket's buffer has room)
/// costs no task, no thread hop and no allocation; one that waits (a client not reading) finishes on its own while
/// the tick goes on. One writer at a time (<see cref="EventSubscription.TryBeginWrite"/>): the tick, this request's
/// heartbeat, or the last write when the stream ends. That is safe: the formatter writes only after this enumerator
/// yields, and it is waiting on it meanwhile; the enumerator ends only once no write is under way.
/// </remarks>
internal sealed class EventStream(
    EventSubscription subscription, IReadOnlyList<byte[]> first, InitialState? shown, HttpResponse response,
    TimeSpan heartbeat, TimeProvider clock)
{
    private static readonly byte[] Heartbeat = ": heartbeat\n\n"u8.ToArray();

    private readonly PipeWriter _body = response.BodyWriter;

    /// <summary>What the current writer is sending; only the one writer touches it.</summary>
    private readonly List<HubEvent> _batch = [];

    private InitialState? _shown = shown;
    private bool _beat;
    private long _flushes;

    /// <summary>For the writer: the events to send go here (<see cref="EventSubscription.TryBeginWrite"/>).</summary>
    internal List<HubEvent> Batch => _batch;

    public async IAsyncEnumerable<SseItem<string>> ReadAllAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var attached = false;
        try
        {
            foreach (var frame in first)
            {
                _body.Write(frame);
            }
            // Also when there is no item: the headers go now, so the client knows the stream is open before the first
            // event (a flush sends them on every server; StartAsync alone does not reach a TestServer client).
            if (!await FlushAsync())
            {
                yield break;
            }
            subscription.Stream = this;
            subscription.Attach(_batch); // now the writer: what came while the initial state was read goes at once
            attached = true;
            Send();
            var seen = -1L;
            while (!cancellationToken.IsCancellationRequested)
            {
                var beat = Task.Delay(heartbeat, clock, cancellationToken);
                if (await Task.WhenAny(subscription.Ended, beat) != beat || cancellationToken.IsCancellationRequested)
                {
                    break;
                }
                var flushes = Volatile.Read(ref _flushes);
                if (flushes == seen && subscription.TryBeginWrite(_batch, evenIfNothing: true))
                {
                    _beat = true;
                    Send();
                }
                seen = flushes;
            }
        }
        finally
        {
            if (attached)
            {
                var idle = subscription.DetachAsync();
                if (!idle.IsCompleted)
                {
                    // A write waits for a client that does not read (a dropped stream, or one gone): it ends now.
                    _body.CancelPendingFlush();
                }
                await idle;
                if (!subscription.Dropped && !cancellationToken.IsCancellationRequested)
                {
                    subscription.TakeRest(_batch); // ended by the hub: what is pending still goes
                    if (Write() > 0)
                    {
                        await FlushAsync();
                    }
                }
            }
            subscription.Dispose();
        }
    }

    /// <summary>
    /// Sends <see cref="Batch"/> (and a heartbeat if asked), then what came meanwhile, as the one writer; returns once
    /// it is no longer the writer, or when a flush must wait for the client (it then goes on by itself).
    /// </summary>
    internal void Send()
    {
        while (true)
        {
            try
            {
                if (Write() > 0)
                {
                    subscription.Writing();
                    var flush = _body.FlushAsync();
                    if (!flush.IsCompleted)
                    {
                        _ = FinishAsync(flush);
                        return;
                    }
                    Flushed(flush.Result);
                }
            }
            catch (Exception)
            {
                // A client gone (IOException, a cancelled flush) or anything unexpected: this stream ends, and the write
                // still ends below, or the request would wait for it forever while holding its place in the limits.
                Gone();
            }
            if (!subscription.EndWrite(_batch))
            {
                return;
            }
        }
    }

    private async Task FinishAsync(ValueTask<FlushResult> flush)
    {
        try
        {
            Flushed(await flush);
        }
        catch (Exception)
        {
            Gone(); // as in Send
        }
        if (subscription.EndWrite(_batch))
        {
            Send();
        }
    }

    /// <summary>Copies the batch's frames (less what the initial state showed already) into the response; how many bytes.</summary>
    private int Write()
    {
        var written = 0;
        foreach (var e in _batch)
        {
            if (_shown is not null && e.Sequence > _shown.UpTo)
            {
                _shown = null; // past the events the initial state may already show
            }
            if (_shown is null || !_shown.Covers(e))
            {
                var frame = e.Frame;
                _body.Write(frame);
                written += frame.Length;
            }
        }
        _batch.Clear();
        if (_beat)
        {
            _beat = false;
            _body.Write(Heartbeat);
            written += Heartbeat.Length;
        }
        return written;
    }

    private void Flushed(FlushResult result)
    {
        subscription.WriteDone();
        Interlocked.Increment(ref _flushes);
        if (result.IsCompleted || result.IsCanceled)
        {
            Gone();
        }
    }

    /// <summary>The client is gone: no more writes, and the request ends.</summary>
    private void Gone()
    {
        subscription.WriteDone();
        subscription.End(dropped: true);
    }

    /// <summary>Sends what was written, as the one writer; false when the client is gone.</summary>
    private async Task<bool> FlushAsync()
    {
        subscription.Writing();
        try
        {
            var result = await _body.FlushAsync();
            subscription.WriteDone();
            return !result.IsCompleted && !result.IsCanceled;
        }
        catch (Exception ex) when (ex is IOException or InvalidOperationException or ObjectDisposedException or OperationCanceledException)
        {
            subscription.WriteDone();
            return false;
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
