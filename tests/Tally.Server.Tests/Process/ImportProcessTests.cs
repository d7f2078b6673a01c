using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Tally.Server.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Tally.Server.Tests.Process;

/// <summary>
/// <c>POST /admin/import</c> against the real server: all or nothing across SIGKILL, and a line too long
/// is refused as soon as it passes the limit. (In-process, the test server reads the whole request body
/// before it hands over the answer, so only a real socket shows when the answer comes.)
/// </summary>
[Trait("Layer", "Process")]
public class ImportProcessTests(ITestOutputHelper output)
{
    private const int Existing = 1000;
    private const int Imported = 200_000;

    [Fact]
    public async Task KillDuringALargeImportLeavesAllOfItOrNone()
    {
        using var dataDir = new TempDirectory();
        var body = new MemoryStream(Lines(Imported, i => i + 1, version: 2));
        string outcome;
        await using (var tally = TallyProcess.Start(dataDir.Path))
        {
            await tally.WaitUntilReadyAsync();
            using var client = tally.CreateClient();
            using (var setUp = await client.PostAsync("/admin/import", new ByteArrayContent(Lines(Existing, _ => 0, version: 1)) { Headers = { ContentType = new("application/x-ndjson") } }))
            {
                Assert.Equal(HttpStatusCode.OK, setUp.StatusCode);
            }

            using var importer = new HttpClient { BaseAddress = tally.BaseAddress, Timeout = TimeSpan.FromMinutes(2) };
            importer.DefaultRequestHeaders.Authorization = new("Bearer", TallyProcess.AdminKey);
            var import = importer.PostAsync("/admin/import", new StreamContent(body, 64 * 1024) { Headers = { ContentType = new("application/x-ndjson") } });

            // Kill while the server commits: once any new value shows (a partial commit), or once the WAL has
            // grown by megabytes (one large transaction under way, invisible until it commits).
            var wal = Path.Combine(dataDir.Path, "tally.db-wal");
            var walBefore = new FileInfo(wal).Length;
            var clock = Stopwatch.StartNew();
            outcome = "gave up waiting";
            while (clock.Elapsed < TimeSpan.FromSeconds(60))
            {
                if (import.IsCompleted)
                {
                    outcome = "the import had completed";
                    break;
                }
                if (await ValueAsync(client, "imp:000000") > 0)
                {
                    outcome = "killed once a first new value showed";
                    break;
                }
                var walNow = new FileInfo(wal).Length;
                if (walNow > walBefore + 2 * 1024 * 1024)
                {
                    outcome = $"killed with the WAL at {walNow / 1024} KiB (it was {walBefore / 1024} KiB)";
                    break;
                }
                await Task.Delay(5);
            }
            Assert.True(body.Position > 0, $"The import never started.\n{tally.Describe()}");
            tally.Kill();
            await tally.WaitForExitAsync();
            try
            {
                using var response = await import;
                outcome += $" (answered {(int)response.StatusCode})";
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
                outcome += " (no answer)";
            }
        }
        output.WriteLine(outcome);

        await using var restarted = TallyProcess.Start(dataDir.Path);
        await restarted.WaitUntilReadyAsync();
        using var reader = restarted.CreateClient();
        var counters = (await reader.GetStringAsync("/admin/export")).Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => JsonNode.Parse(line)!)
            .ToDictionary(node => (string)node["name"]!, node => (long)node["value"]!);

        var newValues = counters.Count(counter => counter.Value == int.Parse(counter.Key[4..], System.Globalization.CultureInfo.InvariantCulture) + 1);
        var oldValues = counters.Count(counter => counter.Value == 0);
        output.WriteLine($"After the restart: {counters.Count} counters, {newValues} with the imported value, {oldValues} with the earlier one.");
        Assert.True((newValues == Imported && counters.Count == Imported) || (oldValues == Existing && counters.Count == Existing),
            $"{outcome}: {counters.Count} counters, {newValues} of {Imported} imported values, {oldValues} of {Existing} earlier ones: a partial import.");
    }

    [Fact]
    public async Task AnOversizedLineIsRefusedWithItsNumberBeforeTheRestIsSent()
    {
        using var dataDir = new TempDirectory();
        await using var tally = TallyProcess.Start(dataDir.Path);
        await tally.WaitUntilReadyAsync();
        using var client = tally.CreateClient();
        // Two good lines, then one announced as 10 MB of which only 1 MB is sent: a server that reads (or
        // buffers) the whole line before answering never answers. A raw socket, because HttpClient does not
        // hand over an answer that comes before it has sent the whole body.
        var head = Lines(2, i => i, version: 1);
        using var socket = new System.Net.Sockets.TcpClient();
        await socket.ConnectAsync(tally.BaseAddress.Host, tally.BaseAddress.Port);
        var stream = socket.GetStream();
        var length = head.Length + 10L * 1024 * 1024 + 1;
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            $"POST /admin/import HTTP/1.1\r\nHost: {tally.BaseAddress.Authority}\r\nAuthorization: Bearer {TallyProcess.AdminKey}\r\n" +
            $"Content-Type: application/x-ndjson\r\nContent-Length: {length}\r\n\r\n"));
        await stream.WriteAsync(head);
        var filler = new byte[64 * 1024];
        Array.Fill(filler, (byte)' ');
        for (var sent = 0; sent < 1024 * 1024; sent += filler.Length)
        {
            await stream.WriteAsync(filler);
        }

        var answer = new StringBuilder();
        var buffer = new byte[16 * 1024];
        using (var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10)))
        {
            try
            {
                while (!answer.ToString().Contains("\"code\":", StringComparison.Ordinal))
                {
                    var n = await stream.ReadAsync(buffer, timeout.Token);
                    if (n == 0)
                    {
                        break;
                    }
                    answer.Append(Encoding.UTF8.GetString(buffer, 0, n));
                }
            }
            catch (OperationCanceledException)
            {
                Assert.Fail($"No answer within 10 s after 1 MB of a 10 MB line (got: {answer}).");
            }
        }

        var text = answer.ToString();
        Assert.StartsWith("HTTP/1.1 400", text, StringComparison.Ordinal);
        Assert.Contains("\"code\":\"invalid_body\"", text, StringComparison.Ordinal);
        Assert.Contains("Line 3 ", text, StringComparison.Ordinal);
        Assert.Contains("65536", text, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/counters/imp:000000")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/readyz")).StatusCode);
    }

    /// <summary>Export lines for imp:000000… with the given values.</summary>
    private static byte[] Lines(int count, Func<int, long> value, int version)
    {
        var text = new StringBuilder(count * 170);
        for (var i = 0; i < count; i++)
        {
            text.Append(System.Globalization.CultureInfo.InvariantCulture,
                $$"""{"name": "imp:{{i:D6}}", "value": {{value(i)}}, "initial": 0, "min": null, "max": null, "version": {{version}}, "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z"}""").Append('\n');
        }
        return Encoding.UTF8.GetBytes(text.ToString());
    }

    private static async Task<long> ValueAsync(HttpClient client, string name)
    {
        using var response = await client.GetAsync($"/counters/{name}");
        return response.StatusCode == HttpStatusCode.OK ? (await response.ReadCounterAsync()).Value : -1;
    }
}
