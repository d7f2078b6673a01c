using System.Threading.Channels;
using Microsoft.Extensions.Options;
using Tally.Server.Configuration;
using Tally.Server.Counters;
using Tally.Server.Observability;
using Tally.Server.Storage;

namespace Tally.Server.Pipeline;

/// <summary>
/// Group commit. Requests enqueue a command and await it; one loop takes everything waiting
/// (up to MaxBatchSize), has the store apply and commit it as one transaction, and only then
/// completes the waiters. A lone request commits at once; under load batches grow by themselves.
/// The loop is asynchronous all the way down: an engine that waits on a database does not hold a thread.
/// </summary>
internal sealed class CommitPipeline(
    ICounterStore store, TallyMetrics metrics, IOptions<TallyOptions> options, ILogger<CommitPipeline> logger, IEnumerable<ICommitObserver> observers)
    : IHostedService
{
    private readonly ICommitObserver[] _observers = [.. observers];
    private readonly Channel<PendingRequest> _queue = Channel.CreateBounded<PendingRequest>(
        new BoundedChannelOptions(100_000) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
    private readonly Dictionary<(string Op, string Outcome), long> _outcomes = [];
    private readonly IDeferredDurability? _deferred = store as IDeferredDurability;
    private readonly IStoreUpkeep? _upkeep = store as IStoreUpkeep;

    /// <summary>How often the loop, when idle, gives the store a chance to do its upkeep.</summary>
    public static readonly TimeSpan MaintenanceInterval = TimeSpan.FromSeconds(1);

    private Task? _loop;
    private Lazy<Task>? _stop;

    /// <summary>Queues a request; the task completes once its commit is durable (or has failed).</summary>
    public Task<RequestOutcome> SubmitAsync(PendingRequest request, CancellationToken cancellationToken = default)
    {
        if (_queue.Writer.TryWrite(request))
        {
            return request.Task;
        }
        return SubmitSlowAsync(request, cancellationToken);
    }

    public async Task<CommandResult> SubmitAsync(CounterCommand command, CancellationToken cancellationToken = default) =>
        (await SubmitAsync(PendingRequest.For(command), cancellationToken)).Result;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await store.OpenAsync(cancellationToken);
        metrics.ObserveCounterCount(() => store.Count);
        _loop = Task.Run(RunAsync, CancellationToken.None);
    }

    /// <summary>
    /// Stops taking commands, commits everything already queued, then closes the store. The host may
    /// call this more than once, even concurrently (WebApplicationFactory does): every call awaits the one stop.
    /// </summary>
    public Task StopAsync(CancellationToken cancellationToken)
    {
        var stop = new Lazy<Task>(() => StopOnceAsync(cancellationToken));
        return Interlocked.CompareExchange(ref _stop, stop, null)?.Value ?? stop.Value;
    }

    private async Task StopOnceAsync(CancellationToken cancellationToken)
    {
        _queue.Writer.TryComplete();
        if (_loop is not null)
        {
            await _loop.WaitAsync(cancellationToken);
        }
        await store.DisposeAsync();
    }

    private async Task<RequestOutcome> SubmitSlowAsync(PendingRequest request, CancellationToken cancellationToken)
    {
        try
        {
            await _queue.Writer.WriteAsync(request, cancellationToken);
        }
        catch (ChannelClosedException)
        {
            return new RequestOutcome(CommandResult.Fail(ErrorCodes.StoreUnavailable, "Tally is shutting down; retry against another instance or after the restart."));
        }
        return await request.Task;
    }

    private async Task RunAsync()
    {
        var reader = _queue.Reader;
        var batch = new List<PendingRequest>(options.Value.MaxBatchSize);
        var flushInterval = TimeSpan.FromMilliseconds(options.Value.FlushIntervalMs);
        var lastBatch = 0;
        var lastMaintenance = System.Diagnostics.Stopwatch.GetTimestamp();
        using var alarm = new Alarm(_queue.Writer);
        while (true)
        {
            if (!reader.TryPeek(out _))
            {
                if (_deferred?.UnflushedSince is { } since)
                {
                    // Durability=async: wait for work, but no longer than the flush deadline.
                    var remaining = flushInterval - System.Diagnostics.Stopwatch.GetElapsedTime(since);
                    if (remaining <= TimeSpan.Zero)
                    {
                        await FlushAsync();
                        continue;
                    }
                    alarm.RingWithin(remaining);
                }
                // Idle: wake now and then for the store's upkeep, so it never depends on traffic.
                if (_upkeep is not null)
                {
                    var untilMaintenance = MaintenanceInterval - System.Diagnostics.Stopwatch.GetElapsedTime(lastMaintenance);
                    if (untilMaintenance <= TimeSpan.Zero)
                    {
                        await MaintainAsync(_upkeep);
                        lastMaintenance = System.Diagnostics.Stopwatch.GetTimestamp();
                        continue;
                    }
                    alarm.RingWithin(untilMaintenance);
                }
                // No allocation here: this wait happens once per commit under load (a timed wait used to cost a
                // timer, a delay task and a WhenAny each time); the alarm wakes it through the queue instead.
                if (!await reader.WaitToReadAsync())
                {
                    break;
                }
            }

            if (lastBatch >= 4)
            {
                // Busy: let the request threads that are about to enqueue do so, so this commit's one
                // flush carries more of them. A lone request (last batch of 1) never waits.
                Thread.Yield();
            }
            while (batch.Count < options.Value.MaxBatchSize && reader.TryRead(out var pending))
            {
                if (!ReferenceEquals(pending, Alarm.WakeUp))
                {
                    batch.Add(pending);
                }
            }
            if (batch.Count == 0)
            {
                continue; // only the alarm: back to the deadlines above
            }
            lastBatch = batch.Count;
            await CommitAsync(batch);
            // The responses are written on the thread pool while this loop goes on to the next commit.
            ThreadPool.UnsafeQueueUserWorkItem(static done =>
            {
                foreach (var pending in done)
                {
                    pending.TrySetResult(pending.Outcome);
                }
            }, batch.ToArray(), preferLocal: false);
            batch.Clear();

            if (_deferred?.UnflushedSince is { } last && System.Diagnostics.Stopwatch.GetElapsedTime(last) >= flushInterval)
            {
                await FlushAsync();
            }
        }
        // Stopping: acknowledged changes (Durability=async) get a few more chances to reach the disk.
        for (var attempt = 0; attempt < 5 && _deferred?.UnflushedSince is not null; attempt++)
        {
            await FlushAsync();
        }
        if (_deferred?.UnflushedSince is not null)
        {
            logger.LogCritical("Stopping with acknowledged changes that could not be written (Durability=async); they are lost");
        }
    }

    /// <summary>
    /// Wakes the idle loop at a deadline (the async flush, the store's upkeep) by putting <see cref="WakeUp"/> in the
    /// queue, which the loop skips. One timer for the pipeline's life, moved only when a deadline is earlier than the
    /// one it holds, so the wait between two commits under load costs no allocation and usually no timer change.
    /// </summary>
    private sealed class Alarm : IDisposable
    {
        /// <summary>Not a request: the alarm's mark in the queue.</summary>
        public static readonly PendingRequest WakeUp = PendingRequest.For(CounterCommand.Get(string.Empty));

        private readonly Timer _timer;
        private long _due = long.MaxValue; // Stopwatch timestamp the timer is set for; MaxValue: not set

        public Alarm(ChannelWriter<PendingRequest> queue)
        {
            _timer = new Timer(static state =>
            {
                var (alarm, writer) = ((Alarm, ChannelWriter<PendingRequest>))state!;
                Interlocked.Exchange(ref alarm._due, long.MaxValue);
                writer.TryWrite(WakeUp); // a full queue or a stopping pipeline needs no wake-up
            }, (this, queue), Timeout.Infinite, Timeout.Infinite);
        }

        /// <summary>Makes sure the alarm rings within <paramref name="delay"/> (perhaps sooner, for an earlier deadline).</summary>
        public void RingWithin(TimeSpan delay)
        {
            var due = System.Diagnostics.Stopwatch.GetTimestamp() + (long)(delay.TotalSeconds * System.Diagnostics.Stopwatch.Frequency);
            var current = Interlocked.Read(ref _due);
            if (current <= due)
            {
                return;
            }
            Interlocked.Exchange(ref _due, due);
            // Timers round down to whole milliseconds; rounding up keeps a deadline from ringing just before it.
            _timer.Change((long)Math.Ceiling(Math.Max(delay.TotalMilliseconds, 1)), Timeout.Infinite);
        }

        public void Dispose() => _timer.Dispose();
    }

    private async Task CommitAsync(List<PendingRequest> batch)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var committed = true;
        try
        {
            var outcomes = await store.CommitAsync(batch, CancellationToken.None);
            for (var i = 0; i < batch.Count; i++)
            {
                batch[i].Outcome = outcomes[i];
            }
            Observe(batch, outcomes);
        }
        catch (Exception ex)
        {
            // Nothing of the batch was committed or made visible: every waiter learns so, none is acknowledged.
            committed = false;
            logger.LogError(ex, "Commit of {Count} commands failed; answering 503", batch.Count);
            foreach (var pending in batch)
            {
                pending.Outcome = new RequestOutcome(CommandResult.Fail(ErrorCodes.StoreUnavailable, "The store could not confirm the change, so it was not acknowledged. Retry shortly, with the same Idempotency-Key if you sent one."));
            }
        }
        var operations = 0;
        foreach (var pending in batch)
        {
            operations += pending.Batch?.Operations.Count ?? 1;
        }
        metrics.RecordCommit(operations, System.Diagnostics.Stopwatch.GetElapsedTime(started), committed);
        RecordOutcomes(batch);
    }

    /// <summary>The commit is acknowledged: its observers (live events) hear of it. One that fails never fails the commit.</summary>
    private void Observe(List<PendingRequest> batch, IReadOnlyList<RequestOutcome> outcomes)
    {
        foreach (var observer in _observers)
        {
            try
            {
                observer.Committed(batch, outcomes);
            }
            catch (Exception ex)
            {
                logger.LogError(ex, "{Observer} failed on a commit; the commit stands", observer.GetType().Name);
            }
        }
    }

    /// <summary>Durability=async: changes already acknowledged become durable; on failure they stay pending and are retried.</summary>
    private async Task FlushAsync()
    {
        try
        {
            await _deferred!.FlushAsync(CancellationToken.None);
        }
        catch (Exception ex)
        {
            metrics.RecordStoreError();
            logger.LogError(ex, "Flushing acknowledged changes failed; retrying");
            await Task.Delay(100);
        }
    }

    private async Task MaintainAsync(IStoreUpkeep upkeep)
    {
        try
        {
            await upkeep.MaintainAsync(CancellationToken.None);
        }
        catch (Exception ex)
        {
            // Upkeep is retried at the next idle moment; a failing disk also shows in commits and readiness.
            metrics.RecordStoreError();
            logger.LogWarning(ex, "Store upkeep failed; it will be retried");
        }
    }

    /// <summary>One metric update per distinct (operation, outcome) in the batch, not one per command.</summary>
    private void RecordOutcomes(List<PendingRequest> batch)
    {
        _outcomes.Clear();
        foreach (var pending in batch)
        {
            var outcome = pending.Outcome;
            if (outcome.Replayed)
            {
                Count(pending.Command?.Kind ?? CommandKind.Get, "replayed", pending.Batch is not null);
            }
            else if (outcome.Batch is { } results)
            {
                for (var i = 0; i < results.Results.Length; i++)
                {
                    var result = results.Results[i];
                    Count(pending.Batch!.Operations[i].Kind, result.Status == CommandStatus.Failed || !results.Aborted ? TallyMetrics.OutcomeOf(result) : "aborted", false);
                }
            }
            else
            {
                Count(pending.Command?.Kind ?? CommandKind.Get, TallyMetrics.OutcomeOf(outcome.Result), pending.Batch is not null);
            }
        }
        foreach (var ((op, outcome), count) in _outcomes)
        {
            metrics.RecordOperation(op, outcome, count);
        }
    }

    private void Count(CommandKind kind, string outcome, bool wholeBatch)
    {
        var key = (wholeBatch ? "batch" : TallyMetrics.OpName(kind), outcome);
        _outcomes[key] = _outcomes.GetValueOrDefault(key) + 1;
    }
}
