using System.Threading.Channels;
using Microsoft.Extensions.Options;
using Tally.Server.Configuration;
using Tally.Server.Counters;
using Tally.Server.Storage;

namespace Tally.Server.Pipeline;

/// <summary>
/// Group commit. Requests enqueue a command and await it; one loop takes everything waiting
/// (up to MaxBatchSize), has the store apply and commit it as one transaction, and only then
/// completes the waiters. A lone request commits at once; under load batches grow by themselves.
/// </summary>
internal sealed class CommitPipeline(ICounterStore store, IOptions<TallyOptions> options, ILogger<CommitPipeline> logger)
    : IHostedService
{
    private readonly Channel<PendingCommand> _queue = Channel.CreateBounded<PendingCommand>(
        new BoundedChannelOptions(100_000) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
    private Task? _loop;

    /// <summary>Raised after each commit attempt with the batch size and its duration; for metrics.</summary>
    public event Action<int, TimeSpan, bool>? Committed;

    public Task<CommandResult> SubmitAsync(CounterCommand command, CancellationToken cancellationToken = default)
    {
        var pending = new PendingCommand(command);
        if (_queue.Writer.TryWrite(pending))
        {
            return pending.Task;
        }
        return SubmitSlowAsync(pending, cancellationToken);
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await store.OpenAsync(cancellationToken);
        _loop = Task.Run(RunAsync, CancellationToken.None);
    }

    /// <summary>Stops taking commands, commits everything already queued, then closes the store.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _queue.Writer.TryComplete();
        if (_loop is not null)
        {
            await _loop.WaitAsync(cancellationToken);
        }
        await store.DisposeAsync();
    }

    private async Task<CommandResult> SubmitSlowAsync(PendingCommand pending, CancellationToken cancellationToken)
    {
        try
        {
            await _queue.Writer.WriteAsync(pending, cancellationToken);
        }
        catch (ChannelClosedException)
        {
            return CommandResult.Fail(ErrorCodes.StoreUnavailable, "Tally is shutting down; retry against another instance or after the restart.");
        }
        return await pending.Task;
    }

    private async Task RunAsync()
    {
        var reader = _queue.Reader;
        var batch = new List<PendingCommand>(options.Value.MaxBatchSize);
        while (await reader.WaitToReadAsync())
        {
            while (batch.Count < options.Value.MaxBatchSize && reader.TryRead(out var pending))
            {
                batch.Add(pending);
            }

            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            var committed = true;
            try
            {
                await store.CommitAsync(batch, CancellationToken.None);
            }
            catch (Exception ex)
            {
                // Nothing of the batch was committed or made visible: every waiter learns so, none is acknowledged.
                committed = false;
                logger.LogError(ex, "Commit of {Count} commands failed; answering 503", batch.Count);
                foreach (var pending in batch)
                {
                    pending.Result = CommandResult.Fail(ErrorCodes.StoreUnavailable, "The store could not commit the change; nothing was applied. Retry shortly.");
                }
            }
            Committed?.Invoke(batch.Count, System.Diagnostics.Stopwatch.GetElapsedTime(started), committed);

            foreach (var pending in batch)
            {
                pending.TrySetResult(pending.Result);
            }
            batch.Clear();
        }
    }
}
