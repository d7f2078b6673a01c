using Microsoft.Data.Sqlite;
using Tally.Server.Storage.Sqlite;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Storage;

/// <summary>The start-up read of the counters table gives what Microsoft.Data.Sqlite's reader gives, row for row.</summary>
public class CounterRowsTests
{
    [Fact]
    public void ReadsEveryColumnNullsAndNonAsciiNamesIncludedInNameOrder()
    {
        using var dataDir = new TempDirectory();
        using var connection = new SqliteConnection($"Data Source={Path.Combine(dataDir.Path, "tally.db")};Pooling=False");
        connection.Open();
        SqliteSchema.Migrate(connection);
        SqliteSchema.Execute(connection, """
            INSERT INTO counters (name, value, initial, min, max, version, created_at, updated_at, created_by) VALUES
                ('zebra', -5, 3, -9223372036854775808, 9223372036854775807, 7, 1700000000000, 1700000000001, 'key_a'),
                ('äpfel/日本', 42, 0, NULL, 100, 2, 1, 2, NULL),
                ('a', 0, 0, -10, NULL, 1, 5, 6, 'key_a'),
                ('m:1', 9223372036854775807, -1, NULL, NULL, 3, 7, 8, 'key_b');
            """);

        var read = CounterRows.ReadAll(connection);

        var expected = new List<string>();
        using (var command = connection.CreateCommand())
        {
            command.CommandText = "SELECT name, value, initial, min, max, version, created_at, updated_at, created_by FROM counters ORDER BY name";
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                expected.Add(CounterLog.ReadCounter(reader, reader.GetString(0)).ToString());
            }
        }
        Assert.Equal(4, read.Count);
        Assert.Equal(expected, read.Select(counter => counter.ToString()));
        Assert.Equal(["a", "m:1", "zebra", "äpfel/日本"], read.Select(counter => counter.Name));
        // One string per creator, however many counters it made.
        Assert.Same(read[0].CreatedBy, read[2].CreatedBy);
        Assert.Null(read[3].CreatedBy);
    }
}
