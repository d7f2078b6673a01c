using System.Collections.Concurrent;
using Microsoft.Data.Sqlite;
using Tally.Server.History;

namespace Tally.Server.Storage.Sqlite;

/// <summary>
/// History in the SQLite file (table <c>history</c>, schema version 5): written by the commit's own transaction on the
/// writer connection, pruned a bounded step at a time by upkeep, read by requests on read-only connections of their
/// own (WAL lets them read while the writer writes). The key starts with the interval and the bucket's start, so the
/// rows a commit updates (every counter's current buckets) are neighbours on few pages; an index finds one counter's rows.
/// </summary>
internal sealed class SqliteHistory : IDisposable
{
    /// <summary>Read-only connections kept for requests; more are opened when more read at once, and closed after.</summary>
    private const int KeptReaders = 4;

    private readonly string _databasePath;
    private readonly SqliteCommand _upsert;
    private readonly SqliteCommand _clear;
    private readonly SqliteCommand _prune;
    private readonly ConcurrentBag<Reader> _readers = [];

    public SqliteHistory(SqliteConnection writer, string databasePath)
    {
        _databasePath = databasePath;
        // Sums saturate at 2^63-1 instead of overflowing (SQLite would turn them into floating point).
        _upsert = SqliteSchema.Prepare(writer, """
            INSERT INTO history (period, start, name, increments, decrements, sets, value)
            VALUES ($period, $start, $name, $increments, $decrements, $sets, $value)
            ON CONFLICT (period, start, name) DO UPDATE SET
                increments = CASE WHEN increments > 9223372036854775807 - excluded.increments THEN 9223372036854775807 ELSE increments + excluded.increments END,
                decrements = CASE WHEN decrements > 9223372036854775807 - excluded.decrements THEN 9223372036854775807 ELSE decrements + excluded.decrements END,
                sets = CASE WHEN sets > 9223372036854775807 - excluded.sets THEN 9223372036854775807 ELSE sets + excluded.sets END,
                value = excluded.value
            """, "$period", "$start", "$name", "$increments", "$decrements", "$sets", "$value");
        _clear = SqliteSchema.Prepare(writer, "DELETE FROM history WHERE name = $name", "$name");
        // The oldest first, along the key.
        _prune = SqliteSchema.Prepare(writer, """
            DELETE FROM history WHERE (period, start, name) IN
                (SELECT period, start, name FROM history WHERE period = $period AND start < $before ORDER BY start LIMIT $limit)
            """, "$period", "$before", "$limit");
    }

    /// <summary>Writes a commit's (or a flush's) history inside <paramref name="transaction"/>.</summary>
    public void Write(SqliteTransaction transaction, HistoryWrites history)
    {
        if (history.IsEmpty)
        {
            return;
        }
        _clear.Transaction = transaction;
        _upsert.Transaction = transaction;
        foreach (var write in history.Counters)
        {
            if (write.ClearsStored)
            {
                _clear.Parameters[0].Value = write.Name;
                _clear.ExecuteNonQuery();
            }
            foreach (var delta in write.Deltas)
            {
                var p = _upsert.Parameters;
                p[0].Value = (int)delta.Interval;
                p[1].Value = delta.Bucket.Start;
                p[2].Value = write.Name;
                p[3].Value = delta.Bucket.Increments;
                p[4].Value = delta.Bucket.Decrements;
                p[5].Value = delta.Bucket.Sets;
                p[6].Value = delta.Bucket.Value;
                _upsert.ExecuteNonQuery();
            }
        }
    }

    /// <summary>Deletes up to <paramref name="limit"/> buckets of <paramref name="interval"/> starting before <paramref name="before"/>, in a transaction of its own.</summary>
    public int Prune(SqliteConnection writer, HistoryInterval interval, long before, int limit)
    {
        using var transaction = writer.BeginTransaction();
        _prune.Transaction = transaction;
        _prune.Parameters[0].Value = (int)interval;
        _prune.Parameters[1].Value = before;
        _prune.Parameters[2].Value = limit;
        var pruned = _prune.ExecuteNonQuery();
        transaction.Commit();
        return pruned;
    }

    /// <summary>One counter's buckets of one interval starting in [from, to), oldest first, from what is committed to the file.</summary>
    public IReadOnlyList<HistoryBucket> Read(string name, HistoryInterval interval, long from, long to)
    {
        var reader = _readers.TryTake(out var kept) ? kept : new Reader(_databasePath);
        try
        {
            var buckets = reader.Read(name, interval, from, to);
            if (_readers.Count < KeptReaders)
            {
                _readers.Add(reader);
                reader = null;
            }
            return buckets;
        }
        finally
        {
            reader?.Dispose();
        }
    }

    public void Dispose()
    {
        _upsert.Dispose();
        _clear.Dispose();
        _prune.Dispose();
        while (_readers.TryTake(out var reader))
        {
            reader.Dispose();
        }
    }

    private sealed class Reader : IDisposable
    {
        private readonly SqliteConnection _connection;
        private readonly SqliteCommand _select;

        public Reader(string databasePath)
        {
            _connection = new SqliteConnection(SqliteSchema.ConnectionString(databasePath, readOnly: true));
            _connection.Open();
            _select = SqliteSchema.Prepare(_connection, """
                SELECT start, increments, decrements, sets, value FROM history
                WHERE name = $name AND period = $period AND start >= $from AND start < $to ORDER BY start
                """, "$name", "$period", "$from", "$to");
        }

        public List<HistoryBucket> Read(string name, HistoryInterval interval, long from, long to)
        {
            var p = _select.Parameters;
            p[0].Value = name;
            p[1].Value = (int)interval;
            p[2].Value = from;
            p[3].Value = to;
            using var rows = _select.ExecuteReader();
            var buckets = new List<HistoryBucket>();
            while (rows.Read())
            {
                buckets.Add(new HistoryBucket(rows.GetInt64(0), rows.GetInt64(1), rows.GetInt64(2), rows.GetInt64(3), rows.GetInt64(4)));
            }
            return buckets;
        }

        public void Dispose()
        {
            _select.Dispose();
            _connection.Dispose();
        }
    }
}
