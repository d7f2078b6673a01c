using Microsoft.Data.Sqlite;
using Tally.Server.Counters;

namespace Tally.Server.Storage.Sqlite;

/// <summary>
/// How counter changes reach the file. A commit appends one row per changed counter to
/// <c>counter_log</c>, which touches only the log's last page, however scattered the names are;
/// updating the <c>counters</c> table in place would rewrite one page per name and make the
/// commit's disk write grow with the number of distinct counters. Now and then (and on a clean
/// close) the log is folded into <c>counters</c> and emptied, in the same transaction as a commit.
/// At start-up the log is replayed over the table. A row with a null value is a deletion.
/// </summary>
internal sealed class CounterLog : IDisposable
{
    private readonly HashSet<string> _dirty = new(StringComparer.Ordinal);
    private readonly SqliteCommand _append;
    private readonly SqliteCommand _upsert;
    private readonly SqliteCommand _delete;
    private readonly SqliteCommand _clear;
    private long _rows;
    private bool _pendingFold;

    private readonly int _foldAfterNames;
    private readonly int _foldAfterRows;

    /// <param name="foldAfterNames">Fold once this many distinct counters are in the log (or ten times as many rows).</param>
    public CounterLog(SqliteConnection connection, int foldAfterNames)
    {
        _foldAfterNames = foldAfterNames;
        _foldAfterRows = foldAfterNames * 10;
        _append = Prepare(connection,
            "INSERT INTO counter_log (name, value, initial, min, max, version, created_at, updated_at) VALUES ($name, $value, $initial, $min, $max, $version, $created, $updated)",
            "$name", "$value", "$initial", "$min", "$max", "$version", "$created", "$updated");
        _upsert = Prepare(connection, """
            INSERT INTO counters (name, value, initial, min, max, version, created_at, updated_at)
            VALUES ($name, $value, $initial, $min, $max, $version, $created, $updated)
            ON CONFLICT (name) DO UPDATE SET value = excluded.value, initial = excluded.initial,
                min = excluded.min, max = excluded.max, version = excluded.version,
                created_at = excluded.created_at, updated_at = excluded.updated_at
            """, "$name", "$value", "$initial", "$min", "$max", "$version", "$created", "$updated");
        _delete = Prepare(connection, "DELETE FROM counters WHERE name = $name", "$name");
        _clear = Prepare(connection, "DELETE FROM counter_log");
    }

    /// <summary>Replays the log over the counters already loaded from the table.</summary>
    public void Replay(SqliteConnection connection, CounterCache cache)
    {
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT name, value, initial, min, max, version, created_at, updated_at FROM counter_log ORDER BY seq";
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            var name = reader.GetString(0);
            cache.Set(name, reader.IsDBNull(1) ? null : ReadCounter(reader, name));
            _dirty.Add(name);
            _rows++;
        }
    }

    public static Counter ReadCounter(SqliteDataReader reader, string name) => new(name, reader.GetInt64(1), reader.GetInt64(2),
        reader.IsDBNull(3) ? null : reader.GetInt64(3),
        reader.IsDBNull(4) ? null : reader.GetInt64(4),
        reader.GetInt64(5), reader.GetInt64(6), reader.GetInt64(7));

    /// <summary>
    /// Writes the changes of one commit inside <paramref name="transaction"/>: appended to the log,
    /// or, when the log has grown enough (or <paramref name="fold"/> asks), folded with everything
    /// logged before into the counters table. <paramref name="committed"/> gives the state of
    /// counters changed by earlier commits.
    /// </summary>
    public void Write(SqliteTransaction transaction, IReadOnlyDictionary<string, Counter?> changes, Func<string, Counter?> committed, bool fold = false)
    {
        if (fold || _dirty.Count + changes.Count >= _foldAfterNames || _rows + changes.Count >= _foldAfterRows)
        {
            Fold(transaction, changes, committed);
            return;
        }
        _append.Transaction = transaction;
        foreach (var (name, counter) in changes)
        {
            Bind(_append, name, counter);
            _append.ExecuteNonQuery();
            _dirty.Add(name);
        }
        _rows += changes.Count;
    }

    /// <summary>Folds the log of a copy (a backup) into its counters table, so that any SQLite tool reads it whole.</summary>
    public static void FoldCopy(SqliteConnection copy) => SqliteSchema.Execute(copy, """
        BEGIN;
        CREATE INDEX counter_log_latest ON counter_log (name, seq);
        INSERT INTO counters (name, value, initial, min, max, version, created_at, updated_at)
            SELECT name, value, initial, min, max, version, created_at, updated_at FROM counter_log AS l
            WHERE value IS NOT NULL AND seq = (SELECT max(seq) FROM counter_log AS m WHERE m.name = l.name)
            ON CONFLICT (name) DO UPDATE SET value = excluded.value, initial = excluded.initial,
                min = excluded.min, max = excluded.max, version = excluded.version,
                created_at = excluded.created_at, updated_at = excluded.updated_at;
        DELETE FROM counters WHERE name IN (SELECT name FROM counter_log AS l
            WHERE value IS NULL AND seq = (SELECT max(seq) FROM counter_log AS m WHERE m.name = l.name));
        DELETE FROM counter_log;
        DROP INDEX counter_log_latest;
        COMMIT;
        """);

    public void Dispose()
    {
        foreach (var command in (SqliteCommand[])[_append, _upsert, _delete, _clear])
        {
            command.Dispose();
        }
    }

    private void Fold(SqliteTransaction transaction, IReadOnlyDictionary<string, Counter?> changes, Func<string, Counter?> committed)
    {
        _upsert.Transaction = transaction;
        _delete.Transaction = transaction;
        _clear.Transaction = transaction;
        foreach (var name in _dirty.Concat(changes.Keys).Distinct(StringComparer.Ordinal))
        {
            var state = changes.TryGetValue(name, out var changed) ? changed : committed(name);
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
        _clear.ExecuteNonQuery();
        _pendingFold = true;
    }

    /// <summary>After the transaction committed: a fold, if there was one, has emptied the log.</summary>
    public void Committed()
    {
        if (_pendingFold)
        {
            _dirty.Clear();
            _rows = 0;
            _pendingFold = false;
        }
    }

    /// <summary>
    /// After the transaction rolled back: a fold did not happen. (Names appended stay marked dirty and
    /// counted, which at worst folds a little early: a fold writes their committed state.)
    /// </summary>
    public void RolledBack() => _pendingFold = false;

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
    }

    private static SqliteCommand Prepare(SqliteConnection connection, string sql, params string[] parameters)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var parameter in parameters)
        {
            command.Parameters.Add(new SqliteParameter(parameter, null));
        }
        command.Prepare();
        return command;
    }
}
