using System.Net;
using Microsoft.Data.Sqlite;
using Tally.Server.Tests.Auth;
using Tally.Server.Tests.Batch;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Backup;

/// <summary><c>GET /admin/backup</c>: a consistent copy of the SQLite file, taken while Tally serves.</summary>
public class BackupTests
{
    private static readonly byte[] SqliteHeader = "SQLite format 3\0"u8.ToArray();

    [Fact]
    public async Task ABackupIsASqliteFileHoldingEveryCounter()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        await client.SetUpCounterAsync("a", """{"value": 5, "initial": 2, "min": 0, "max": 10}""");
        await client.SetUpCounterAsync("b:2", """{"value": -9223372036854775808}""");
        await client.IncrementAsync("c");
        await client.IncrementAsync("c");
        await client.SetUpCounterAsync("deleted", "{}");
        await client.DeleteAsync("/counters/deleted");

        using var response = await client.GetAsync("/admin/backup");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/vnd.sqlite3", response.Content.Headers.ContentType?.MediaType);
        Assert.EndsWith(".db", response.Content.Headers.ContentDisposition?.FileNameStar ?? response.Content.Headers.ContentDisposition?.FileName?.Trim('"'), StringComparison.Ordinal);
        var bytes = await response.Content.ReadAsByteArrayAsync();
        Assert.Equal(SqliteHeader, bytes.Take(SqliteHeader.Length));

        using var copy = new TempDirectory();
        var path = Path.Combine(copy.Path, "backup.db");
        await File.WriteAllBytesAsync(path, bytes);
        Assert.Equal("ok", IntegrityCheck(path));
        var counters = ReadCounters(path);
        Assert.Equal(["a", "b:2", "c"], counters.Select(counter => counter.Name));
        foreach (var counter in counters)
        {
            Assert.Equal(await client.GetCounterAsync(counter.Name), counter);
        }
    }

    [Fact]
    public async Task ABackupLeavesNoCopyBehindInTheDataDirectory()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        await client.IncrementAsync("a");

        for (var i = 0; i < 3; i++)
        {
            using var response = await client.GetAsync("/admin/backup");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            await response.Content.ReadAsByteArrayAsync();
        }

        // The copy is deleted once sent (the server closes it as the response ends).
        var backups = Path.Combine(app.DataDir, "backups");
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (Directory.Exists(backups) && Directory.EnumerateFiles(backups).Any() && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }
        Assert.False(Directory.Exists(backups) && Directory.EnumerateFiles(backups).Any(),
            $"Left behind: {string.Join(", ", Directory.Exists(backups) ? Directory.EnumerateFiles(backups) : [])}");
    }

    [Fact]
    public async Task ABackupRestoresAsTheDataFileOfANewTally()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        await client.SetUpCounterAsync("a", """{"value": 5, "max": 10}""");
        await client.IncrementAsync("b", """{"by": 3}""");
        var backup = await client.GetByteArrayAsync("/admin/backup");

        await using var restored = new TallyApplication();
        await File.WriteAllBytesAsync(Path.Combine(restored.DataDir, "tally.db"), backup);
        var restoredClient = restored.CreateClient();

        Assert.Equal(await client.GetCounterAsync("a"), await restoredClient.GetCounterAsync("a"));
        Assert.Equal(await client.GetCounterAsync("b"), await restoredClient.GetCounterAsync("b"));
        var incremented = await (await restoredClient.IncrementAsync("b")).ReadCounterAsync();
        Assert.Equal((4L, 2L), (incremented.Value, incremented.Version));
    }

    /// <summary>
    /// Atomic batches move one unit from "right" to "left" (so left + right = 0 and both share a version),
    /// while "solo" is incremented by 1 at a time (so its value is its version). Every backup taken meanwhile
    /// must show those invariants: it is one committed state, not a mix of two.
    /// </summary>
    [Theory]
    [InlineData("sync")]
    [InlineData("async")]
    public async Task ABackupTakenWhileChangesRunIsConsistent(string durability)
    {
        await using var app = new TallyApplication("sqlite", durability);
        var client = app.CreateClient();
        await (await client.PostBatchAsync(atomic: true,
            """{"op": "set", "name": "left", "value": 0}""", """{"op": "set", "name": "right", "value": 0}""", """{"op": "set", "name": "solo", "value": 0}""")).ReadResultsAsync(3);

        using var stop = new CancellationTokenSource();
        var writers = Enumerable.Range(0, 3).Select(writer => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                using var response = writer == 0
                    ? await client.IncrementAsync("solo")
                    : await client.PostBatchAsync(atomic: true, """{"op": "increment", "name": "left"}""", """{"op": "decrement", "name": "right"}""");
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            }
        })).ToArray();

        using var copies = new TempDirectory();
        var seen = new List<(long Left, long Solo)>();
        try
        {
            while ((await client.GetCounterAsync("left")).Value < 20)
            {
                await Task.Delay(10);
            }
            for (var i = 0; i < 4; i++)
            {
                var path = Path.Combine(copies.Path, $"backup-{i}.db");
                await File.WriteAllBytesAsync(path, await client.GetByteArrayAsync("/admin/backup"));

                Assert.Equal("ok", IntegrityCheck(path));
                var counters = ReadCounters(path).ToDictionary(counter => counter.Name);
                var (left, right, solo) = (counters["left"], counters["right"], counters["solo"]);
                Assert.Equal(0, left.Value + right.Value);
                Assert.Equal(left.Version, right.Version);
                Assert.Equal(solo.Version - 1, solo.Value);
                seen.Add((left.Value, solo.Value));
            }
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(writers);
        }

        // Each backup is at least as new as the one before, and none is newer than what Tally now holds.
        for (var i = 1; i < seen.Count; i++)
        {
            Assert.True(seen[i].Left >= seen[i - 1].Left && seen[i].Solo >= seen[i - 1].Solo, $"Backup {i} is older than backup {i - 1}: {string.Join(", ", seen)}");
        }
        Assert.True(seen[^1].Left <= (await client.GetCounterAsync("left")).Value);
        Assert.True(seen[^1].Solo <= (await client.GetCounterAsync("solo")).Value);
    }

    [Fact]
    public async Task TheMemoryStoreHasNoBackup()
    {
        await using var app = new TallyApplication("memory");
        var response = await app.CreateClient().GetAsync("/admin/backup");
        var problem = await response.ReadProblemAsync(HttpStatusCode.BadRequest, "backup_not_supported");
        Assert.Contains("export", (string?)problem["detail"], StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("read")]
    [InlineData("increment")]
    [InlineData("write")]
    public async Task BackupExportAndImportNeedAnAdminKey(string scope)
    {
        await using var app = new TallyApplication();
        var admin = app.CreateClient();
        await admin.SetUpCounterAsync("a", """{"value": 5}""");
        var key = app.CreateClientWithKey((await admin.CreateKeyAsync("not admin", [scope])).Key);
        const string line = """{"name": "a", "value": 99, "initial": 0, "min": null, "max": null, "version": 9, "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z"}""";

        await (await key.GetAsync("/admin/backup")).ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");
        await (await key.GetAsync("/admin/export")).ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");
        await (await key.PostAsync("/admin/import", new StringContent(line))).ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");
        await (await app.CreateClientWithKey(null).GetAsync("/admin/backup")).ReadProblemAsync(HttpStatusCode.Unauthorized, "unauthorized");

        var a = await admin.GetCounterAsync("a");
        Assert.Equal((5L, 1L), (a.Value, a.Version));
    }

    private static string IntegrityCheck(string path)
    {
        using var connection = Open(path);
        using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA integrity_check";
        return (string)command.ExecuteScalar()!;
    }

    private static List<CounterJson> ReadCounters(string path)
    {
        using var connection = Open(path);
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT name, value, initial, min, max, version, created_at, updated_at FROM counters ORDER BY name";
        using var reader = command.ExecuteReader();
        var counters = new List<CounterJson>();
        while (reader.Read())
        {
            counters.Add(new CounterJson(reader.GetString(0), reader.GetInt64(1), reader.GetInt64(2),
                reader.IsDBNull(3) ? null : reader.GetInt64(3), reader.IsDBNull(4) ? null : reader.GetInt64(4), reader.GetInt64(5),
                DateTime.UnixEpoch.AddMilliseconds(reader.GetInt64(6)), DateTime.UnixEpoch.AddMilliseconds(reader.GetInt64(7))));
        }
        return counters;
    }

    private static SqliteConnection Open(string path)
    {
        // No pooling: the file must not stay open once the test is done with it.
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
        connection.Open();
        return connection;
    }
}
