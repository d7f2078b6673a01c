using Tally.Server.Pipeline;

namespace Tally.Server.Counters;

internal enum ChangeKind
{
    Increment,
    Decrement,
    /// <summary>PUT, reset or import: the value was set rather than moved by an amount.</summary>
    Set,
    Delete,
}

/// <summary>
/// One committed change of one counter, in commit order: what history buckets, alert crossings and live events
/// are made of. <see cref="After"/> is the counter after the change (null: deleted); <see cref="Amount"/> is the
/// amount of an increment or decrement (0 otherwise).
/// </summary>
internal readonly record struct CounterChange(string Name, ChangeKind Kind, long Amount, Counter? After);

internal static class CounterChanges
{
    /// <summary>
    /// The changes a commit made, in order, read from its requests and their outcomes: the same for every engine.
    /// Replays, refused requests, reads and aborted atomic batches changed nothing and give nothing.
    /// </summary>
    public static List<CounterChange> Of(IReadOnlyList<PendingRequest> batch, IReadOnlyList<RequestOutcome> outcomes)
    {
        // Sized up front: a commit of many 1,000-operation batches would otherwise regrow a list of tens of thousands.
        var capacity = 0;
        for (var i = 0; i < batch.Count; i++)
        {
            capacity += batch[i].Batch?.Operations.Count ?? 1;
        }
        var changes = new List<CounterChange>(capacity);
        for (var i = 0; i < batch.Count; i++)
        {
            var outcome = outcomes[i];
            if (outcome.Replayed)
            {
                continue;
            }
            if (batch[i].Command is { } command)
            {
                Add(changes, command, outcome.Result);
            }
            else if (outcome.Batch is { Aborted: false } results)
            {
                var operations = batch[i].Batch!.Operations;
                for (var j = 0; j < operations.Count; j++)
                {
                    Add(changes, operations[j], results.Results[j]);
                }
            }
        }
        return changes;
    }

    private static void Add(List<CounterChange> changes, CounterCommand command, in CommandResult result)
    {
        if (!result.Changed)
        {
            return;
        }
        changes.Add(result.Status == CommandStatus.Deleted
            ? new CounterChange(command.Name, ChangeKind.Delete, 0, null)
            : command.Kind switch
            {
                CommandKind.Increment => new CounterChange(command.Name, ChangeKind.Increment, command.Amount, result.Counter),
                CommandKind.Decrement => new CounterChange(command.Name, ChangeKind.Decrement, command.Amount, result.Counter),
                _ => new CounterChange(command.Name, ChangeKind.Set, 0, result.Counter),
            });
    }
}
