namespace Tally.Server.Counters;

/// <summary>
/// The rule book: given a counter's current state (null if it does not exist) and a command,
/// decide the result and the new state. Pure, so every store applies exactly the same rules.
/// </summary>
internal static class CounterRules
{
    public static CommandResult Apply(CounterCommand command, Counter? current, long nowMs)
    {
        if (!CounterName.IsValid(command.Name))
        {
            return CounterFailures.InvalidName();
        }

        var precondition = CheckPrecondition(command.Precondition, current);
        if (precondition is { } failed)
        {
            return failed;
        }

        return command.Kind switch
        {
            CommandKind.Get => current is null ? NotFound(command.Name) : CommandResult.Read(current),
            CommandKind.Increment => Add(command.Name, current, command.Amount, negate: false, nowMs),
            CommandKind.Decrement => Add(command.Name, current, command.Amount, negate: true, nowMs),
            CommandKind.Put => Put(command.Name, current, command.Fields, nowMs),
            CommandKind.Reset => current is null ? NotFound(command.Name) : Reset(current, nowMs),
            CommandKind.Delete => current is null ? NotFound(command.Name) : CommandResult.Deleted(current),
            CommandKind.Import => Import(command.State!, current),
            _ => throw new ArgumentOutOfRangeException(nameof(command), command.Kind, "Unknown command kind."),
        };
    }

    private static CommandResult? CheckPrecondition(Precondition precondition, Counter? current)
    {
        switch (precondition.Kind)
        {
            case PreconditionKind.IfNoneMatchAny when current is not null:
                return CounterFailures.CounterExists(current);
            case PreconditionKind.IfMatchAny when current is null:
                return CounterFailures.MissingForIfMatchAny();
            case PreconditionKind.IfMatch when current is null || Array.IndexOf(precondition.Versions!, current.Version) < 0:
                return CounterFailures.VersionMismatch(current);
            default:
                return null;
        }
    }

    private static CommandResult Add(string name, Counter? current, long amount, bool negate, long nowMs)
    {
        if (amount <= 0)
        {
            return CounterFailures.InvalidAmount();
        }

        // Redis INCR semantics: a missing counter starts at 0 with no bounds.
        var before = current ?? new Counter(name, 0, 0, null, null, 0, nowMs, nowMs);
        var next = negate ? before.Value - amount : before.Value + amount;
        var overflowed = negate ? next > before.Value : next < before.Value;
        if (overflowed || !before.Allows(next))
        {
            return CounterFailures.OutOfRange(name, amount, negate, before);
        }
        if (VersionExhausted(current) is { } exhausted)
        {
            return exhausted;
        }

        // Created or not, an increment answers 200: only PUT reports creation.
        return CommandResult.Updated(before with { Value = next, Version = before.Version + 1, UpdatedAt = nowMs });
    }

    private static CommandResult Put(string name, Counter? current, CounterFields fields, long nowMs)
    {
        var initial = fields.Initial.Or(current?.Initial ?? 0);
        var min = fields.Min.Or(current?.Min);
        var max = fields.Max.Or(current?.Max);
        var value = fields.Value.Or(current?.Value ?? initial);

        if (min is { } lo && max is { } hi && lo > hi)
        {
            return CounterFailures.InvalidBounds(lo, hi);
        }

        if (VersionExhausted(current) is { } exhausted)
        {
            return exhausted;
        }
        var proposed = new Counter(name, value, initial, min, max,
            (current?.Version ?? 0) + 1, current?.CreatedAt ?? nowMs, nowMs, current?.CreatedBy);
        if (!proposed.Allows(value))
        {
            return CounterFailures.ValueOutsideBounds(value, min, max);
        }
        if (!proposed.Allows(initial))
        {
            return CounterFailures.InitialOutsideBounds(initial, min, max);
        }

        return current is null ? CommandResult.Created(proposed) : CommandResult.Updated(proposed);
    }

    private static CommandResult Import(Counter state, Counter? current)
    {
        if (state.Min is { } lo && state.Max is { } hi && lo > hi)
        {
            return CounterFailures.InvalidBounds(lo, hi);
        }
        if (!state.Allows(state.Value) || !state.Allows(state.Initial))
        {
            return CounterFailures.ImportOutsideBounds(state.Value, state.Initial);
        }
        if (state.Version < 1)
        {
            return CounterFailures.ImportVersionBelowOne();
        }
        return current is null ? CommandResult.Created(state) : CommandResult.Updated(state);
    }

    private static CommandResult Reset(Counter current, long nowMs) =>
        VersionExhausted(current) ?? CommandResult.Updated(current with { Value = current.Initial, Version = current.Version + 1, UpdatedAt = nowMs });

    /// <summary>Versions never wrap: a counter at version 2^63-1 (only reachable by import) takes no further change.</summary>
    private static CommandResult? VersionExhausted(Counter? current) =>
        current is { Version: long.MaxValue } ? CounterFailures.VersionExhausted(current.Name) : null;

    private static CommandResult NotFound(string name) => CounterFailures.NotFound(name);
}
