using System.Globalization;
using StackExchange.Redis;
using Tally.Server.History;

namespace Tally.Server.Storage.Redis;

/// <summary>
/// Where history lives in Redis (tally.lua logs it inside the commit's function call; RedisCounterStore folds the log
/// into buckets later, adding it up itself, RedisHistoryFold): the buckets of one counter and
/// period fall into fixed chunks, each a hash <c>tally:h:&lt;p&gt;:&lt;chunk start&gt;:&lt;name&gt;</c> (field: the bucket's
/// start; value: <c>increments,decrements,sets,value</c>) that expires once its last bucket is past the retention, so
/// Redis prunes history by itself; <c>tally:hk:&lt;name&gt;</c> lists a counter's live chunks for deleting them with it.
/// Small chunks keep each hash compact (a listpack) and let an idle counter's history go piece by piece.
/// </summary>
internal static class RedisHistory
{
    /// <summary>m, h, d: the period's letter in keys.</summary>
    public static string LetterOf(HistoryInterval interval) => interval switch
    {
        HistoryInterval.Minute => "m",
        HistoryInterval.Hour => "h",
        HistoryInterval.Day => "d",
        _ => throw new ArgumentOutOfRangeException(nameof(interval), interval, null),
    };

    /// <summary>An hour of minute buckets, a day of hour buckets, 30 days of day buckets.</summary>
    public static long ChunkLengthOf(HistoryInterval interval) => interval switch
    {
        HistoryInterval.Minute => HistoryIntervals.HourMs,
        HistoryInterval.Hour => HistoryIntervals.DayMs,
        HistoryInterval.Day => 30 * HistoryIntervals.DayMs,
        _ => throw new ArgumentOutOfRangeException(nameof(interval), interval, null),
    };

    public static long ChunkOf(HistoryInterval interval, long start) => HistoryIntervals.Floor(start, ChunkLengthOf(interval));

    public static RedisKey ChunkKey(HistoryInterval interval, long chunk, string name) =>
        $"tally:h:{LetterOf(interval)}:{chunk.ToString(CultureInfo.InvariantCulture)}:{name}";

    /// <summary>
    /// How long a chunk written at <paramref name="now"/> lives: until its last bucket is past the retention, with one
    /// interval to spare for a Redis clock a little ahead of Tally's (which decides what is answered).
    /// </summary>
    public static long TtlOf(HistoryInterval interval, long chunk, long now, HistoryOptions options) =>
        chunk + ChunkLengthOf(interval) + options.RetentionMs(interval) + HistoryIntervals.LengthOf(interval) - now;

    /// <summary>The history log (tally.lua, "History"): an entry per commit not yet folded.</summary>
    public static readonly RedisKey LogKey = "tally:hl";

    /// <summary>The fold under way: the entries it folds, and the counters it has applied.</summary>
    private static readonly RedisKey FoldEntriesKey = "tally:hf:k", FoldAppliedKey = "tally:hf:done";

    /// <summary>The parts of revision 3's history log (tally.lua's LOG_PARTS).</summary>
    public const int LogParts = 32;

    /// <summary>The parts of revision 3's history log, by number.</summary>
    public static readonly RedisKey[] LogPartKeys = [.. Enumerable.Range(0, LogParts).Select(part => (RedisKey)$"tally:hl:{part}")];

    /// <summary>tally.lua's log_part: the part of revision 3's log a counter's entries went to.</summary>
    public static int LogPartOf(string name)
    {
        var h = 0;
        foreach (var c in name)
        {
            h = (h * 31 + c) % 65536;
        }
        return h % LogParts;
    }

    /// <summary>
    /// One counter's buckets of <paramref name="interval"/> starting in [<paramref name="from"/>, <paramref name="to"/>)
    /// within what can be alive at <paramref name="now"/>: the chunks and the unfolded log (and what revision 3 left in
    /// the counter's part of its log), read in one MULTI/EXEC so that a commit or a fold's call is seen whole or not at
    /// all, and added up as the fold will (RedisHistoryFold: a deletion drops what came before it; a bucket past its
    /// chunk's expiry is dropped). The log is read whole with LRANGE and searched here, not by a script on Redis's one
    /// thread: a few MB at most (the fold keeps it to about 10–20 s of commits), which Redis copies out far faster than
    /// Lua could search it.
    /// </summary>
    public static async Task<IReadOnlyList<HistoryBucket>> ReadAsync(
        IDatabase database, string name, HistoryInterval interval, long from, long to, long now, HistoryOptions options)
    {
        var length = ChunkLengthOf(interval);
        // No chunk outside these bounds can be alive (one chunk of slack each way for clocks): a wide range costs nothing more.
        var first = ChunkOf(interval, Math.Max(from, now - options.RetentionMs(interval) - HistoryIntervals.LengthOf(interval) - length));
        var last = ChunkOf(interval, Math.Min(to - 1, now + length));
        if (first > last)
        {
            return [];
        }
        var transaction = database.CreateTransaction();
        var reads = new List<Task<HashEntry[]>>();
        for (var chunk = first; chunk <= last; chunk += length)
        {
            reads.Add(transaction.HashGetAllAsync(ChunkKey(interval, chunk, name)));
        }
        var part = transaction.ListRangeAsync(LogPartKeys[LogPartOf(name)]);
        var folding = transaction.StringGetAsync(FoldEntriesKey);
        var applied = transaction.SetContainsAsync(FoldAppliedKey, name);
        var log = transaction.ListRangeAsync(LogKey);
        await transaction.ExecuteAsync();
        var buckets = new List<HistoryBucket>();
        foreach (var read in reads)
        {
            foreach (var entry in await read)
            {
                var start = (long)entry.Name;
                if (start >= from && start < to)
                {
                    buckets.Add(Parse(start, entry.Value.ToString()));
                }
            }
        }
        buckets.Sort((a, b) => a.Start.CompareTo(b.Start));
        var unfolded = new RedisHistoryFold(only: name);
        foreach (var entry in await part)
        {
            unfolded.Add(entry.ToString());
        }
        // A counter the fold under way has applied has the fold's first entries in its chunks already.
        var entries = await log;
        var skip = await applied && (await folding) is { HasValue: true } k ? (long)k : 0;
        for (var i = skip; i < entries.Length; i++)
        {
            unfolded.Add(entries[i].ToString());
        }
        if (!unfolded.TryGet(name, LetterOf(interval), out var clears, out var logged))
        {
            return buckets;
        }
        var write = new CounterHistoryWrite(name) { ClearsStored = clears };
        foreach (var (chunk, expiry, sums) in logged)
        {
            // Only buckets the fold would keep (their chunk not yet past its expiry) and the read would see once folded.
            if (expiry > now && chunk >= first && chunk <= last)
            {
                write.Add(interval, sums);
            }
        }
        return write.Over(interval, buckets, from, to);
    }

    private static HistoryBucket Parse(long start, string packed)
    {
        var parts = packed.Split(',');
        return new HistoryBucket(start,
            long.Parse(parts[0], CultureInfo.InvariantCulture), long.Parse(parts[1], CultureInfo.InvariantCulture),
            long.Parse(parts[2], CultureInfo.InvariantCulture), long.Parse(parts[3], CultureInfo.InvariantCulture));
    }
}
