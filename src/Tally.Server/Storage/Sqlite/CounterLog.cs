using Microsoft.Data.Sqlite;
using Tally.Server.Counters;

namespace Tally.Server.Storage.Sqlite;

/// <summary>
/// How counter changes reach the file. A commit appends one row per changed counter to
/// <c>counter_log</c>, which touches only the log's last pages, however scattered the names are;
/// updating the <c>counters</c> table in place would rewrite one page per name and make every
/// commit's disk write grow with the number of distinct counters.
/// <para>
/// Folding keeps the log short without a pause: once it names enough counters, a fold cycle
/// starts at the current last sequence number S. Each following commit also writes the current
/// state of some of the counters logged up to S into <c>counters</c>; when all are written, the
/// rows up to S are deleted. A clean close folds everything. At start-up the log is replayed in
/// order over the table: the last row of a name is its state, whatever was folded. A row with a
/// null value is a deletion (its rows go with the cycle that folds it).
/// </para>
/// <para>
/// What a fold costs is the pages of <c>counters</c> it rewrites, not the rows: the names of a cycle are
/// folded in name order, and a cycle starts only once it names at least an eighth of all counters
/// (and at least CounterLogFoldAfter), so that with a million counters scattered increments still fold many names per
/// page, and a commit's share stays a few pages whatever the number of counters.
/// </para>
/// <para>
/// The log stays bounded under any workload: a commit that appends k rows folds 1.25k + step names
/// (step = CounterLogFoldAfter / 400), so a cycle drains faster than commits refill the log: a cycle of
/// D names lets at most 0.8 D rows in, and starts with at most what the trigger allows (T names or
/// 10 T rows, T the threshold above) plus one commit. Folding runs through most commits in small steps
/// rather than in bursts. When the commit loop is idle it calls <see cref="MaintenanceStep"/>, which folds
/// a larger step without a commit's changes and starts a cycle below the thresholds, so an idle server
/// empties its log.
/// </para>
/// <para>
/// A cycle of many names is put in name order on the thread pool (125,000 names: about 40 ms of CPU, which on the
/// commit loop held up every request waiting for that commit); commits go on appending meanwhile, and the first
/// one after the sort has finished begins folding.
/// </para>
/// </summary>
internal sealed class CounterLog : IDisposable
{
    private readonly int _foldAfterNames;
    // A commit folds 1.25 times what it appended plus this step (50 by default), at least.
    private readonly int _foldPerCommit;
    // An idle upkeep call folds this many names (5,000 by default: some tens of milliseconds, once a second).
    private readonly int _foldPerMaintenance;
    // Cycles of at least this many names are sorted off the commit loop.
    private readonly int _sortAsideFrom;
    private readonly SqliteCommand _append;
    private readonly SqliteCommand _upsert;
    private readonly SqliteCommand _delete;
    private readonly SqliteCommand _truncate;

    // Names logged since the current cycle began (or since start-up, before any cycle).
    private HashSet<string> _dirty = new(StringComparer.Ordinal);
    private long _rowsSinceCycle;
    // Rows the running cycle will delete (those logged up to _foldUpTo).
    private long _rowsBeforeCycle;
    private long _lastSeq;

    // The fold cycle in progress: the names logged up to _foldUpTo, in ordinal order; those from _foldNext on are still to be written.
    private string[]? _folding;
    private int _foldNext;
    private long _foldUpTo;

    // A cycle whose names are being sorted on the thread pool: it becomes _folding once the sort has finished.
    private Task<string[]>? _sorting;
    private long _sortingUpTo;
    private HashSet<string>? _sortingNames;

    // What the current transaction did, undone if it rolls back.
    private int _foldedInTransaction;
    private bool _truncatedInTransaction;
    private bool _truncatedAll;

    /// <param name="foldAfterNames">Start a fold cycle once this many distinct counters (or ten times as many rows) are logged.</param>
    /// <param name="sortAsideFrom">Sort the names of a cycle this large on the thread pool rather than on the commit loop.</param>
    public CounterLog(SqliteConnection connection, int foldAfterNames, int sortAsideFrom = 20_000)
    {
        _foldAfterNames = foldAfterNames;
        _sortAsideFrom = sortAsideFrom;
        _foldPerCommit = Math.Max(1, foldAfterNames / 400);
        _foldPerMaintenance = Math.Max(1000, foldAfterNames / 4);
        _append = SqliteSchema.Prepare(connection,
            "INSERT INTO counter_log (seq, name, value, initial, min, max, version, created_at, updated_at, created_by) VALUES ($seq, $name, $value, $initial, $min, $max, $version, $created, $updated, $createdBy)",
            "$name", "$value", "$initial", "$min", "$max", "$version", "$created", "$updated", "$createdBy", "$seq");
        _upsert = SqliteSchema.Prepare(connection, """
            INSERT INTO counters (name, value, initial, min, max, version, created_at, updated_at, created_by)
            VALUES ($name, $value, $initial, $min, $max, $version, $created, $updated, $createdBy)
            ON CONFLICT (name) DO UPDATE SET value = excluded.value, initial = excluded.initial,
                min = excluded.min, max = excluded.max, version = excluded.version,
                created_at = excluded.created_at, updated_at = excluded.updated_at, created_by = excluded.created_by
            """, "$name", "$value", "$initial", "$min", "$max", "$version", "$created", "$updated", "$createdBy");
        _delete = SqliteSchema.Prepare(connection, "DELETE FROM counters WHERE name = $name", "$name");
        _truncate = SqliteSchema.Prepare(connection, "DELETE FROM counter_log WHERE seq <= $upTo", "$upTo");
    }

    /// <summary>Whether the log holds rows that idle upkeep could fold.</summary>
    public bool HasBacklog => _folding is not null || _sorting is not null || _rowsSinceCycle > 0;

    /// <summary>Whether a cycle's names are being sorted off the commit loop (for tests).</summary>
    internal bool Sorting => _sorting is not null;

    /// <summary>Distinct names a cycle waits for: an eighth of the counters, at least CounterLogFoldAfter (rows: ten times CounterLogFoldAfter, so a crash replays little).</summary>
    public long ThresholdFor(long counters) => Math.Max(_foldAfterNames, counters / 8);

    /// <summary>Rows in the log, as far as this process knows (for tests and diagnostics).</summary>
    public long Rows => _rowsSinceCycle + (_folding is null && _sorting is null ? 0 : _rowsBeforeCycle);

    /// <summary>Replays the log over the counters already loaded from the table.</summary>
    public void Replay(SqliteConnection connection, CounterCache cache)
    {
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT name, value, initial, min, max, version, created_at, updated_at, created_by, seq FROM counter_log ORDER BY seq";
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            var name = reader.GetString(0);
            cache.Set(name, reader.IsDBNull(1) ? null : ReadCounter(reader, name));
            _dirty.Add(name);
            _rowsSinceCycle++;
            _lastSeq = reader.GetInt64(9);
        }
    }

    /// <summary>
    /// A counter from columns name, value, initial, min, max, version, created_at, updated_at, created_by (in that order).
    /// The few creators (API key ids) are interned: one string each, not one per counter.
    /// </summary>
    public static Counter ReadCounter(SqliteDataReader reader, string name)
    {
        var createdBy = reader.IsDBNull(8) ? null : string.Intern(reader.GetString(8));
        return new(name, reader.GetInt64(1), reader.GetInt64(2),
            reader.IsDBNull(3) ? null : reader.GetInt64(3),
            reader.IsDBNull(4) ? null : reader.GetInt64(4),
            reader.GetInt64(5), reader.GetInt64(6), reader.GetInt64(7),
            createdBy);
    }

    /// <summary>
    /// Writes one commit's counter changes inside <paramref name="transaction"/>, and a step of the fold
    /// cycle if one is running. <paramref name="committed"/> gives the committed state of counters this
    /// commit does not change; <paramref name="counters"/> is how many there are (it sets the cycle threshold).
    /// <paramref name="foldAll"/> (on close) folds the whole log and empties it.
    /// </summary>
    public void Write(
        SqliteTransaction transaction, IReadOnlyDictionary<string, Counter?> changes, Func<string, Counter?> committed, long counters, bool foldAll = false)
    {
        _foldedInTransaction = 0;
        _truncatedInTransaction = false;
        _truncatedAll = false;
        foreach (var command in (SqliteCommand[])[_append, _upsert, _delete, _truncate])
        {
            command.Transaction = transaction;
        }
        if (foldAll)
        {
            TakeSorted(wait: true);
            var pending = new HashSet<string>(_dirty, StringComparer.Ordinal);
            if (_folding is not null)
            {
                pending.UnionWith(_folding.Skip(_foldNext));
            }
            pending.UnionWith(changes.Keys);
            var names = pending.ToArray();
            Array.Sort(names, StringComparer.Ordinal);
            foreach (var name in names)
            {
                WriteState(name, changes.TryGetValue(name, out var changed) ? changed : committed(name));
            }
            _truncate.Parameters[0].Value = long.MaxValue;
            _truncate.ExecuteNonQuery();
            _truncatedAll = true;
            return;
        }

        foreach (var (name, counter) in changes)
        {
            Bind(_append, name, counter);
            _append.Parameters[9].Value = ++_lastSeq;
            _append.ExecuteNonQuery();
            _dirty.Add(name);
        }
        _rowsSinceCycle += changes.Count;

        TakeSorted(wait: false);
        var threshold = ThresholdFor(counters);
        if (_folding is null && _sorting is null && (_dirty.Count >= threshold || _rowsSinceCycle >= _foldAfterNames * 10L))
        {
            StartCycle();
        }
        if (_folding is not null)
        {
            // Proportional to what this commit appended: the backlog cannot outgrow the folding.
            FoldStep(changes, committed, changes.Count + (changes.Count + 3) / 4 + _foldPerCommit);
        }
    }

    /// <summary>
    /// Idle upkeep inside <paramref name="transaction"/>: one bounded fold step, starting a cycle even
    /// below the thresholds, so the log empties while nothing else happens. <paramref name="committed"/>
    /// must give the durable state of every counter. Followed by <see cref="Committed"/> or <see cref="RolledBack"/>.
    /// </summary>
    public void MaintenanceStep(SqliteTransaction transaction, Func<string, Counter?> committed)
    {
        _foldedInTransaction = 0;
        _truncatedInTransaction = false;
        _truncatedAll = false;
        foreach (var command in (SqliteCommand[])[_append, _upsert, _delete, _truncate])
        {
            command.Transaction = transaction;
        }
        TakeSorted(wait: false);
        if (_folding is null && _sorting is null && _rowsSinceCycle > 0)
        {
            StartCycle();
        }
        if (_folding is not null)
        {
            FoldStep(EmptyChanges, committed, _foldPerMaintenance);
        }
    }

    private static readonly IReadOnlyDictionary<string, Counter?> EmptyChanges = new Dictionary<string, Counter?>();

    private void StartCycle()
    {
        var names = _dirty;
        _rowsBeforeCycle = _rowsSinceCycle;
        // A fresh set: the old one's table keeps the size of the largest backlog otherwise.
        _dirty = new HashSet<string>(StringComparer.Ordinal);
        _rowsSinceCycle = 0;
        if (names.Count >= _sortAsideFrom)
        {
            // Nothing else touches the old set: the commit loop has a new one.
            _sortingUpTo = _lastSeq;
            _sortingNames = names;
            _sorting = Task.Run(() => Sorted(names));
            return;
        }
        _folding = Sorted(names);
        _foldNext = 0;
        _foldUpTo = _lastSeq;
    }

    // In name order: consecutive names share pages of the counters table, so a step rewrites few pages.
    private static string[] Sorted(HashSet<string> names)
    {
        string[] sorted = [.. names];
        Array.Sort(sorted, StringComparer.Ordinal);
        return sorted;
    }

    /// <summary>Makes a cycle sorted off the loop the running one once its sort is done (<paramref name="wait"/>: waits for it).</summary>
    private void TakeSorted(bool wait)
    {
        if (_sorting is not { } sorting || (!wait && !sorting.IsCompleted))
        {
            return;
        }
        string[] sorted;
        try
        {
            sorted = sorting.GetAwaiter().GetResult();
        }
        catch (Exception)
        {
            // Sorted again here: these names must be folded before their rows are deleted.
            sorted = Sorted(_sortingNames!);
        }
        _sorting = null;
        _sortingNames = null;
        _folding = sorted;
        _foldNext = 0;
        _foldUpTo = _sortingUpTo;
    }

    /// <summary>After the transaction committed.</summary>
    public void Committed()
    {
        if (_truncatedInTransaction || _truncatedAll)
        {
            _folding = null;
            _rowsBeforeCycle = 0;
        }
        if (_truncatedAll)
        {
            _dirty = new HashSet<string>(StringComparer.Ordinal);
            _rowsSinceCycle = 0;
        }
        _foldedInTransaction = 0;
    }

    /// <summary>
    /// After the transaction rolled back: the names it folded are folded again later, and the log is
    /// not truncated. (Appended names stay marked dirty: at worst one is written once more by a fold.)
    /// </summary>
    public void RolledBack()
    {
        if (_folding is not null)
        {
            _foldNext -= _foldedInTransaction;
        }
        _foldedInTransaction = 0;
        _truncatedInTransaction = false;
        _truncatedAll = false;
    }

    public void Dispose()
    {
        foreach (var command in (SqliteCommand[])[_append, _upsert, _delete, _truncate])
        {
            command.Dispose();
        }
    }

    /// <summary>Folds the log of a copy (a backup) into its counters table, so that any SQLite tool reads it whole.</summary>
    public static void FoldCopy(SqliteConnection copy) => SqliteSchema.Execute(copy, """
        BEGIN;
        CREATE INDEX counter_log_latest ON counter_log (name, seq);
        INSERT INTO counters (name, value, initial, min, max, version, created_at, updated_at, created_by)
            SELECT name, value, initial, min, max, version, created_at, updated_at, created_by FROM counter_log AS l
            WHERE value IS NOT NULL AND seq = (SELECT max(seq) FROM counter_log AS m WHERE m.name = l.name)
            ON CONFLICT (name) DO UPDATE SET value = excluded.value, initial = excluded.initial,
                min = excluded.min, max = excluded.max, version = excluded.version,
                created_at = excluded.created_at, updated_at = excluded.updated_at, created_by = excluded.created_by;
        DELETE FROM counters WHERE name IN (SELECT name FROM counter_log AS l
            WHERE value IS NULL AND seq = (SELECT max(seq) FROM counter_log AS m WHERE m.name = l.name));
        DELETE FROM counter_log;
        DROP INDEX counter_log_latest;
        COMMIT;
        """);

    private void FoldStep(IReadOnlyDictionary<string, Counter?> changes, Func<string, Counter?> committed, long count)
    {
        var folding = _folding!;
        for (var i = 0L; i < count && _foldNext < folding.Length; i++)
        {
            var name = folding[_foldNext++];
            // Counted before the write: if it throws, the rollback must put this name back too.
            _foldedInTransaction++;
            WriteState(name, changes.TryGetValue(name, out var changed) ? changed : committed(name));
        }
        if (_foldNext == folding.Length)
        {
            _truncate.Parameters[0].Value = _foldUpTo;
            _truncate.ExecuteNonQuery();
            _truncatedInTransaction = true;
        }
    }

    private void WriteState(string name, Counter? state)
    {
        if (state is null)
        {
            _delete.Parameters[0].Value = name;
            _delete.ExecuteNonQuery();
        }
        else
        {
            Bind(_upsert, name, state);
            _upsert.ExecuteNonQuery();
        }
    }

    private static void Bind(SqliteCommand command, string name, Counter? counter)
    {
        var p = command.Parameters;
        p[0].Value = name;
        p[1].Value = (object?)counter?.Value ?? DBNull.Value;
        p[2].Value = (object?)counter?.Initial ?? DBNull.Value;
        p[3].Value = (object?)counter?.Min ?? DBNull.Value;
        p[4].Value = (object?)counter?.Max ?? DBNull.Value;
        p[5].Value = (object?)counter?.Version ?? DBNull.Value;
        p[6].Value = (object?)counter?.CreatedAt ?? DBNull.Value;
        p[7].Value = (object?)counter?.UpdatedAt ?? DBNull.Value;
        p[8].Value = (object?)counter?.CreatedBy ?? DBNull.Value;
    }
}
