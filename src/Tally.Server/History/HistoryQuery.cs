using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http.HttpResults;
using Tally.Server.Http;

namespace Tally.Server.History;

/// <summary>
/// The query of <c>GET /counters/{name}/history</c>: <c>interval</c> (minute, the default; hour; day) and the range
/// <c>from</c>/<c>to</c> (ISO-8601), as the range of bucket starts to look in. A bucket is answered when it overlaps
/// [from, to). Without <c>to</c>: up to the end of the current bucket; without <c>from</c>: the 60 intervals before <c>to</c>.
/// </summary>
internal readonly partial record struct HistoryQuery(HistoryInterval Interval, long From, long To)
{
    public const int DefaultIntervals = 60;

    /// <summary>
    /// The query from the bound parameters, or a <c>400 invalid_query</c> saying what is wrong with it. A parameter given
    /// twice is refused (<paramref name="query"/> tells), rather than read as its values joined.
    /// </summary>
    public static ProblemHttpResult? TryParse(IQueryCollection query, string? intervalText, string? fromText, string? toText, long now, out HistoryQuery parsed)
    {
        parsed = default;
        foreach (var name in (string[])["interval", "from", "to"])
        {
            if (query[name].Count > 1)
            {
                return Problems.Create(Problems.InvalidQuery, $"'{name}' is given {query[name].Count} times; give it once.");
            }
        }
        var interval = HistoryInterval.Minute;
        if (intervalText is not null && !HistoryIntervals.TryParse(intervalText, out interval))
        {
            return Problems.Create(Problems.InvalidQuery, $"'interval' must be minute, hour or day (got '{Truncate(intervalText)}').");
        }
        if (Time("from", fromText, out var from) is { } badFrom)
        {
            return badFrom;
        }
        if (Time("to", toText, out var to) is { } badTo)
        {
            return badTo;
        }
        var length = HistoryIntervals.LengthOf(interval);
        var end = to ?? HistoryIntervals.StartOf(interval, now) + length;
        var start = from ?? HistoryIntervals.StartOf(interval, end - 1) - (DefaultIntervals - 1) * length;
        if (start >= end)
        {
            return Problems.Create(Problems.InvalidQuery, "'from' must be before 'to'.");
        }
        parsed = new HistoryQuery(interval, HistoryIntervals.StartOf(interval, start), end);
        return null;
    }

    /// <summary>
    /// An ISO-8601 date (<c>2026-11-21</c>, midnight UTC) or date and time (<c>2026-11-21T22:00</c>, seconds and fraction
    /// optional) with <c>Z</c>, an offset (<c>+01:00</c>, <c>-05:00</c>) or none (UTC). A query string turns an unescaped
    /// <c>+</c> into a space; a space before the offset is read as the <c>+</c> it was.
    /// </summary>
    private static ProblemHttpResult? Time(string name, string? text, out long? milliseconds)
    {
        milliseconds = null;
        if (text is null)
        {
            return null;
        }
        var match = IsoTime().Match(text);
        if (!match.Success || !DateTimeOffset.TryParse(
            match.Groups["offset"].Value.StartsWith(' ') ? text.Replace(' ', '+') : text,
            CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var time))
        {
            return Problems.Create(Problems.InvalidQuery,
                $"'{name}' must be an ISO-8601 time such as 2026-11-21T22:00:00Z (or a date, 2026-11-21); got '{Truncate(text)}'.");
        }
        milliseconds = time.ToUnixTimeMilliseconds();
        return null;
    }

    private static string Truncate(string text) => text.Length <= 60 ? text : text[..60] + "…";

    [GeneratedRegex(@"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?(?<offset>Z|[-+ ]\d{2}:\d{2})?)?\z")]
    private static partial Regex IsoTime();
}
