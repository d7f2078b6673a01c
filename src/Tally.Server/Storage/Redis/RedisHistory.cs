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

    /// <summary>
    /// One counter's buckets of <paramref name="interval"/> starting in [<paramref name="from"/>, <paramref name="to"/>)
    /// within what can be alive at <paramref name="now"/>: the chunks and the counter's part of the unfolded history log
    /// (tally.lua's tally_v1_history_log), read in one MULTI/EXEC so that a commit or a fold is seen whole or not at all,
    /// and added up as the fold will (a deletion drops what came before it; a bucket past its chunk's expiry is dropped).
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
        var log = transaction.ExecuteAsync("FCALL_RO", RedisLibrary.HistoryLog, 0, name);
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
        var pieces = (RedisValue[])(await log)!;
        if (pieces.Length == 0)
        {
            return buckets;
        }
        return Unfolded(name, interval, pieces, first, last, now).Over(interval, buckets, from, to);
    }

    /// <summary>
    /// The counter's pieces of the log (tally_v1_history_log: <c>&lt;periods&gt;|[!][inc,dec,sets,value]</c>, oldest first)
    /// as a write over the stored buckets of <paramref name="interval"/>: only buckets the fold would keep (their chunk not yet
    /// past its expiry) and the read would see once folded (their chunk in [<paramref name="first"/>, <paramref name="last"/>]).
    /// </summary>
    private static CounterHistoryWrite Unfolded(string name, HistoryInterval interval, RedisValue[] pieces, long first, long last, long now)
    {
        var letter = LetterOf(interval);
        var write = new CounterHistoryWrite(name);
        foreach (var value in pieces)
        {
            var piece = value.ToString();
            var bar = piece.IndexOf('|', StringComparison.Ordinal);
            var record = piece.AsSpan(bar + 1);
            if (record.Length > 0 && record[0] == '!')
            {
                write.ClearsStored = true;
                write.Deltas.Clear();
                record = record[1..];
            }
            if (record.Length == 0)
            {
                continue;
            }
            // The header: "<p>,<bucket start>,<chunk start>,<chunk expiry>" per period, separated by ';'.
            foreach (var period in piece[..bar].Split(';'))
            {
                var fields = period.Split(',');
                if (fields[0] != letter || long.Parse(fields[3], CultureInfo.InvariantCulture) <= now
                    || long.Parse(fields[2], CultureInfo.InvariantCulture) is var chunk && (chunk < first || chunk > last))
                {
                    continue;
                }
                write.Add(interval, Parse(long.Parse(fields[1], CultureInfo.InvariantCulture), record.ToString()));
            }
        }
        return write;
    }

    private static HistoryBucket Parse(long start, string packed)
    {
        var parts = packed.Split(',');
        return new HistoryBucket(start,
            long.Parse(parts[0], CultureInfo.InvariantCulture), long.Parse(parts[1], CultureInfo.InvariantCulture),
            long.Parse(parts[2], CultureInfo.InvariantCulture), long.Parse(parts[3], CultureInfo.InvariantCulture));
    }
}
