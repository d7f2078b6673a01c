using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Deploy;

/// <summary>
/// deploy/nginx/tally-cluster.conf with Debian's nginx (package nginx, installed by test.sh). The file names the
/// instances tally-1..3, which resolve only on compose's network, and nginx resolves upstream names when it loads
/// a configuration; so each test runs a copy in a temporary prefix (DeployFiles.WriteNginxPrefix) whose upstream
/// lines point at 127.0.0.1 ports instead, included from a minimal nginx.conf that keeps pid, logs and temporary
/// files inside the prefix. Nothing else of the file is changed.
/// </summary>
[Trait("Layer", "Deploy")]
public class NginxConfigTests
{
    private const string ClusterConfig = "deploy/nginx/tally-cluster.conf";

    [Fact]
    public async Task NginxAcceptsTheClusterConfiguration()
    {
        using var prefix = new TempDirectory();
        DeployFiles.WriteNginxPrefix(prefix.Path, ClusterConfig, new Dictionary<string, string>
        {
            ["tally-1:8080"] = "127.0.0.1:18081",
            ["tally-2:8080"] = "127.0.0.1:18082",
            ["tally-3:8080"] = "127.0.0.1:18083",
        });
        var result = await DeployFiles.RunNginxAsync(prefix.Path, "-t");
        Assert.True(result.ExitCode == 0, result.Describe($"nginx -t ({ClusterConfig}, upstreams on 127.0.0.1)"));
    }

    /// <summary>
    /// The retry policy the file's comments promise, run for real: one upstream refuses connections, two echo what
    /// they receive. Reads and POSTs still succeed (a refused connection sent nothing, so nginx tries the next
    /// instance), every request reaches an instance exactly once, PUT and DELETE are never tried twice, and
    /// Idempotency-Key and If-Match arrive unchanged.
    /// </summary>
    [Fact]
    public async Task ProxyRetriesOnlyWhatIsSafeAndPassesTheConditionalAndIdempotencyHeaders()
    {
        using var prefix = new TempDirectory();
        // nginx's workers run as nobody when the tests run as root: let them into the prefix.
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(prefix.Path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
                | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        }
        var dead = FreePort();
        await using var echoA = await EchoServer.StartAsync("a");
        await using var echoB = await EchoServer.StartAsync("b");
        DeployFiles.WriteNginxPrefix(prefix.Path, ClusterConfig, new Dictionary<string, string>
        {
            ["tally-1:8080"] = $"127.0.0.1:{dead}",
            ["tally-2:8080"] = $"127.0.0.1:{echoA.Port}",
            ["tally-3:8080"] = $"127.0.0.1:{echoB.Port}",
        });
        var port = FreePort();
        var site = Path.Combine(prefix.Path, "site.conf");
        await File.WriteAllTextAsync(site, (await File.ReadAllTextAsync(site)).Replace("listen 80;", $"listen 127.0.0.1:{port};", StringComparison.Ordinal));

        using var nginx = new System.Diagnostics.Process
        {
            StartInfo = new System.Diagnostics.ProcessStartInfo(DeployFiles.Nginx, ["-p", prefix.Path + "/", "-c", "nginx.conf", "-e", "stderr"])
            {
                RedirectStandardError = true,
                RedirectStandardOutput = true,
                UseShellExecute = false,
            },
        };
        var log = new System.Text.StringBuilder();
        nginx.ErrorDataReceived += (_, e) => { lock (log) { log.AppendLine(e.Data); } };
        try
        {
            nginx.Start();
            nginx.BeginErrorReadLine();
            using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(20) };
            await WaitUntilListeningAsync(port, nginx, log);

            // Reads: every one answered by a live instance, though one in three is first sent to the dead one.
            for (var i = 0; i < 6; i++)
            {
                using var response = await client.GetAsync($"/counters/c{i}");
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            }
            // POSTs: the refused connection carried nothing, so each is retried and reaches exactly one instance.
            for (var i = 0; i < 6; i++)
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, $"/counters/p{i}/increment");
                request.Headers.TryAddWithoutValidation("Idempotency-Key", $"\"key-{i}\"");
                request.Content = new StringContent("{\"by\":2}", System.Text.Encoding.UTF8, "application/json");
                using var response = await client.SendAsync(request);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                var echoed = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
                Assert.Equal($"\"key-{i}\"", (string?)echoed["idempotencyKey"]);
                Assert.Equal("{\"by\":2}", (string?)echoed["body"]);
            }
            // PUT and DELETE: never tried on a second instance. The dead one's passive failure count may already
            // have it marked down, so a 502 is allowed but not required; a request must never arrive twice.
            var puts = 0;
            for (var i = 0; i < 6; i++)
            {
                using var request = new HttpRequestMessage(i % 2 == 0 ? HttpMethod.Put : HttpMethod.Delete, $"/counters/u{i}");
                request.Headers.TryAddWithoutValidation("If-Match", $"\"{i}\"");
                if (i % 2 == 0)
                {
                    request.Content = new StringContent("{\"value\":5}", System.Text.Encoding.UTF8, "application/json");
                }
                using var response = await client.SendAsync(request);
                Assert.True(response.StatusCode is HttpStatusCode.OK or HttpStatusCode.BadGateway, $"{request.Method} answered {response.StatusCode}");
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    puts++;
                    var echoed = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
                    Assert.Equal($"\"{i}\"", (string?)echoed["ifMatch"]);
                    Assert.Equal(request.Method.Method, (string?)echoed["method"]);
                }
            }

            var received = echoA.Requests.Concat(echoB.Requests).ToList();
            Assert.Equal(6, received.Count(r => r.StartsWith("GET ", StringComparison.Ordinal)));
            var posts = received.Where(r => r.StartsWith("POST ", StringComparison.Ordinal)).ToList();
            Assert.Equal(6, posts.Count);
            Assert.Equal(posts.Count, posts.Distinct().Count());
            var writes = received.Where(r => r.StartsWith("PUT ", StringComparison.Ordinal) || r.StartsWith("DELETE ", StringComparison.Ordinal)).ToList();
            Assert.Equal(puts, writes.Count);
            Assert.Equal(writes.Count, writes.Distinct().Count());
            // Both live instances took part: requests are spread, not pinned.
            Assert.NotEmpty(echoA.Requests);
            Assert.NotEmpty(echoB.Requests);
        }
        finally
        {
            if (!nginx.HasExited)
            {
                nginx.Kill(entireProcessTree: true);
            }
            await nginx.WaitForExitAsync();
        }
    }

    private static async Task WaitUntilListeningAsync(int port, System.Diagnostics.Process nginx, System.Text.StringBuilder log)
    {
        for (var attempt = 0; attempt < 100; attempt++)
        {
            if (nginx.HasExited)
            {
                lock (log)
                {
                    Assert.Fail($"nginx exited with {nginx.ExitCode}:\n{log}");
                }
            }
            try
            {
                using var socket = new TcpClient();
                await socket.ConnectAsync(IPAddress.Loopback, port);
                return;
            }
            catch (SocketException)
            {
                await Task.Delay(100);
            }
        }
        Assert.Fail($"nginx did not listen on {port}.");
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>
    /// Kestrel on 127.0.0.1 (a port the system picks) that answers 200 with what it received, as JSON, and records
    /// each request. Not HttpListener: its managed Close re-binds the port to remove a prefix, which fails when the
    /// port was taken meanwhile.
    /// </summary>
    private sealed class EchoServer : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private readonly List<string> _requests = [];

        private EchoServer(WebApplication app) => _app = app;

        public int Port { get; private set; }

        public IReadOnlyList<string> Requests
        {
            get
            {
                lock (_requests)
                {
                    return [.. _requests];
                }
            }
        }

        public static async Task<EchoServer> StartAsync(string name)
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.UseKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0));
            var app = builder.Build();
            var server = new EchoServer(app);
            app.Run(async context =>
            {
                using var reader = new StreamReader(context.Request.Body);
                var body = await reader.ReadToEndAsync();
                var request = context.Request;
                string? idempotencyKey = request.Headers["Idempotency-Key"];
                string? ifMatch = request.Headers["If-Match"];
                lock (server._requests)
                {
                    server._requests.Add($"{request.Method} {request.Path} {idempotencyKey} {ifMatch}");
                }
                await context.Response.WriteAsJsonAsync(new JsonObject
                {
                    ["server"] = name,
                    ["method"] = request.Method,
                    ["path"] = request.Path.Value,
                    ["idempotencyKey"] = idempotencyKey,
                    ["ifMatch"] = ifMatch,
                    ["body"] = body,
                });
            });
            await app.StartAsync();
            var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.Single();
            server.Port = new Uri(address).Port;
            return server;
        }

        public async ValueTask DisposeAsync() => await _app.DisposeAsync();
    }
}
