using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Tally.Server.Tests.Infrastructure;
using Tally.Server.Tests.Process;

namespace Tally.Server.Tests.Robustness;

/// <summary>
/// Thousands of random, malformed and hostile requests: every answer is a 4xx problem (or a
/// legitimate success), never a 5xx, and the counters set up beforehand are exactly as they were.
/// </summary>
public sealed class HostileInputTests
{
    private const int MaxBodyBytes = 4096;

    [Fact]
    public async Task RandomRequestsNeverGetA5xxAndLoseNothing()
    {
        await using var app = new TallyApplication(settings: new Dictionary<string, string?> { ["MaxBodyBytes"] = MaxBodyBytes.ToString() });
        var client = app.CreateClient();
        var kept = await SetUpKeptCountersAsync(client);

        var fuzz = new RequestFuzzer(seed: 20261121);
        for (var i = 0; i < 3000; i++)
        {
            using var request = fuzz.Next();
            var description = $"#{i} {request.Method} {request.RequestUri}";
            using var response = await client.SendAsync(request);
            var status = (int)response.StatusCode;
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(status < 500, $"{description} answered {status}: {text}");
            if (status >= 400 && request.Method != HttpMethod.Head)
            {
                Assert.True(response.Content.Headers.ContentType?.MediaType == "application/problem+json",
                    $"{description} answered {status} {response.Content.Headers.ContentType}: {text}");
                var problem = JsonNode.Parse(text)!.AsObject();
                Assert.False(string.IsNullOrEmpty((string?)problem["code"]), $"{description}: no code in {text}");
                Assert.Equal(status, (int?)problem["status"]);
            }
        }

        await AssertKeptCountersAsync(client, kept);
        Assert.Equal(HttpStatusCode.OK, (await client.IncrementAsync("fuzz:after")).StatusCode);
    }

    [Fact]
    public async Task OversizedBodiesGet413AndChangeNothing()
    {
        await using var app = new TallyApplication(settings: new Dictionary<string, string?> { ["MaxBodyBytes"] = MaxBodyBytes.ToString() });
        var client = app.CreateClient();
        var kept = await SetUpKeptCountersAsync(client);
        var huge = "{\"by\": 1, \"padding\": \"" + new string('x', MaxBodyBytes * 2) + "\"}";

        foreach (var path in new[] { "/counters/keep:a/increment", "/counters/keep:b", "/batch" })
        {
            var method = path.EndsWith("keep:b", StringComparison.Ordinal) ? HttpMethod.Put : HttpMethod.Post;
            using var response = await client.SendAsync(new HttpRequestMessage(method, path) { Content = Api.JsonBody(huge) });
            await response.ReadProblemAsync(HttpStatusCode.RequestEntityTooLarge, "payload_too_large");
        }
        await AssertKeptCountersAsync(client, kept);
    }

    /// <summary>Raw bytes straight at the real server's socket: malformed HTTP gets a 4xx, never a 5xx or a crash.</summary>
    [Fact]
    [Trait("Layer", "Process")]
    public async Task MalformedHttpOnTheWireGetsA4xxAndTheServerKeepsServing()
    {
        using var dir = new TempDirectory(); // disposed after the server (declared first): deleted once Tally has exited
        await using var tally = TallyProcess.Start(dir.Path, "--AdminKey", TallyProcess.AdminKey);
        await tally.WaitUntilReadyAsync();
        var random = new Random(7);
        string[] templates =
        [
            "GET /counters/a HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
            "POST /counters/a/increment HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nzzzzz",
            "POST /counters/a/increment HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nnot-hex\r\n0\r\n\r\n",
            "GET /" + new string('a', 20000) + " HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /counters/a HTTP/1.1\r\nHost: x\r\n" + string.Concat(Enumerable.Repeat("X-Junk: " + new string('j', 8000) + "\r\n", 8)) + "\r\n",
            "G\u00e9T /counters/a HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /counters/%ZZ HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /counters/a%00b/increment HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /counters/a HTTP/9.9\r\nHost: x\r\n\r\n",
        ];
        for (var i = 0; i < 60; i++)
        {
            var bytes = i < templates.Length
                ? Encoding.Latin1.GetBytes(templates[i])
                : RandomRequestLine(random);
            var status = await SendRawAsync(tally.BaseAddress, bytes);
            // Kestrel itself answers a request line with an unknown protocol version 505 (HTTP Version
            // Not Supported) before Tally sees it: the one 5xx that is the right answer to garbage.
            Assert.True(status is null or (>= 400 and < 500) or 505, $"raw request #{i} answered {status}: {Encoding.Latin1.GetString(bytes[..Math.Min(bytes.Length, 80)])}");
        }

        using var client = tally.CreateClient();
        Assert.Equal(HttpStatusCode.OK, (await client.IncrementAsync("still:alive")).StatusCode);
    }

    private static byte[] RandomRequestLine(Random random)
    {
        var junk = new byte[random.Next(1, 300)];
        random.NextBytes(junk);
        var prefix = Encoding.ASCII.GetBytes(random.Next(2) == 0 ? "POST /counters/" : "GET /");
        return [.. prefix, .. junk, .. "\r\n\r\n"u8];
    }

    /// <summary>The status of the server's first response line, or null if it closed without answering.</summary>
    private static async Task<int?> SendRawAsync(Uri address, byte[] bytes)
    {
        using var socket = new TcpClient();
        await socket.ConnectAsync(address.Host, address.Port);
        var stream = socket.GetStream();
        stream.ReadTimeout = 5000;
        try
        {
            await stream.WriteAsync(bytes);
            socket.Client.Shutdown(SocketShutdown.Send);
        }
        catch (IOException)
        {
            return null; // the server closed first: a refusal, not a failure
        }
        var buffer = new byte[64];
        var read = 0;
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            while (read < 12)
            {
                var n = await stream.ReadAsync(buffer.AsMemory(read), timeout.Token);
                if (n == 0)
                {
                    break;
                }
                read += n;
            }
        }
        catch (IOException)
        {
            return null;
        }
        var line = Encoding.ASCII.GetString(buffer, 0, read);
        return line.StartsWith("HTTP/1.1 ", StringComparison.Ordinal) && int.TryParse(line.AsSpan(9, 3), out var status) ? status : null;
    }

    private static async Task<CounterJson[]> SetUpKeptCountersAsync(HttpClient client) =>
    [
        await client.SetUpCounterAsync("keep:a", """{"value": 5}"""),
        await client.SetUpCounterAsync("keep:b", """{"value": 10, "min": 0, "max": 10, "initial": 3}"""),
        await client.SetUpCounterAsync("keep:c", $$"""{"value": {{long.MaxValue}}}"""),
    ];

    private static async Task AssertKeptCountersAsync(HttpClient client, CounterJson[] kept)
    {
        foreach (var before in kept)
        {
            Assert.Equal(before, await client.GetCounterAsync(before.Name));
        }
    }

    /// <summary>Random requests built from hostile parts. Never targets the kept counters with a valid change.</summary>
    private sealed class RequestFuzzer(int seed)
    {
        private static readonly HttpMethod[] Methods =
            [HttpMethod.Get, HttpMethod.Post, HttpMethod.Put, HttpMethod.Delete, HttpMethod.Patch, HttpMethod.Head, HttpMethod.Options, new("FROB")];

        private static readonly string[] ContentTypes =
            ["application/json", "application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/problem+json", "", "application/json; charset=latin1", "*/*"];

        private readonly Random _random = new(seed);

        public HttpRequestMessage Next()
        {
            var method = Pick(Methods);
            var request = new HttpRequestMessage(method, Path());
            if (method != HttpMethod.Get && method != HttpMethod.Head && _random.Next(4) > 0)
            {
                var content = new ByteArrayContent(Body());
                var type = Pick(ContentTypes);
                if (type.Length > 0)
                {
                    content.Headers.TryAddWithoutValidation("Content-Type", type);
                }
                request.Content = content;
            }
            AddHeaders(request);
            return request;
        }

        private string Path() => _random.Next(12) switch
        {
            0 => "/counters/" + Name() + "/increment?by=" + Amount(),
            1 => "/counters/" + Name() + "/decrement?by=" + Amount(),
            2 => "/counters/" + Name(),
            3 => "/counters/" + Name() + "/reset",
            4 => "/counters?prefix=" + Uri.EscapeDataString(Name()) + "&limit=" + Amount() + "&after=" + Uri.EscapeDataString(Name()),
            5 => "/batch",
            6 => "/" + Uri.EscapeDataString(RandomText(30)),
            7 => "/counters/" + Uri.EscapeDataString(RandomText(200)) + "/" + Uri.EscapeDataString(RandomText(10)),
            8 => "/counters/fuzz:x/%ff%fe/increment",
            9 => "/counters/" + Name() + "/increment?by=1&by=2",
            10 => "/admin/" + Pick(new[] { "export", "import", "backup", "nothing" }),
            _ => "/counters/../counters/" + Name() + "/./increment",
        };

        /// <summary>A name for a fuzz counter, or an invalid one; never a kept counter's.</summary>
        private string Name() => _random.Next(6) switch
        {
            0 => "fuzz:" + _random.Next(20),
            1 => new string('n', _random.Next(120, 140)),
            2 => "-leading-dash",
            3 => "fuzz:" + RandomText(5).Replace("keep", "k", StringComparison.Ordinal),
            4 => "fuzz:sp ace",
            _ => "fuzz:ünïcode",
        };

        private string Amount() => Pick(new[] { "0", "-1", "1.5", "abc", "9223372036854775807", "9223372036854775808", "1e3", "", " 1", "+1", "0x10", "1", "3" });

        private byte[] Body() => _random.Next(14) switch
        {
            0 => "{\"by\": "u8.ToArray(),
            1 => Encoding.UTF8.GetBytes("{\"by\": " + Pick(new[] { "1e400", "99999999999999999999999", "-0", "null", "true", "\"5\"", "[1]", "{}", "1.0" }) + "}"),
            2 => Encoding.UTF8.GetBytes(new string('[', 5000) + new string(']', 5000)),
            3 => Encoding.UTF8.GetBytes(new string('{', 100)),
            4 => [0x7B, 0x22, 0x62, 0x79, 0x22, 0x3A, 0x22, 0xC3, 0x28, 0x22, 0x7D], // {"by":"\xC3("}  invalid UTF-8
            5 => Encoding.UTF8.GetBytes("{\"value\": " + Pick(new[] { "1", "null", "\"x\"", "1.5", "9223372036854775808" }) + ", \"min\": " + Pick(new[] { "5", "null", "[]", "-9223372036854775809" }) + "}"),
            6 => Encoding.UTF8.GetBytes("{\"ops\": [" + string.Join(",", Enumerable.Range(0, _random.Next(0, 1200)).Select(_ => BatchOp())) + "], \"atomic\": " + Pick(new[] { "true", "false", "1", "\"yes\"" }) + "}"),
            7 => Encoding.UTF8.GetBytes("{\"ops\": " + Pick(new[] { "null", "{}", "\"x\"", "[null]", "[[]]", "[{}]" }) + "}"),
            8 => RandomBytes(),
            9 => new byte[MaxBodyBytes * 2],
            10 => Encoding.UTF8.GetBytes("{\"by\": 1} trailing"),
            11 => Encoding.UTF8.GetBytes("{\"" + RandomText(10) + "\": 1}"),
            12 => [],
            _ => Encoding.UTF8.GetBytes("{\"by\": " + Amount() + "}"),
        };

        private string BatchOp() =>
            "{\"op\": \"" + Pick(new[] { "increment", "decrement", "set", "get", "reset", "delete", "explode", "" }) + "\", \"name\": \"" + Name().Replace("\"", "", StringComparison.Ordinal) + "\", \"by\": " + Pick(new[] { "1", "0", "-5", "\"2\"", "9223372036854775807" }) + "}";

        private void AddHeaders(HttpRequestMessage request)
        {
            if (_random.Next(3) == 0)
            {
                request.Headers.TryAddWithoutValidation("If-Match", Pick(new[] { "\"1\"", "*", "garbage", "\"abc\"", "W/\"2\"", "\"1\", \"2\"", "\"99999999999999999999\"", "" }));
            }
            if (_random.Next(4) == 0)
            {
                request.Headers.TryAddWithoutValidation("If-None-Match", Pick(new[] { "*", "\"1\"", "junk" }));
            }
            if (_random.Next(3) == 0)
            {
                request.Headers.TryAddWithoutValidation("Idempotency-Key", Pick(new[] { "k" + _random.Next(5), new string('k', 300), "ключ", "", "a b" }));
            }
            if (_random.Next(5) == 0)
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Pick(new[] { "wrong", TallyApplication.AdminKey }));
            }
            if (_random.Next(6) == 0)
            {
                request.Headers.TryAddWithoutValidation("Accept", Pick(new[] { "text/html", "application/xml", "*/*", "garbage/" }));
            }
        }

        private string RandomText(int length)
        {
            var chars = new char[_random.Next(1, length + 1)];
            for (var i = 0; i < chars.Length; i++)
            {
                chars[i] = (char)_random.Next(0x20, 0x2FF);
            }
            return new string(chars);
        }

        private byte[] RandomBytes()
        {
            var bytes = new byte[_random.Next(1, 600)];
            _random.NextBytes(bytes);
            return bytes;
        }

        private T Pick<T>(T[] items) => items[_random.Next(items.Length)];
    }
}
