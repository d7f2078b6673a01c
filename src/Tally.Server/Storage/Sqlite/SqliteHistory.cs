using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Data.Sqlite;
using Tally.Server.History;

namespace Tally.Server.Storage.Sqlite;

/// <summary>
/// History in the SQLite file. A commit does not update the buckets (table <c>history</c>) in place: that would
/// rewrite one page per counter and interval, and over many names most of a commit's disk write. It appends its minute
/// buckets to <c>history_log</c> instead, in its own transaction (so they are durable with the change), and keeps them
/// in memory too, where reads add them over the stored buckets, with the hour and day they fall in.
/// <para>
/// Folding moves the log into <c>history</c>, many commits of a counter in one update: once the log is large or old
/// enough a fold cycle freezes what was logged up to then; each following commit folds the frozen buckets of a step of
/// counters, in name order (so a step's rows are neighbours on few pages), and records in <c>history_folded</c> how far
/// it got, in the same transaction; the step that folds the last deletes the log rows up to the freeze. A step is
/// proportional to what its commit appended, so the log stays bounded. At start-up, on a clean close and in a backup's
/// copy the whole log is folded at once, skipping what <c>history_folded</c> says was folded already: so a counter's
/// buckets are the same whether a kill came before, during or after a fold. Pruning cannot delete from the log (a row
/// holds a whole commit), so folding leaves out the buckets already past their retention, which a prune may have
/// deleted from <c>history</c> and from memory.
/// </para>
/// Requests read on read-only connections of their own (WAL lets them read while the writer writes); a lock keeps
/// a read from seeing a fold step committed to the file but still in memory.
/// </summary>
internal sealed class SqliteHistory : IDisposable
{
    /// <summary>Read-only connections kept for requests; more are opened when more read at once, and closed after.</summary>
    private const int KeptReaders = 4;

    // A cycle starts once the log since the last one names 5 × CounterLogFoldAfter counters, or holds 10 × as many
    // rows, or is this old. Long cycles fold many commits of a counter at once: over 10,000 names at full speed a
    // 5 s cycle still wrote about one bucket per increment.
    private static readonly long CycleAfterTicks = 60 * Stopwatch.Frequency;
    private readonly int _cycleAfterNames;

    // Counters folded per commit: twice what it logged plus this step; an idle upkeep step folds more.
    private readonly int _foldStep;
    private readonly int _maintenanceFold;

    private readonly string _databasePath;
    private readonly BucketWrites _writes;
    private readonly SqliteCommand _append;
    private readonly SqliteCommand _prune;
    private readonly ConcurrentBag<Reader> _readers = [];
    private readonly ReaderWriterLockSlim _lock = new();

    // Logged and not folded: since the running cycle began (_current), and the cycle's own (_folding, still to fold
    // from _foldOrder[_foldNext] on). Changed under the write lock, read by requests under the read lock.
    private HistoryWrites _current = new();
    private HistoryWrites? _folding;
    private string[] _foldOrder = [];
    private int _foldNext;
    private long _foldUpTo;
    private long _lastSeq;
    private long _seqAtMaintenance;
    private long _rowsSinceCycle;
    private long _cycleStartedAt = Stopwatch.GetTimestamp();

    // What the transaction in progress does, applied to the above once it commits.
    private readonly List<(string Name, HistoryBucket? Minute)> _appended = [];
    private readonly MemoryStream _encoded = new();
    private int _foldFrom;
    private bool _truncating;

    /// <summary>Folds whatever log an earlier run left (a kill, an older backup) and prepares the writes on <paramref name="writer"/>.</summary>
    /// <param name="foldAfter">CounterLogFoldAfter, which sizes the history log's cycles and steps too.</param>
    /// <param name="retention">With <paramref name="now"/>, which logged buckets are past their retention and not folded.</param>
    public SqliteHistory(SqliteConnection writer, string databasePath, int foldAfter, HistoryOptions retention, long now)
    {
        _databasePath = databasePath;
        _cycleAfterNames = (int)Math.Min(int.MaxValue, foldAfter * 5L);
        _foldStep = Math.Max(1, foldAfter / 200);
        _maintenanceFold = Math.Max(1000, foldAfter / 4);
        FoldAll(writer, retention, now);
        _writes = new BucketWrites(writer);
        _append = SqliteSchema.Prepare(writer, "INSERT INTO history_log (seq, entries) VALUES ($seq, $entries)", "$seq", "$entries");
        // The oldest first, along the key.
        _prune = SqliteSchema.Prepare(writer, """
            DELETE FROM history WHERE (period, start, name) IN
                (SELECT period, start, name FROM history WHERE period = $period AND start < $before ORDER BY start LIMIT $limit)
            """, "$period", "$before", "$limit");
    }

    /// <summary>
    /// Writes a commit's (or a flush's) history inside <paramref name="transaction"/>, and a fold step if a cycle runs.
    /// Followed by <see cref="Commit"/> or, when the transaction fails, <see cref="RolledBack"/>.
    /// </summary>
    public void Write(SqliteTransaction transaction, HistoryWrites history)
    {
        Begin();
        if (_folding is null && DueForCycle())
        {
            StartCycle();
        }
        if (!history.IsEmpty)
        {
            foreach (var write in history.Counters)
            {
                if (write.ClearsStored)
                {
                    _appended.Add((write.Name, null));
                }
                foreach (var delta in write.Deltas)
                {
                    if (delta.Interval == HistoryInterval.Minute)
                    {
                        _appended.Add((write.Name, delta.Bucket));
                    }
                }
            }
            if (_appended.Count > 0)
            {
                // One row per commit: one statement, however many counters it changed.
                _append.Transaction = transaction;
                _append.Parameters[0].Value = _lastSeq + 1;
                _append.Parameters[1].Value = Encode(_appended);
                _append.ExecuteNonQuery();
            }
        }
        if (_folding is not null)
        {
            // Faster than commits fill the log: a cycle always ends before the next is due.
            FoldStep(transaction, 2 * _appended.Count + _foldStep);
        }
    }

    /// <summary>Commits <paramref name="transaction"/> (written to by <see cref="Write"/>) and takes what it wrote into memory.</summary>
    public void Commit(SqliteTransaction transaction)
    {
        if (_foldNext > _foldFrom)
        {
            // The file's buckets change: no read may see them with the same buckets still in memory.
            _lock.EnterWriteLock();
            try
            {
                transaction.Commit();
                Committed();
            }
            finally
            {
                _lock.ExitWriteLock();
            }
            return;
        }
        transaction.Commit();
        if (_appended.Count > 0 || _truncating)
        {
            _lock.EnterWriteLock();
            try
            {
                Committed();
            }
            finally
            {
                _lock.ExitWriteLock();
            }
        }
    }

    /// <summary>After the transaction of <see cref="Write"/> failed: its rows and fold step never happened.</summary>
    public void RolledBack()
    {
        _appended.Clear();
        _foldNext = _foldFrom;
        _truncating = false;
    }

    /// <summary>
    /// Idle upkeep: one larger fold step in a transaction of its own, starting a cycle below the thresholds, so an idle
    /// server empties its log. Not while commits go on (upkeep also runs in their short pauses): they fold as they go.
    /// </summary>
    public void MaintenanceStep(SqliteConnection writer)
    {
        var committing = _lastSeq != _seqAtMaintenance;
        _seqAtMaintenance = _lastSeq;
        if (committing)
        {
            return;
        }
        if (_folding is null)
        {
            if (_current.Count == 0)
            {
                return;
            }
            StartCycle();
        }
        using var transaction = writer.BeginTransaction();
        Begin();
        try
        {
            FoldStep(transaction, _maintenanceFold);
            Commit(transaction);
        }
        catch
        {
            RolledBack();
            throw;
        }
    }

    /// <summary>
    /// Deletes up to <paramref name="limit"/> buckets of <paramref name="interval"/> starting before <paramref name="before"/>,
    /// in a transaction of its own, and drops those not folded yet.
    /// </summary>
    public int Prune(SqliteConnection writer, HistoryInterval interval, long before, int limit)
    {
        using var transaction = writer.BeginTransaction();
        _prune.Transaction = transaction;
        _prune.Parameters[0].Value = (int)interval;
        _prune.Parameters[1].Value = before;
        _prune.Parameters[2].Value = limit;
        _lock.EnterWriteLock();
        try
        {
            var pruned = _prune.ExecuteNonQuery();
            transaction.Commit();
            // The log's too (a fold writes what memory holds): a bucket past its retention is never answered again.
            _folding?.DropBefore(interval, before);
            _current.DropBefore(interval, before);
            return pruned;
        }
        finally
        {
            _lock.ExitWriteLock();
        }
    }

    /// <summary>One counter's buckets of one interval starting in [from, to), oldest first: the file's, with the log's added.</summary>
    public IReadOnlyList<HistoryBucket> Read(string name, HistoryInterval interval, long from, long to)
    {
        var reader = _readers.TryTake(out var kept) ? kept : new Reader(_databasePath);
        try
        {
            IReadOnlyList<HistoryBucket> buckets;
            _lock.EnterReadLock();
            try
            {
                buckets = reader.Read(name, interval, from, to);
                if (_folding?.Find(name) is { } folding)
                {
                    buckets = folding.Over(interval, buckets, from, to);
                }
                if (_current.Find(name) is { } current)
                {
                    buckets = current.Over(interval, buckets, from, to);
                }
            }
            finally
            {
                _lock.ExitReadLock();
            }
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

    /// <summary>
    /// Folds the whole log in one transaction on <paramref name="connection"/> (at start-up, on close, in a backup's copy),
    /// leaving it and <c>history_folded</c> empty. Buckets past their retention at <paramref name="now"/> are left out:
    /// a prune may already have deleted them, and a fold must not bring them back.
    /// </summary>
    public static void FoldAll(SqliteConnection connection, HistoryOptions retention, long now)
    {
        using var transaction = connection.BeginTransaction();
        long foldedUpTo = 0;
        string? foldedName = null;
        using (var command = connection.CreateCommand())
        {
            command.CommandText = "SELECT upto, name FROM history_folded";
            using var rows = command.ExecuteReader();
            if (rows.Read())
            {
                foldedUpTo = rows.GetInt64(0);
                foldedName = rows.GetString(1);
            }
        }
        var pending = new HistoryWrites();
        var logged = false;
        using (var command = connection.CreateCommand())
        {
            command.CommandText = "SELECT seq, entries FROM history_log ORDER BY seq";
            using var rows = command.ExecuteReader();
            while (rows.Read())
            {
                logged = true;
                var seq = rows.GetInt64(0);
                foreach (var (name, minute) in Decode((byte[])rows.GetValue(1)))
                {
                    if (seq <= foldedUpTo && string.CompareOrdinal(name, foldedName) <= 0)
                    {
                        continue; // folded by the cycle a stop interrupted
                    }
                    pending.Add(name, minute);
                }
            }
        }
        if (!logged && foldedName is null)
        {
            transaction.Rollback();
            return;
        }
        foreach (var interval in HistoryIntervals.All)
        {
            pending.DropBefore(interval, retention.OldestKept(interval, now));
        }
        using (var writes = new BucketWrites(connection))
        {
            writes.Use(transaction);
            foreach (var write in pending.Counters.OrderBy(write => write.Name, StringComparer.Ordinal))
            {
                writes.Write(write);
            }
        }
        SqliteSchema.Execute(connection, "DELETE FROM history_log; DELETE FROM history_folded;");
        transaction.Commit();
    }

    public void Dispose()
    {
        _writes.Dispose();
        _append.Dispose();
        _prune.Dispose();
        while (_readers.TryTake(out var reader))
        {
            reader.Dispose();
        }
        _lock.Dispose();
    }

    private void Begin()
    {
        _appended.Clear();
        _foldFrom = _foldNext;
        _truncating = false;
    }

    private bool DueForCycle() => _current.Count > 0 && (_current.Count >= _cycleAfterNames || _rowsSinceCycle >= _cycleAfterNames * 2L
        || Stopwatch.GetTimestamp() - _cycleStartedAt >= CycleAfterTicks);

    /// <summary>Freezes what was logged so far (all of it committed) for folding, in name order.</summary>
    private void StartCycle()
    {
        var names = new string[_current.Count];
        var i = 0;
        foreach (var write in _current.Counters)
        {
            names[i++] = write.Name;
        }
        Array.Sort(names, StringComparer.Ordinal);
        _lock.EnterWriteLock();
        try
        {
            _folding = _current;
            _current = new HistoryWrites();
        }
        finally
        {
            _lock.ExitWriteLock();
        }
        _foldOrder = names;
        _foldNext = _foldFrom = 0;
        _foldUpTo = _lastSeq;
        _rowsSinceCycle = 0;
        _cycleStartedAt = Stopwatch.GetTimestamp();
    }

    /// <summary>A log row's entries: per entry the name, then 0 (history cleared) or 1 and the minute bucket's five numbers.</summary>
    private byte[] Encode(List<(string Name, HistoryBucket? Minute)> entries)
    {
        _encoded.SetLength(0);
        using (var writer = new BinaryWriter(_encoded, System.Text.Encoding.UTF8, leaveOpen: true))
        {
            foreach (var (name, minute) in entries)
            {
                writer.Write(name);
                writer.Write(minute.HasValue);
                if (minute is { } bucket)
                {
                    writer.Write(bucket.Start);
                    writer.Write(bucket.Increments);
                    writer.Write(bucket.Decrements);
                    writer.Write(bucket.Sets);
                    writer.Write(bucket.Value);
                }
            }
        }
        return _encoded.ToArray();
    }

    private static IEnumerable<(string Name, HistoryBucket? Minute)> Decode(byte[] entries)
    {
        using var reader = new BinaryReader(new MemoryStream(entries), System.Text.Encoding.UTF8);
        while (reader.BaseStream.Position < entries.Length)
        {
            var name = reader.ReadString();
            yield return (name, reader.ReadBoolean()
                ? new HistoryBucket(reader.ReadInt64(), reader.ReadInt64(), reader.ReadInt64(), reader.ReadInt64(), reader.ReadInt64())
                : null);
        }
    }

    private void FoldStep(SqliteTransaction transaction, int count)
    {
        var end = Math.Min(_foldOrder.Length, _foldNext + count);
        if (end == _foldNext)
        {
            return;
        }
        _writes.Use(transaction);
        for (var i = _foldNext; i < end; i++)
        {
            _writes.Write(_folding!.Find(_foldOrder[i])!);
        }
        _foldNext = end;
        if (end == _foldOrder.Length)
        {
            _writes.Truncate(_foldUpTo);
            _truncating = true;
        }
        else
        {
            _writes.MarkFolded(_foldUpTo, _foldOrder[end - 1]);
        }
    }

    /// <summary>Under the write lock, after the transaction committed.</summary>
    private void Committed()
    {
        for (var i = _foldFrom; i < _foldNext; i++)
        {
            _folding!.Remove(_foldOrder[i]);
        }
        if (_truncating)
        {
            _folding = null;
            _foldOrder = [];
            _foldNext = 0;
        }
        foreach (var (name, minute) in _appended)
        {
            _current.Add(name, minute);
        }
        _lastSeq += _appended.Count > 0 ? 1 : 0;
        _rowsSinceCycle += _appended.Count;
        _appended.Clear();
        _foldFrom = _foldNext;
        _truncating = false;
    }

    /// <summary>The statements that fold into <c>history</c>, prepared on one connection.</summary>
    private sealed class BucketWrites : IDisposable
    {
        private readonly SqliteCommand _upsert;
        private readonly SqliteCommand _clear;
        private readonly SqliteCommand _mark;
        private readonly SqliteCommand _truncate;

        public BucketWrites(SqliteConnection connection)
        {
            // Sums saturate at 2^63-1 instead of overflowing (SQLite would turn them into floating point).
            _upsert = SqliteSchema.Prepare(connection, """
                INSERT INTO history (period, start, name, increments, decrements, sets, value)
                VALUES ($period, $start, $name, $increments, $decrements, $sets, $value)
                ON CONFLICT (period, start, name) DO UPDATE SET
                    increments = CASE WHEN increments > 9223372036854775807 - excluded.increments THEN 9223372036854775807 ELSE increments + excluded.increments END,
                    decrements = CASE WHEN decrements > 9223372036854775807 - excluded.decrements THEN 9223372036854775807 ELSE decrements + excluded.decrements END,
                    sets = CASE WHEN sets > 9223372036854775807 - excluded.sets THEN 9223372036854775807 ELSE sets + excluded.sets END,
                    value = excluded.value
                """, "$period", "$start", "$name", "$increments", "$decrements", "$sets", "$value");
            _clear = SqliteSchema.Prepare(connection, "DELETE FROM history WHERE name = $name", "$name");
            _mark = SqliteSchema.Prepare(connection,
                "INSERT INTO history_folded (id, upto, name) VALUES (1, $upto, $name) ON CONFLICT (id) DO UPDATE SET upto = excluded.upto, name = excluded.name",
                "$upto", "$name");
            _truncate = SqliteSchema.Prepare(connection, "DELETE FROM history_log WHERE seq <= $upto; DELETE FROM history_folded", "$upto");
        }

        public void Use(SqliteTransaction transaction) =>
            _upsert.Transaction = _clear.Transaction = _mark.Transaction = _truncate.Transaction = transaction;

        /// <summary>One counter's logged history into its buckets: what is stored deleted first where it says so, then the sums added.</summary>
        public void Write(CounterHistoryWrite write)
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

        /// <summary>The running cycle (the log up to <paramref name="upTo"/>) has folded every counter up to <paramref name="name"/>.</summary>
        public void MarkFolded(long upTo, string name)
        {
            _mark.Parameters[0].Value = upTo;
            _mark.Parameters[1].Value = name;
            _mark.ExecuteNonQuery();
        }

        /// <summary>The cycle is done: its log rows go, and the mark with them.</summary>
        public void Truncate(long upTo)
        {
            _truncate.Parameters[0].Value = upTo;
            _truncate.ExecuteNonQuery();
        }

        public void Dispose()
        {
            _upsert.Dispose();
            _clear.Dispose();
            _mark.Dispose();
            _truncate.Dispose();
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
