using Microsoft.Data.Sqlite;
using Tally.Server.Counters;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Storage;

/// <summary>The SQLite store's counter log: a failed commit in the middle of a fold cycle loses nothing.</summary>
public class CounterLogTests
{
    [Fact]
    public async Task AWriteErrorDuringAFoldStepLosesNoCounterAcrossARestart()
    {
        using var dataDir = new TempDirectory();
        var clock = new ManualClock(1_700_000_000_000);
        var store = StoreTesting.Create("sqlite-fold5", dataDir.Path, clock);
        await store.OpenAsync(CancellationToken.None);
        // With a fold threshold of 5, the commit of "h" after these starts a fold cycle and its first step.
        string[] names = ["a", "b", "c", "d", "e", "f", "g", "i", "j"];
        try
        {
            foreach (var name in names)
            {
                await store.CommitAsync(CounterCommand.Put(name, new CounterFields(Optional<long>.Of(10), default, default, default)));
            }

            // Every write into the counters table fails for one commit, which lands in a fold step.
            Execute(dataDir.Path, "CREATE TRIGGER refuse BEFORE INSERT ON counters BEGIN SELECT RAISE(ABORT, 'disk says no'); END;");
            await Assert.ThrowsAnyAsync<Exception>(() => store.CommitAsync(CounterCommand.Increment("h", 1)));
            Execute(dataDir.Path, "DROP TRIGGER refuse;");

            for (var i = 0; i < 20; i++)
            {
                await store.CommitAsync(CounterCommand.Increment("h", 1));
            }
            await store.DisposeAsync();
            store = StoreTesting.Create("sqlite-fold5", dataDir.Path, clock);
            await store.OpenAsync(CancellationToken.None);

            foreach (var name in names)
            {
                Assert.Equal(10, (await store.GetAsync(name))?.Value);
            }
            Assert.Equal(20, (await store.GetAsync("h"))?.Value);
        }
        finally
        {
            await store.DisposeAsync();
        }
    }

    private static void Execute(string dataDir, string sql)
    {
        using var connection = new SqliteConnection($"Data Source={Path.Combine(dataDir, "tally.db")};Pooling=False");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }
}
