using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Tally.Server.Tests.Infrastructure;
using Tally.Server.Tests.Process;

namespace Tally.Server.Tests.Robustness;

/// <summary>
/// A client's fault (a malformed, cut-short, too slow or abandoned body) is a 4xx problem or a closed
/// connection, and at most a quiet log line: never a 500, never an error with a stack trace.
/// </summary>
[Trait("Layer", "Process")]
public sealed class ClientFaultTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private const string Auth = "Authorization: Bearer " + TallyProcess.AdminKey + "\r\n";

    [Fact]
    public async Task AChunkSizePast64BitsIsA4xxProblemNotA500()
    {
        using var dataDir = new TempDirectory();
        await using var tally = TallyProcess.Start(dataDir.Path);
        await tally.WaitUntilReadyAsync();

        foreach (var size in new[] { "FFFFFFFFFFFF", "FFFFFFFFFFFFFFFFFFFFFFFF" })
        {
            var (status, body) = await ExchangeAsync(tally.BaseAddress,
                "POST /counters/a/increment HTTP/1.1\r\nHost: x\r\n" + Auth + "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                + size + "\r\n{\"by\": 1}\r\n0\r\n\r\n");
            Assert.True(status is >= 400 and < 500, $"chunk size {size} answered {status}: {body}");
            if (body.Contains('{', StringComparison.Ordinal))
            {
                var problem = JsonNode.Parse(body[body.IndexOf('{', StringComparison.Ordinal)..body.LastIndexOf('}')].ToString() + "}")!;
                Assert.Equal(status, (int?)problem["status"]);
            }
        }
        using var client = tally.CreateClient();
        await (await client.GetAsync("/counters/a")).ReadProblemAsync(HttpStatusCode.NotFound, "counter_not_found");
    }

    [Fact]
    public async Task ACutShortSlowOrAbandonedBodyLogsNoErrorAndNoStackTrace()
    {
        using var dataDir = new TempDirectory();
        await using var tally = TallyProcess.Start(dataDir.Path, "--Logging:Console:FormatterName", "json");
        await tally.WaitUntilReadyAsync();
        var head = "POST /counters/a/increment HTTP/1.1\r\nHost: x\r\n" + Auth + "Content-Type: application/json\r\n";

        // Cut short: the connection closes after 10 of the 100 bytes announced.
        await SendAndCloseAsync(tally.BaseAddress, head + "Content-Length: 100\r\n\r\n{\"by\": 1, ");
        // Abandoned mid-chunk.
        await SendAndCloseAsync(tally.BaseAddress, head + "Transfer-Encoding: chunked\r\n\r\n40\r\n{\"by\": 1, ");
        // Too slow: 10 of 100 bytes, then nothing, past Kestrel's grace period for the minimum body data rate.
        using (var slow = new TcpClient())
        {
            await slow.ConnectAsync(tally.BaseAddress.Host, tally.BaseAddress.Port);
            var stream = slow.GetStream();
            await stream.WriteAsync(Encoding.ASCII.GetBytes(head + "Content-Length: 100\r\n\r\n{\"by\": 1, "));
            var status = await ReadStatusAsync(stream, TimeSpan.FromSeconds(20));
            Assert.True(status is null or (>= 400 and < 500), $"a too slow body answered {status}");
        }

        using (var client = tally.CreateClient())
        {
            Assert.Equal(HttpStatusCode.OK, (await client.IncrementAsync("after")).StatusCode);
            await (await client.GetAsync("/counters/a")).ReadProblemAsync(HttpStatusCode.NotFound, "counter_not_found");
        }
        tally.Terminate();
        Assert.Equal(0, await tally.WaitForExitAsync());

        foreach (var line in tally.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            using var entry = JsonDocument.Parse(line);
            var level = entry.RootElement.GetProperty("LogLevel").GetString();
            Assert.True(level is not ("Error" or "Critical"), $"A client's fault was logged at {level}: {line}");
            if (level == "Warning")
            {
                output.WriteLine(line); // Kestrel's own, at times: "Connection processing ended abnormally" on an abandoned chunked body
            }
        }
        Assert.DoesNotContain("fail:", tally.StandardError, StringComparison.Ordinal);
    }

    private static async Task SendAndCloseAsync(Uri address, string request)
    {
        using var socket = new TcpClient();
        await socket.ConnectAsync(address.Host, address.Port);
        await socket.GetStream().WriteAsync(Encoding.ASCII.GetBytes(request));
        await Task.Delay(200);
        socket.Client.LingerState = new LingerOption(true, 0); // a reset, as a client that crashed
        socket.Close();
        await Task.Delay(200);
    }

    private static async Task<(int? Status, string Body)> ExchangeAsync(Uri address, string request)
    {
        using var socket = new TcpClient();
        await socket.ConnectAsync(address.Host, address.Port);
        var stream = socket.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(request));
        var text = await ReadAllAsync(stream, TimeSpan.FromSeconds(5));
        return (ParseStatus(text), text);
    }

    private static async Task<int?> ReadStatusAsync(NetworkStream stream, TimeSpan timeout) =>
        ParseStatus(await ReadAllAsync(stream, timeout));

    /// <summary>What the server sends until it closes, goes quiet for a moment after answering, or the timeout.</summary>
    private static async Task<string> ReadAllAsync(NetworkStream stream, TimeSpan timeout)
    {
        var received = new MemoryStream();
        var buffer = new byte[4096];
        using var overall = new CancellationTokenSource(timeout);
        try
        {
            while (true)
            {
                using var quiet = CancellationTokenSource.CreateLinkedTokenSource(overall.Token);
                if (received.Length > 0)
                {
                    quiet.CancelAfter(TimeSpan.FromMilliseconds(500));
                }
                var n = await stream.ReadAsync(buffer, quiet.Token);
                if (n == 0)
                {
                    break;
                }
                received.Write(buffer, 0, n);
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (IOException)
        {
        }
        return Encoding.UTF8.GetString(received.ToArray());
    }

    private static int? ParseStatus(string text) =>
        text.StartsWith("HTTP/1.1 ", StringComparison.Ordinal) && int.TryParse(text.AsSpan(9, 3), out var status) ? status : null;
}
