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
/// The loop owns a thread of its own: it blocks in the disk flush, which on a thread-pool thread
/// would make the pool add threads and switch between them.
/// </summary>
internal sealed class CommitPipeline(ICounterStore store, TallyMetrics metrics, IOptions<TallyOptions> options, ILogger<CommitPipeline> logger)
    : IHostedService
{
    private readonly Channel<PendingRequest> _queue = Channel.CreateBounded<PendingRequest>(
        new BoundedChannelOptions(100_000) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
    private readonly Dictionary<(string Op, string Outcome), long> _outcomes = [];
    private readonly TaskCompletionSource _loopDone = new(TaskCreationOptions.RunContinuationsAsynchronously);
    /// <summary>How often the loop, when idle, gives the store a chance to do its upkeep.</summary>
    public static readonly TimeSpan MaintenanceInterval = TimeSpan.FromSeconds(1);

    private Thread? _loop;
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
        _loop = new Thread(RunLoop) { IsBackground = true, Name = "tally-commit" };
        _loop.Start();
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
            await _loopDone.Task.WaitAsync(cancellationToken);
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

    private void RunLoop()
    {
        try
        {
            Run();
        }
        finally
        {
            _loopDone.TrySetResult();
        }
    }

    private void Run()
    {
        var reader = _queue.Reader;
        var batch = new List<PendingRequest>(options.Value.MaxBatchSize);
        var flushInterval = TimeSpan.FromMilliseconds(options.Value.FlushIntervalMs);
        Task<bool>? waiting = null;
        var lastBatch = 0;
        var lastMaintenance = System.Diagnostics.Stopwatch.GetTimestamp();
        while (true)
        {
            if (!reader.TryPeek(out _))
            {
                waiting ??= reader.WaitToReadAsync().AsTask();
                if (store.UnflushedSince is { } since)
                {
                    // Durability=async: wait for work, but no longer than the flush deadline.
                    var remaining = flushInterval - System.Diagnostics.Stopwatch.GetElapsedTime(since);
                    if (remaining <= TimeSpan.Zero || !waiting.Wait(remaining))
                    {
                        Flush();
                        continue;
                    }
                }
                // Idle: wake now and then for the store's upkeep, so it never depends on traffic.
                var untilMaintenance = MaintenanceInterval - System.Diagnostics.Stopwatch.GetElapsedTime(lastMaintenance);
                if (untilMaintenance <= TimeSpan.Zero || !waiting.Wait(untilMaintenance))
                {
                    Maintain();
                    lastMaintenance = System.Diagnostics.Stopwatch.GetTimestamp();
                    continue;
                }
                var more = waiting.GetAwaiter().GetResult();
                waiting = null;
                if (!more)
                {
                    break;
                }
            }

            if (waiting is { IsCompleted: true })
            {
                waiting = null; // work came in without this wait; a stale wake-up would commit an empty batch
            }
            if (lastBatch >= 4)
            {
                // Busy: let the request threads that are about to enqueue do so, so this commit's one
                // disk flush carries more of them. A lone request (last batch of 1) never waits.
                Thread.Yield();
            }
            while (batch.Count < options.Value.MaxBatchSize && reader.TryRead(out var pending))
            {
                batch.Add(pending);
            }
            lastBatch = batch.Count;
            Commit(batch);
            // The responses are written on the thread pool while this loop goes on to the next commit.
            ThreadPool.UnsafeQueueUserWorkItem(static done =>
            {
                foreach (var pending in done)
                {
                    pending.TrySetResult(pending.Outcome);
                }
            }, batch.ToArray(), preferLocal: false);
            batch.Clear();

            if (store.UnflushedSince is { } last && System.Diagnostics.Stopwatch.GetElapsedTime(last) >= flushInterval)
            {
                Flush();
            }
        }
        // Stopping: acknowledged changes (Durability=async) get a few more chances to reach the disk.
        for (var attempt = 0; attempt < 5 && store.UnflushedSince is not null; attempt++)
        {
            Flush();
        }
        if (store.UnflushedSince is not null)
        {
            logger.LogCritical("Stopping with acknowledged changes that could not be written (Durability=async); they are lost");
        }
    }

    private void Commit(List<PendingRequest> batch)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var committed = true;
        try
        {
            store.CommitAsync(batch, CancellationToken.None).GetAwaiter().GetResult();
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

    /// <summary>Durability=async: changes already acknowledged go to disk; on failure they stay pending and are retried.</summary>
    private void Flush()
    {
        try
        {
            store.FlushAsync(CancellationToken.None).AsTask().GetAwaiter().GetResult();
        }
        catch (Exception ex)
        {
            metrics.RecordStoreError();
            logger.LogError(ex, "Flushing acknowledged changes failed; retrying");
            Thread.Sleep(100);
        }
    }

    private void Maintain()
    {
        try
        {
            store.MaintainAsync(CancellationToken.None).AsTask().GetAwaiter().GetResult();
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
