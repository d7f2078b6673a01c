using Microsoft.Extensions.Options;

namespace Tally.Server.History;

/// <summary>
/// History settings, bound from the section <c>History</c>: whether commits record history, and how long each
/// interval's buckets are kept. A bucket is kept, and answered, while its start is no older than the start of the
/// bucket holding "now minus the retention"; older ones are pruned in the background, a bounded step at a time.
/// </summary>
internal sealed class HistoryOptions
{
    public const string Section = "History";

    /// <summary>Whether commits record history (deleting a counter deletes its history either way). Off: for the benchmark's comparison.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>How long minute buckets are kept, in hours.</summary>
    public int MinuteRetentionHours { get; set; } = 48;

    /// <summary>How long hour buckets are kept, in days.</summary>
    public int HourRetentionDays { get; set; } = 90;

    /// <summary>How long day buckets are kept, in years of 366 days (so that N whole calendar years are always kept).</summary>
    public int DayRetentionYears { get; set; } = 5;

    public long RetentionMs(HistoryInterval interval) => interval switch
    {
        HistoryInterval.Minute => MinuteRetentionHours * HistoryIntervals.HourMs,
        HistoryInterval.Hour => HourRetentionDays * HistoryIntervals.DayMs,
        HistoryInterval.Day => DayRetentionYears * 366L * HistoryIntervals.DayMs,
        _ => throw new ArgumentOutOfRangeException(nameof(interval), interval, null),
    };

    /// <summary>The start of the oldest bucket of <paramref name="interval"/> kept at <paramref name="now"/>; those before it are pruned and never answered.</summary>
    public long OldestKept(HistoryInterval interval, long now) => HistoryIntervals.StartOf(interval, now - RetentionMs(interval));
}

internal sealed class HistoryOptionsValidator : IValidateOptions<HistoryOptions>
{
    public ValidateOptionsResult Validate(string? name, HistoryOptions options)
    {
        var errors = new List<string>();
        if (options.MinuteRetentionHours is < 1 or > 720)
        {
            errors.Add($"History:MinuteRetentionHours must be from 1 to 720 (30 days) (got {options.MinuteRetentionHours}).");
        }
        if (options.HourRetentionDays is < 1 or > 1830)
        {
            errors.Add($"History:HourRetentionDays must be from 1 to 1830 (about 5 years) (got {options.HourRetentionDays}).");
        }
        if (options.DayRetentionYears is < 1 or > 100)
        {
            errors.Add($"History:DayRetentionYears must be from 1 to 100 (got {options.DayRetentionYears}).");
        }
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
