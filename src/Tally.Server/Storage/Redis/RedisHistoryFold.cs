using System.Globalization;
using System.Text;
using Tally.Server.History;

namespace Tally.Server.Storage.Redis;

/// <summary>
/// The first entries of the Redis history log (tally.lua, "History": a header of the commit's periods, then a record per
/// change) added up per counter and bucket, here rather than on Redis's one thread, for tally_v1_history_fold_apply to
/// add to the chunks a share of the counters at a time. Records are taken in log order, so a bucket's value is the one
/// logged last even when instances' clocks put a later record in an earlier minute; a deletion drops what came before it.
/// A history read adds up one counter's unfolded records the same way (<paramref name="only"/>).
/// </summary>
/// <param name="only">The one counter to add up (a read), or null for all (a fold).</param>
internal sealed class RedisHistoryFold(string? only = null)
{
    private readonly Dictionary<string, FoldedCounter> _counters = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Period[]> _headers = new(StringComparer.Ordinal);

    /// <summary>The counters the entries changed or deleted.</summary>
    public int Counters => _counters.Count;

    /// <summary>Adds one entry of the log.</summary>
    private readonly string? _changed = only is null ? null : $";{only},", _deleted = only is null ? null : $";!{only};";

    public void Add(string entry)
    {
        if (_changed is not null && !entry.Contains(_changed, StringComparison.Ordinal) && !entry.Contains(_deleted!, StringComparison.Ordinal))
        {
            return; // a read: most entries do not name its counter
        }
        var bar = entry.IndexOf('|', StringComparison.Ordinal);
        var header = entry[..bar];
        if (!_headers.TryGetValue(header, out var periods))
        {
            _headers[header] = periods = ParseHeader(header);
        }
        Span<Range> fields = stackalloc Range[6];
        foreach (var range in entry.AsSpan(bar + 1).Split(';'))
        {
            var record = entry.AsSpan(bar + 1)[range];
            if (record.IsEmpty)
            {
                continue;
            }
            if (record[0] == '!')
            {
                if (only is not null && !record[1..].SequenceEqual(only))
                {
                    continue;
                }
                var deleted = CounterOf(record[1..].ToString());
                deleted.Clears = true;
                deleted.Buckets.Clear();
                continue;
            }
            if (record.Split(fields, ',') != 5)
            {
                throw new FormatException($"A history log record is not name,increments,decrements,sets,value: '{record}'.");
            }
            if (only is not null && !record[fields[0]].SequenceEqual(only))
            {
                continue;
            }
            var counter = CounterOf(record[fields[0]].ToString());
            var increments = Number(record[fields[1]]);
            var decrements = Number(record[fields[2]]);
            var sets = Number(record[fields[3]]);
            var value = Number(record[fields[4]]);
            foreach (var period in periods)
            {
                var change = new HistoryBucket(period.Start, increments, decrements, sets, value);
                var key = (period.Letter, period.Start);
                counter.Buckets[key] = counter.Buckets.TryGetValue(key, out var bucket)
                    ? bucket with { Sums = bucket.Sums.Then(change) }
                    : new FoldedBucket(period, change);
            }
        }
    }

    /// <summary>
    /// The arguments of tally_v1_history_fold_apply after its first four, <paramref name="countersPerCall"/> counters a
    /// call: per counter its name and "1" or "0" (its history goes first) then ";p,chunk,expiry,start,inc,dec,sets,value"
    /// per bucket, the buckets of one chunk together.
    /// </summary>
    public IEnumerable<List<object>> Calls(int countersPerCall)
    {
        var call = new List<object>(2 * countersPerCall);
        var text = new StringBuilder();
        foreach (var (name, counter) in _counters)
        {
            text.Clear().Append(counter.Clears ? '1' : '0');
            foreach (var bucket in counter.Buckets.Values
                .OrderBy(bucket => bucket.Period.Letter, StringComparer.Ordinal).ThenBy(bucket => bucket.Period.Chunk).ThenBy(bucket => bucket.Sums.Start))
            {
                text.Append(CultureInfo.InvariantCulture,
                    $";{bucket.Period.Letter},{bucket.Period.Chunk},{bucket.Period.Expiry},{bucket.Sums.Start},{bucket.Sums.Increments},{bucket.Sums.Decrements},{bucket.Sums.Sets},{bucket.Sums.Value}");
            }
            call.Add(name);
            call.Add(text.ToString());
            if (call.Count == 2 * countersPerCall)
            {
                yield return call;
                call = new List<object>(2 * countersPerCall);
            }
        }
        if (call.Count > 0)
        {
            yield return call;
        }
    }

    /// <summary>
    /// What the entries added of <paramref name="name"/>'s history: whether it goes first (a deletion), and its buckets of
    /// the period <paramref name="letter"/> with their chunk and expiry; false when the entries do not name it.
    /// </summary>
    public bool TryGet(string name, string letter, out bool clears, out List<(long Chunk, long Expiry, HistoryBucket Sums)> buckets)
    {
        buckets = [];
        clears = false;
        if (!_counters.TryGetValue(name, out var counter))
        {
            return false;
        }
        clears = counter.Clears;
        foreach (var bucket in counter.Buckets.Values)
        {
            if (bucket.Period.Letter == letter)
            {
                buckets.Add((bucket.Period.Chunk, bucket.Period.Expiry, bucket.Sums));
            }
        }
        return true;
    }

    private FoldedCounter CounterOf(string name)
    {
        if (!_counters.TryGetValue(name, out var counter))
        {
            _counters[name] = counter = new FoldedCounter();
        }
        return counter;
    }

    /// <summary>"p,bucket start,chunk start,chunk expiry" per period, separated by ';' (none when the commit recorded no change).</summary>
    private static Period[] ParseHeader(string header)
    {
        if (header.Length == 0)
        {
            return [];
        }
        return [.. header.Split(';').Select(period =>
        {
            var fields = period.Split(',');
            return new Period(fields[0], long.Parse(fields[1], CultureInfo.InvariantCulture),
                long.Parse(fields[2], CultureInfo.InvariantCulture), long.Parse(fields[3], CultureInfo.InvariantCulture));
        })];
    }

    private static long Number(ReadOnlySpan<char> text) => long.Parse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);

    private sealed record Period(string Letter, long Start, long Chunk, long Expiry);

    private sealed record FoldedBucket(Period Period, HistoryBucket Sums);

    private sealed class FoldedCounter
    {
        public bool Clears { get; set; }

        public Dictionary<(string Letter, long Start), FoldedBucket> Buckets { get; } = [];
    }
}
