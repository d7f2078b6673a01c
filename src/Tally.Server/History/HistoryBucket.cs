namespace Tally.Server.History;

/// <summary>
/// One bucket of a counter's history: what was added (<see cref="Increments"/>) and subtracted
/// (<see cref="Decrements"/>, a positive sum) in it, how many times the value was set (PUT, reset, import),
/// and the value after its last change. Sums saturate at 2^63-1 rather than overflow: a bucket never fails a commit.
/// </summary>
/// <param name="Start">Unix time in milliseconds, UTC, a multiple of the interval's length.</param>
internal readonly record struct HistoryBucket(long Start, long Increments, long Decrements, long Sets, long Value)
{
    /// <summary>This bucket followed by <paramref name="later"/> (the same start): the sums added, the later value.</summary>
    public HistoryBucket Then(in HistoryBucket later) => new(
        Start,
        SaturatingAdd(Increments, later.Increments),
        SaturatingAdd(Decrements, later.Decrements),
        SaturatingAdd(Sets, later.Sets),
        later.Value);

    /// <summary><paramref name="a"/> + <paramref name="b"/> for two non-negative sums, or 2^63-1 past it.</summary>
    public static long SaturatingAdd(long a, long b) => a > long.MaxValue - b ? long.MaxValue : a + b;
}
