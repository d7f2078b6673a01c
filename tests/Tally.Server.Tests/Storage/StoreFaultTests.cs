using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using Microsoft.Data.Sqlite;
using Tally.Server.Tests.Infrastructure;
using Tally.Server.Tests.Process;

namespace Tally.Server.Tests.Storage;

/// <summary>
/// Files that are not Tally's, are damaged or too new stop the start-up and are left untouched;
/// a disk that refuses writes while serving answers 503, acknowledges nothing unwritten, and recovers.
/// </summary>
[Trait("Layer", "Process")]
public class StoreFaultTests
{
    [Fact]
    public async Task AnotherApplicationsSqliteFileIsRefusedAndLeftUntouched()
    {
        using var dataDir = new TempDirectory();
        var file = Path.Combine(dataDir.Path, "tally.db");
        using (var connection = new SqliteConnection($"Data Source={file};Pooling=False"))
        {
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = "CREATE TABLE invoices (id INTEGER PRIMARY KEY, total INTEGER); INSERT INTO invoices VALUES (1, 42);";
            command.ExecuteNonQuery();
        }
        await AssertRefusedAsync(dataDir.Path, "another application");
    }

    [Fact]
    public async Task NewerSchemaIsRefusedAndLeftUntouched()
    {
        using var dataDir = new TempDirectory();
        await CreateTallyFileAsync(dataDir.Path);
        Execute(Path.Combine(dataDir.Path, "tally.db"), "UPDATE tally_schema SET version = 99");
        await AssertRefusedAsync(dataDir.Path, "newer");
    }

    [Fact]
    public async Task CorruptTallyFileIsRefusedAndLeftUntouched()
    {
        using var dataDir = new TempDirectory();
        await CreateTallyFileAsync(dataDir.Path, counters: 3000);
        var file = Path.Combine(dataDir.Path, "tally.db");
        // Keep page 1 (the header, the schema) and scramble the pages that hold the counters.
        var bytes = await File.ReadAllBytesAsync(file);
        Assert.True(bytes.Length > 8 * 4096, $"the test file is too small to damage: {bytes.Length} bytes");
        new Random(3).NextBytes(bytes.AsSpan(4096 * 2, bytes.Length - 4096 * 2));
        await File.WriteAllBytesAsync(file, bytes);

        await AssertRefusedAsync(dataDir.Path, "corrupt");
    }

    /// <summary>A 2 MiB tmpfs holds the data directory; a filler file then takes all its space.</summary>
    [Fact]
    public async Task FullDiskAnswers503WithRetryAfterAndRecoversWhenSpaceReturns()
    {
        using var mount = TmpfsMount.Create(sizeKib: 2048);
        var dataDir = Path.Combine(mount.Path, "data");
        await using var tally = TallyProcess.Start(dataDir);
        await tally.WaitUntilReadyAsync();
        using var client = tally.CreateClient();
        Assert.Equal(HttpStatusCode.OK, (await client.IncrementAsync("disk:a")).StatusCode);

        var filler = Path.Combine(mount.Path, "filler");
        FillDisk(filler);

        // Fresh names with long padding so that every commit needs new pages.
        var acknowledged = 1;
        var refused = 0;
        for (var i = 0; i < 200 && refused < 5; i++)
        {
            using var response = await client.IncrementAsync("disk:a");
            using var grow = await client.IncrementAsync($"disk:{i}-{new string('x', 100)}");
            foreach (var answer in new[] { response, grow })
            {
                if (answer.StatusCode == HttpStatusCode.ServiceUnavailable)
                {
                    refused++;
                    await answer.ReadProblemAsync(HttpStatusCode.ServiceUnavailable, "store_unavailable");
                    Assert.NotNull(answer.Headers.RetryAfter);
                }
                else
                {
                    Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
                }
            }
            if (response.StatusCode == HttpStatusCode.OK)
            {
                acknowledged++;
            }
        }
        Assert.True(refused > 0, "the full disk never refused a write");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await client.GetAsync("/readyz")).StatusCode);
        // Reads still work, and show only what was written.
        Assert.Equal(acknowledged, (await client.GetCounterAsync("disk:a")).Value);

        File.Delete(filler);
        // Ready again by itself, before any client write: a load balancer can put it back in rotation.
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/readyz")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.IncrementAsync("disk:a")).StatusCode);
        acknowledged++;

        tally.Kill();
        await tally.WaitForExitAsync();
        await using var restarted = TallyProcess.Start(dataDir);
        await restarted.WaitUntilReadyAsync();
        using var after = restarted.CreateClient();
        Assert.Equal(acknowledged, (await after.GetCounterAsync("disk:a")).Value);
    }

    private static void FillDisk(string path)
    {
        using var file = new FileStream(path, FileMode.Create);
        var block = new byte[64 * 1024];
        try
        {
            while (true)
            {
                file.Write(block);
                file.Flush();
            }
        }
        catch (IOException)
        {
            // Full.
        }
    }

    private static async Task CreateTallyFileAsync(string dataDir, int counters = 1)
    {
        await using (var app = new TallyApplication(settings: new Dictionary<string, string?> { ["DataDir"] = dataDir }))
        {
            var client = app.CreateClient();
            for (var start = 0; start < counters; start += 1000)
            {
                var ops = string.Join(",", Enumerable.Range(start, Math.Min(1000, counters - start))
                    .Select(i => $$"""{"op":"increment","name":"c:{{i}}-{{new string('p', 40)}}"}"""));
                var response = await client.PostAsync("/batch", Api.JsonBody($$"""{"ops":[{{ops}}]}"""));
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            }
        }
        // The store closed cleanly: everything is in the main file.
        Assert.False(File.Exists(Path.Combine(dataDir, "tally.db-wal")) && new FileInfo(Path.Combine(dataDir, "tally.db-wal")).Length > 0,
            "the write-ahead log was not checkpointed on close");
    }

    private static async Task AssertRefusedAsync(string dataDir, string because)
    {
        var file = Path.Combine(dataDir, "tally.db");
        var before = Hash(file);
        await using var tally = TallyProcess.Start(dataDir);
        Assert.NotEqual(0, await tally.WaitForExitAsync());
        Assert.Contains(because, tally.StandardError, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("Unhandled exception", tally.StandardError, StringComparison.Ordinal);
        Assert.Equal(before, Hash(file));
    }

    private static string Hash(string file) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(file)));

    private static void Execute(string file, string sql)
    {
        using var connection = new SqliteConnection($"Data Source={file};Pooling=False");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    /// <summary>A small tmpfs, mounted for one test (needs root, as the test script runs).</summary>
    private sealed class TmpfsMount : IDisposable
    {
        private TmpfsMount(string path) => Path = path;

        public string Path { get; }

        public static TmpfsMount Create(int sizeKib)
        {
            var path = Directory.CreateTempSubdirectory("tally-tmpfs-").FullName;
            Run("mount", "-t", "tmpfs", "-o", $"size={sizeKib}k", "tmpfs", path);
            return new TmpfsMount(path);
        }

        public void Dispose()
        {
            Run("umount", "-l", Path);
            Directory.Delete(Path);
        }

        private static void Run(string command, params string[] arguments)
        {
            using var process = System.Diagnostics.Process.Start(new ProcessStartInfo(command, arguments) { RedirectStandardError = true })!;
            var error = process.StandardError.ReadToEnd();
            process.WaitForExit();
            if (process.ExitCode != 0)
            {
                throw new InvalidOperationException($"{command} {string.Join(' ', arguments)} failed ({process.ExitCode}): {error}. " +
                    "This test mounts a small tmpfs to fill a disk and must run as root, as ./test.sh does in CI.");
            }
        }
    }
}
