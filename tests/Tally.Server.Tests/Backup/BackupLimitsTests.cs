using System.Net;
using System.Text;
using Tally.Server.Tests.Infrastructure;
using Tally.Server.Tests.Storage;

namespace Tally.Server.Tests.Backup;

/// <summary>
/// <c>GET /admin/backup</c> cannot fill the disk: one copy at a time, owner-only, deleted when sent,
/// when the download is aborted, and at start after a crash.
/// </summary>
public class BackupLimitsTests
{
    [Fact]
    public async Task LeftoverBackupCopiesAreDeletedAtStart()
    {
        await using var app = new TallyApplication();
        var backups = Directory.CreateDirectory(Path.Combine(app.DataDir, "backups")).FullName;
        // What a Tally killed in the middle of a backup leaves behind.
        await File.WriteAllBytesAsync(Path.Combine(backups, "tally-20260101T000000000-0123456789abcdef.db"), new byte[1024 * 1024]);
        await File.WriteAllBytesAsync(Path.Combine(backups, "tally-20260101T000000000-0123456789abcdef.db-journal"), new byte[4096]);
        await File.WriteAllTextAsync(Path.Combine(backups, "keep-me.txt"), "not Tally's");

        await app.CreateClient().IncrementAsync("a");

        Assert.Equal(["keep-me.txt"], Directory.EnumerateFiles(backups).Select(Path.GetFileName));
    }

    [Fact]
    public async Task ASecondBackupWhileOneIsDownloadingGets429BackupInProgress()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        await FillAsync(client);

        using (var first = await client.GetAsync("/admin/backup", HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);

            using var second = await client.GetAsync("/admin/backup");
            var problem = await second.ReadProblemAsync(HttpStatusCode.TooManyRequests, "backup_in_progress");
            Assert.Equal("Backup in progress", (string?)problem["title"]);
            Assert.True(second.Headers.RetryAfter?.Delta > TimeSpan.Zero, $"Retry-After: {second.Headers.RetryAfter}");

            // The copy being sent is the owner's only, in a directory that is the owner's only.
            var copy = Assert.Single(Directory.GetFiles(Path.Combine(app.DataDir, "backups"), "tally-*.db"));
            Assert.Equal(FileModes.OwnerOnlyFile, FileModes.Of(copy));
            Assert.Equal(FileModes.OwnerOnlyDirectory, FileModes.Of(Path.Combine(app.DataDir, "backups")));

            await first.Content.ReadAsByteArrayAsync();
        }

        // Once the first is sent, the next one runs.
        await WaitUntilAsync(async () => (await client.GetAsync("/admin/backup")) is { StatusCode: HttpStatusCode.OK });
    }

    [Fact]
    public async Task AnAbortedDownloadDeletesItsCopyAndLetsTheNextBackupRun()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        await FillAsync(client);
        var backups = Path.Combine(app.DataDir, "backups");

        using (var response = await client.GetAsync("/admin/backup", HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var stream = await response.Content.ReadAsStreamAsync();
            await stream.ReadExactlyAsync(new byte[16]);
            Assert.NotEmpty(Directory.GetFiles(backups));
        }

        await WaitUntilAsync(() => Task.FromResult(Directory.GetFiles(backups).Length == 0));
        using var next = await client.GetAsync("/admin/backup");
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
    }

    /// <summary>About 5,000 counters: a copy of a few hundred kilobytes, more than the response pipe buffers.</summary>
    private static async Task FillAsync(HttpClient client)
    {
        var lines = string.Join("\n", Enumerable.Range(0, 5000).Select(i =>
            $$"""{"name": "fill:{{i:D5}}", "value": {{i}}, "initial": 0, "min": null, "max": null, "version": 1, "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z"}"""));
        using var response = await client.PostAsync("/admin/import", new StringContent(lines, Encoding.UTF8, "application/x-ndjson"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "The condition did not hold within 10 s.");
            await Task.Delay(20);
        }
    }
}
