using System.Runtime.InteropServices;
using Microsoft.Data.Sqlite;
using SQLitePCL;
using Tally.Server.Counters;

namespace Tally.Server.Storage.Sqlite;

/// <summary>
/// Reads the whole counters table at start-up. Through <see cref="SqliteDataReader"/> every column is two or three native
/// calls, each taking and releasing the statement's handle: with a million counters that was over a quarter of the
/// start-up (docs/profiles.md). Here the statement's handle is taken once for the whole table and each column is one call.
/// </summary>
internal static class CounterRows
{
    private const int SqliteNull = 5;

    /// <summary>Every stored counter, in name order; the few creators (API key ids) shared, one string each.</summary>
    public static List<Counter> ReadAll(SqliteConnection connection)
    {
        var db = connection.Handle ?? throw new InvalidOperationException("The connection is not open.");
        var counters = new List<Counter>();
        var creators = new Dictionary<string, string>(StringComparer.Ordinal);
        var rc = raw.sqlite3_prepare_v2(db,
            "SELECT name, value, initial, min, max, version, created_at, updated_at, created_by FROM counters ORDER BY name", out var statement);
        using (statement)
        {
            Check(db, rc);
            var taken = false;
            statement.DangerousAddRef(ref taken);
            try
            {
                var row = statement.DangerousGetHandle();
                while ((rc = raw.sqlite3_step(statement)) == raw.SQLITE_ROW)
                {
                    var name = Text(row, 0)!;
                    string? createdBy = null;
                    if (Text(row, 8) is { } read && !creators.TryGetValue(read, out createdBy))
                    {
                        createdBy = string.Intern(read);
                        creators[read] = createdBy;
                    }
                    counters.Add(new Counter(name, Native.ColumnInt64(row, 1), Native.ColumnInt64(row, 2),
                        Native.ColumnType(row, 3) == SqliteNull ? null : Native.ColumnInt64(row, 3),
                        Native.ColumnType(row, 4) == SqliteNull ? null : Native.ColumnInt64(row, 4),
                        Native.ColumnInt64(row, 5), Native.ColumnInt64(row, 6), Native.ColumnInt64(row, 7), createdBy));
                }
                if (rc != raw.SQLITE_DONE)
                {
                    Check(db, rc);
                }
            }
            finally
            {
                if (taken)
                {
                    statement.DangerousRelease();
                }
            }
        }
        return counters;
    }

    private static string? Text(IntPtr row, int column)
    {
        var text = Native.ColumnText(row, column);
        return text == IntPtr.Zero ? null : Marshal.PtrToStringUTF8(text, Native.ColumnBytes(row, column));
    }

    private static void Check(sqlite3 db, int rc)
    {
        if (rc != raw.SQLITE_OK)
        {
            throw new SqliteException(raw.sqlite3_errmsg(db).utf8_to_string(), rc);
        }
    }

    // The library SQLitePCLRaw's bundle ships and has already loaded; the statement stays alive (its handle taken) while these run.
    private static class Native
    {
        [DllImport("e_sqlite3", EntryPoint = "sqlite3_column_int64", CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern long ColumnInt64(IntPtr statement, int column);

        [DllImport("e_sqlite3", EntryPoint = "sqlite3_column_type", CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern int ColumnType(IntPtr statement, int column);

        [DllImport("e_sqlite3", EntryPoint = "sqlite3_column_text", CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern IntPtr ColumnText(IntPtr statement, int column);

        [DllImport("e_sqlite3", EntryPoint = "sqlite3_column_bytes", CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern int ColumnBytes(IntPtr statement, int column);
    }
}
