namespace Tally.Server.History;

/// <summary>The width of a history bucket.</summary>
internal enum HistoryInterval
{
    Minute,
    Hour,
    Day,
}

/// <summary>
/// Bucket arithmetic, in UTC. Unix time has no leap seconds, so every minute, hour and day has a fixed
/// length in milliseconds and a bucket starts where the time, floored to that length, falls. The Redis engine
/// takes its bucket starts from here too (RedisCommitWriter sends them), so no engine computes them otherwise.
/// </summary>
internal static class HistoryIntervals
{
    public const long MinuteMs = 60_000;
    public const long HourMs = 60 * MinuteMs;
    public const long DayMs = 24 * HourMs;

    public static readonly HistoryInterval[] All = [HistoryInterval.Minute, HistoryInterval.Hour, HistoryInterval.Day];

    public static long LengthOf(HistoryInterval interval) => interval switch
    {
        HistoryInterval.Minute => MinuteMs,
        HistoryInterval.Hour => HourMs,
        HistoryInterval.Day => DayMs,
        _ => throw new ArgumentOutOfRangeException(nameof(interval), interval, null),
    };

    /// <summary>The start (Unix ms) of the bucket of <paramref name="interval"/> holding <paramref name="timeMs"/>: the UTC floor.</summary>
    public static long StartOf(HistoryInterval interval, long timeMs) => Floor(timeMs, LengthOf(interval));

    /// <summary><paramref name="value"/> rounded down to a multiple of <paramref name="length"/>, also below 1970.</summary>
    public static long Floor(long value, long length)
    {
        var remainder = value % length;
        return remainder < 0 ? value - remainder - length : value - remainder;
    }

    /// <summary>The name the API uses: minute, hour, day.</summary>
    public static string NameOf(HistoryInterval interval) => interval switch
    {
        HistoryInterval.Minute => "minute",
        HistoryInterval.Hour => "hour",
        HistoryInterval.Day => "day",
        _ => throw new ArgumentOutOfRangeException(nameof(interval), interval, null),
    };

    public static bool TryParse(string? text, out HistoryInterval interval)
    {
        foreach (var candidate in All)
        {
            if (string.Equals(text, NameOf(candidate), StringComparison.Ordinal))
            {
                interval = candidate;
                return true;
            }
        }
        interval = default;
        return false;
    }
}
