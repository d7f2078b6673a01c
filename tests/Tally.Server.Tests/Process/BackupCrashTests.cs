using System.Net;
using System.Text;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Process;

/// <summary>A Tally killed while it sends a backup cannot delete the copy; the next start does.</summary>
[Trait("Layer", "Process")]
public class BackupCrashTests
{
    // A copy of some megabytes: more than the server's socket send buffer holds, so the server is still sending it.
    private const int Counters = 100_000;

    [Fact]
    public async Task KillDuringABackupDownloadLeavesNoCopyAfterTheRestart()
    {
        using var dataDir = new TempDirectory();
        var backups = Path.Combine(dataDir.Path, "backups");
        await using (var tally = TallyProcess.Start(dataDir.Path))
        {
            await tally.WaitUntilReadyAsync();
            using var client = tally.CreateClient();
            var lines = string.Join("\n", Enumerable.Range(0, Counters).Select(i =>
                $$"""{"name": "fill:{{i:D5}}", "value": {{i}}, "initial": 0, "min": null, "max": null, "version": 1, "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z"}"""));
            using (var import = await client.PostAsync("/admin/import", new StringContent(lines, Encoding.UTF8, "application/x-ndjson")))
            {
                Assert.Equal(HttpStatusCode.OK, import.StatusCode);
            }

            // The download has begun and is not read on (a small receive window): the copy sits in the backup directory.
            using var slow = new HttpClient(new SocketsHttpHandler
            {
                ConnectCallback = async (context, cancellationToken) =>
                {
                    var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp) { ReceiveBufferSize = 4096 };
                    await socket.ConnectAsync(context.DnsEndPoint, cancellationToken);
                    return new System.Net.Sockets.NetworkStream(socket, ownsSocket: true);
                },
            })
            { BaseAddress = tally.BaseAddress };
            slow.DefaultRequestHeaders.Authorization = new("Bearer", TallyProcess.AdminKey);
            using var download = await slow.GetAsync("/admin/backup", HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.OK, download.StatusCode);
            await Task.Delay(200);
            Assert.True(Directory.GetFiles(backups).Length > 0, $"The copy was already sent; the database is {new FileInfo(Path.Combine(dataDir.Path, "tally.db")).Length} bytes.");
            tally.Kill();
            await tally.WaitForExitAsync();
        }
        Assert.NotEmpty(Directory.GetFiles(backups));

        await using var restarted = TallyProcess.Start(dataDir.Path);
        await restarted.WaitUntilReadyAsync();
        Assert.Empty(Directory.GetFiles(backups));
        using var again = restarted.CreateClient();
        Assert.Equal(Counters, (await again.GetByteArrayAsync("/admin/export")).Count(b => b == (byte)'\n'));
    }
}
