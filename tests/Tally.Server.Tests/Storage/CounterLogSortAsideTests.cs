using Microsoft.Data.Sqlite;
using Tally.Server.Counters;
using Tally.Server.Storage;
using Tally.Server.Storage.Sqlite;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Storage;

/// <summary>A large fold cycle is sorted off the commit loop: commits go on meanwhile, and no name is lost or folded stale.</summary>
public class CounterLogSortAsideTests
{
    [Fact]
    public void CommitsGoOnWhileACycleIsSortedAndTheFileStaysWhole()
    {
        using var dataDir = new TempDirectory();
        using var connection = new SqliteConnection($"Data Source={Path.Combine(dataDir.Path, "tally.db")};Pooling=False");
        connection.Open();
        SqliteSchema.Migrate(connection);
        var state = new Dictionary<string, Counter?>(StringComparer.Ordinal);
        // Every cycle goes to the thread pool (sortAsideFrom: 1); one starts once 5 names are logged.
        using var log = new CounterLog(connection, foldAfterNames: 5, sortAsideFrom: 1);
        var commitsWhileSorting = 0;
        for (var i = 0; i < 300; i++)
        {
            var name = $"n{i * 7 % 40:D2}";
            // Some deletions too: a deleted name must leave the table when its cycle folds.
            Counter? counter = i % 23 == 22 ? null : new Counter(name, i, 0, null, i % 2 == 0 ? 1000 : null, i + 1, 1, i);
            Commit(connection, log, state, new Dictionary<string, Counter?> { [name] = counter });
            if (log.Sorting)
            {
                commitsWhileSorting++;
            }
        }
        Assert.True(commitsWhileSorting > 0);

        // A crash now: the table with the log replayed over it is the committed state.
        Assert.Equal(Describe(state), Describe(Reopen(connection)));

        // Idle upkeep takes the sorted cycle once it is ready and empties the log.
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (log.Rows > 0 && DateTime.UtcNow < deadline)
        {
            using (var transaction = connection.BeginTransaction())
            {
                log.MaintenanceStep(transaction, name => state.GetValueOrDefault(name));
                transaction.Commit();
            }
            log.Committed();
            Thread.Sleep(5);
        }
        Assert.Equal(0, log.Rows);
        Assert.Equal(0, SqliteSchema.Scalar(connection, "SELECT count(*) FROM counter_log"));
        Assert.Equal(Describe(state), Describe(Reopen(connection)));

        // A clean close while a cycle is being sorted waits for it, folds everything and empties the log.
        for (var i = 0; i < 5; i++)
        {
            var name = $"new{i}";
            Commit(connection, log, state, new Dictionary<string, Counter?> { [name] = new Counter(name, i, 0, null, null, 1, 1, 1) });
        }
        Assert.True(log.Sorting);
        Commit(connection, log, state, new Dictionary<string, Counter?>(), foldAll: true);
        Assert.Equal(0, SqliteSchema.Scalar(connection, "SELECT count(*) FROM counter_log"));
        Assert.Equal(Describe(state), Describe(Reopen(connection)));
    }

    private static void Commit(
        SqliteConnection connection, CounterLog log, Dictionary<string, Counter?> state, Dictionary<string, Counter?> changes, bool foldAll = false)
    {
        using (var transaction = connection.BeginTransaction())
        {
            log.Write(transaction, changes, name => state.GetValueOrDefault(name), state.Count(entry => entry.Value is not null), foldAll);
            transaction.Commit();
        }
        log.Committed();
        foreach (var (name, counter) in changes)
        {
            state[name] = counter;
        }
    }

    /// <summary>What a start-up would read: the counters table, then the log replayed over it.</summary>
    private static CounterCache Reopen(SqliteConnection connection)
    {
        var stored = new List<Counter>();
        using (var command = connection.CreateCommand())
        {
            command.CommandText = "SELECT name, value, initial, min, max, version, created_at, updated_at, created_by FROM counters ORDER BY name";
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                stored.Add(CounterLog.ReadCounter(reader, reader.GetString(0)));
            }
        }
        var cache = new CounterCache();
        cache.Load(stored);
        using var replay = new CounterLog(connection, foldAfterNames: 5);
        replay.Replay(connection, cache);
        return cache;
    }

    private static string Describe(Dictionary<string, Counter?> state) =>
        string.Join("\n", state.Where(entry => entry.Value is not null).OrderBy(entry => entry.Key, StringComparer.Ordinal).Select(entry => entry.Value!.ToString()));

    private static string Describe(CounterCache cache) =>
        string.Join("\n", cache.All.OrderBy(counter => counter.Name, StringComparer.Ordinal).Select(counter => counter.ToString()));
}
