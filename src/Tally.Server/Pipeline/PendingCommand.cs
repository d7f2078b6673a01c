using Tally.Server.Counters;

namespace Tally.Server.Pipeline;

/// <summary>
/// A command waiting in the commit pipeline. The store writes <see cref="Result"/>; the pipeline
/// completes the task only after the batch holding it is committed.
/// </summary>
internal sealed class PendingCommand(CounterCommand command)
    : TaskCompletionSource<CommandResult>(TaskCreationOptions.RunContinuationsAsynchronously)
{
    public CounterCommand Command { get; } = command;

    public CommandResult Result { get; set; }
}
