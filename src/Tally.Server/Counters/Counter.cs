namespace Tally.Server.Counters;

/// <summary>
/// One counter's committed state. Immutable: a change produces a new instance, so a reader
/// holding a reference never sees a half-applied update.
/// </summary>
/// <param name="Min">Inclusive lower bound; null means the 64-bit limit.</param>
/// <param name="Max">Inclusive upper bound; null means the 64-bit limit.</param>
/// <param name="CreatedAt">Unix time in milliseconds.</param>
/// <param name="UpdatedAt">Unix time in milliseconds.</param>
/// <param name="CreatedBy">The id of the API key that created it (null: unknown, e.g. created before quotas existed); counter quotas count by it.</param>
internal sealed record Counter(
    string Name,
    long Value,
    long Initial,
    long? Min,
    long? Max,
    long Version,
    long CreatedAt,
    long UpdatedAt,
    string? CreatedBy = null)
{
    public long Floor => Min ?? long.MinValue;

    public long Ceiling => Max ?? long.MaxValue;

    public bool Allows(long value) => value >= Floor && value <= Ceiling;
}
