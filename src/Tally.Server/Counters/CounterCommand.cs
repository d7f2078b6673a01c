namespace Tally.Server.Counters;

internal enum CommandKind
{
    Get,
    Increment,
    Decrement,
    Put,
    Reset,
    Delete,
    /// <summary>Writes a counter's whole state as exported (value, bounds, version, times): for moving between stores.</summary>
    Import,
}

/// <summary>
/// A request to read or change one counter, as it travels through the commit pipeline.
/// Validated at the edge (name, amount); the rules re-check what they depend on.
/// </summary>
internal sealed record CounterCommand(CommandKind Kind, string Name)
{
    /// <summary>Amount for increment and decrement, 1..long.MaxValue.</summary>
    public long Amount { get; init; } = 1;

    /// <summary>Fields for PUT.</summary>
    public CounterFields Fields { get; init; }

    public Precondition Precondition { get; init; }

    /// <summary>The state to write, for <see cref="CommandKind.Import"/>.</summary>
    public Counter? State { get; init; }

    public static CounterCommand Increment(string name, long by, Precondition precondition = default) =>
        new(CommandKind.Increment, name) { Amount = by, Precondition = precondition };

    public static CounterCommand Decrement(string name, long by, Precondition precondition = default) =>
        new(CommandKind.Decrement, name) { Amount = by, Precondition = precondition };

    public static CounterCommand Put(string name, CounterFields fields, Precondition precondition = default) =>
        new(CommandKind.Put, name) { Fields = fields, Precondition = precondition };

    public static CounterCommand Reset(string name, Precondition precondition = default) =>
        new(CommandKind.Reset, name) { Precondition = precondition };

    public static CounterCommand Delete(string name, Precondition precondition = default) =>
        new(CommandKind.Delete, name) { Precondition = precondition };

    public static CounterCommand Get(string name) => new(CommandKind.Get, name);

    public static CounterCommand Import(Counter state) => new(CommandKind.Import, state.Name) { State = state };
}

/// <summary>A field that may be absent, as distinct from present with a null value.</summary>
internal readonly record struct Optional<T>(bool IsSet, T Value)
{
    public static Optional<T> Of(T value) => new(true, value);

    public T Or(T fallback) => IsSet ? Value : fallback;
}

/// <summary>The body of PUT: every field optional; <c>Min</c>/<c>Max</c> may be set to null (unbounded).</summary>
internal readonly record struct CounterFields(
    Optional<long> Value,
    Optional<long> Initial,
    Optional<long?> Min,
    Optional<long?> Max);

internal enum PreconditionKind
{
    None,
    /// <summary><c>If-Match: *</c>: the counter must exist.</summary>
    IfMatchAny,
    /// <summary><c>If-Match: "v1", "v2"</c>: the counter must be at one of these versions.</summary>
    IfMatch,
    /// <summary><c>If-None-Match: *</c>: the counter must not exist (create-only).</summary>
    IfNoneMatchAny,
}

internal readonly record struct Precondition(PreconditionKind Kind, long[]? Versions = null)
{
    public static Precondition None => default;

    public static Precondition IfMatch(params long[] versions) => new(PreconditionKind.IfMatch, versions);
}
