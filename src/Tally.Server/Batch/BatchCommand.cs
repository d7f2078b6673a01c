using Tally.Server.Counters;

namespace Tally.Server.Batch;

/// <summary>Up to <see cref="MaxOperations"/> commands in one request, applied in order in one commit.</summary>
/// <param name="Atomic">Either every operation applies or none does.</param>
internal sealed record BatchCommand(IReadOnlyList<CounterCommand> Operations, bool Atomic)
{
    public const int MaxOperations = 1000;
}

/// <summary>The result of every operation, in order; with an atomic batch that failed, <see cref="FailedIndex"/> names the culprit.</summary>
internal sealed record BatchResult(CommandResult[] Results, int FailedIndex = -1)
{
    public bool Aborted => FailedIndex >= 0;
}
