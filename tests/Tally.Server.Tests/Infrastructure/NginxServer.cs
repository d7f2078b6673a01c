using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;

namespace Tally.Server.Tests.Infrastructure;

/// <summary>
/// A private nginx (Debian's /usr/sbin/nginx, the package nginx, which test.sh installs) in front of the given Tally
/// instances, listening on a free port on 127.0.0.1. Its configuration is the project's own proxy,
/// deploy/nginx/tally.conf (upstream keep-alive, forwarded headers, body limits, streaming locations, retries only
/// where nginx may retry), with the backends put in the <c>upstream</c>, plain HTTP on loopback instead of TLS, and
/// every file nginx writes (pid, logs, temporary bodies) in its own temporary directory. The access log records which
/// backend served each request (<see cref="UpstreamsServed"/>). Dispose stops nginx and deletes the directory.
/// </summary>
public sealed partial class NginxServer : IAsyncDisposable
{
    public const string Binary = "/usr/sbin/nginx";

    /// <summary>The project's proxy configuration, relative to the repository root.</summary>
    public const string DeployConfig = "deploy/nginx/tally.conf";

    private readonly System.Diagnostics.Process _process;
    private readonly StringBuilder _output = new();

    private NginxServer(string directory, int port, string config, System.Diagnostics.Process process)
    {
        Directory = directory;
        Port = port;
        Config = config;
        _process = process;
    }

    public string Directory { get; }

    public int Port { get; }

    public Uri BaseAddress => new($"http://127.0.0.1:{Port}");

    /// <summary>The configuration nginx runs with (in <see cref="Directory"/>/nginx.conf).</summary>
    public string Config { get; }

    public string ErrorLogPath => Path.Combine(Directory, "logs", "error.log");

    public string AccessLogPath => Path.Combine(Directory, "logs", "access.log");

    public bool HasExited => _process.HasExited;

    /// <summary>
    /// Starts nginx in front of <paramref name="backends"/> (e.g. <c>TallyProcess.BaseAddress</c>, all on 127.0.0.1),
    /// in order, round robin; returns once it accepts connections. Fails (never skips) when nginx is not installed.
    /// </summary>
    public static async Task<NginxServer> StartAsync(IReadOnlyList<Uri> backends)
    {
        if (Environment.GetEnvironmentVariable("TALLYTESTS_LAYER") is "fast")
        {
            throw new InvalidOperationException("This test starts nginx but runs in the fast layer: give it [Trait(\"Layer\", \"Process\")].");
        }
        if (!File.Exists(Binary))
        {
            throw new InvalidOperationException($"{Binary} is missing: test.sh must install the Debian package nginx.");
        }
        if (backends.Count == 0)
        {
            throw new ArgumentException("nginx needs at least one backend.", nameof(backends));
        }

        var directory = System.IO.Directory.CreateTempSubdirectory("tally-nginx-").FullName;
        System.IO.Directory.CreateDirectory(Path.Combine(directory, "logs"));
        var port = FreePort();
        var config = Configuration(directory, port, backends, await File.ReadAllTextAsync(Deploy.DeployFiles.PathOf(DeployConfig)));
        var configPath = Path.Combine(directory, "nginx.conf");
        await File.WriteAllTextAsync(configPath, config);

        var start = new ProcessStartInfo(Binary)
        {
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        // -p: relative paths (and the compiled-in defaults that allow it) resolve inside the directory; daemon off keeps
        // the master process this process's child, so it is stopped and reaped here.
        foreach (var argument in (string[])["-p", directory + "/", "-c", configPath, "-e", Path.Combine(directory, "logs", "startup.log"), "-g", "daemon off;"])
        {
            start.ArgumentList.Add(argument);
        }
        var process = new System.Diagnostics.Process { StartInfo = start, EnableRaisingEvents = true };
        var nginx = new NginxServer(directory, port, config, process);
        process.OutputDataReceived += (_, e) => nginx.Append(e.Data);
        process.ErrorDataReceived += (_, e) => nginx.Append(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await nginx.WaitUntilListeningAsync();
            return nginx;
        }
        catch
        {
            await nginx.DisposeAsync();
            throw;
        }
    }

    /// <summary>A client for requests through nginx; it sends the test admin key, as <c>TallyProcess.CreateClient</c> does.</summary>
    public HttpClient CreateClient() => new(new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(5) })
    {
        BaseAddress = BaseAddress,
        Timeout = TimeSpan.FromSeconds(15),
        DefaultRequestHeaders = { Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", TallyApplication.AdminKey) },
    };

    /// <summary>The backend (<c>127.0.0.1:port</c>) that served each logged request, in order; several for a retried request.</summary>
    public IReadOnlyList<string> UpstreamsServed()
    {
        // nginx writes a request's line when it finishes it: a client that has its answer may look a moment early.
        string text;
        try
        {
            text = ReadShared(AccessLogPath);
        }
        catch (FileNotFoundException)
        {
            return [];
        }
        return [.. text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => line.Split(' ')[^1])];
    }

    /// <summary>nginx's output and logs so far, for an assertion message.</summary>
    public string Describe()
    {
        string output;
        lock (_output)
        {
            output = _output.ToString();
        }
        return $"--- nginx output ---\n{output}\n--- {ErrorLogPath} ---\n{TryRead(ErrorLogPath)}\n--- {AccessLogPath} ---\n{TryRead(AccessLogPath)}\n--- nginx.conf ---\n{Config}";
    }

    /// <summary>A fast shutdown (SIGTERM to the master, which stops its worker); waits for nginx to exit.</summary>
    public async Task StopAsync()
    {
        if (_process.HasExited)
        {
            return;
        }
        using (var kill = System.Diagnostics.Process.Start("kill", ["-TERM", _process.Id.ToString(CultureInfo.InvariantCulture)]))
        {
            await kill.WaitForExitAsync();
        }
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            await _process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync(CancellationToken.None);
            throw new TimeoutException($"nginx did not stop within 10 s (killed it).\n{Describe()}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await StopAsync();
        }
        catch (InvalidOperationException)
        {
            // Never started.
        }
        finally
        {
            _process.Dispose();
            TempDirectory.Delete(Directory);
        }
    }

    /// <summary>
    /// deploy/nginx/tally.conf, made private: its <c>upstream tally</c> with <paramref name="backends"/> as the servers,
    /// and its TLS server with <c>listen 127.0.0.1:port</c> and no certificates (the redirecting port-80 server is left out),
    /// inside a main configuration that keeps every file in <paramref name="directory"/>.
    /// </summary>
    internal static string Configuration(string directory, int port, IReadOnlyList<Uri> backends, string deployConfig)
    {
        var text = CommentRegex().Replace(deployConfig, "");
        var blocks = TopLevelBlocks(text);
        var upstream = blocks.SingleOrDefault(block => UpstreamRegex().IsMatch(block))
            ?? throw new InvalidOperationException($"{DeployConfig} has no 'upstream tally {{ }}' block; NginxServer reads it from there.");
        var server = blocks.SingleOrDefault(block => block.StartsWith("server", StringComparison.Ordinal) && block.Contains("proxy_pass", StringComparison.Ordinal))
            ?? throw new InvalidOperationException($"{DeployConfig} has no single server block with proxy_pass; NginxServer reads it from there.");

        var servers = string.Concat(backends.Select(backend => backend.Host == "127.0.0.1"
            ? $"    server 127.0.0.1:{backend.Port};\n"
            : throw new ArgumentException($"Backends listen on 127.0.0.1 (got {backend}).", nameof(backends))));
        upstream = UpstreamServerRegex().Replace(upstream, "");
        upstream = upstream.Insert(upstream.IndexOf('{', StringComparison.Ordinal) + 1, "\n" + servers);

        var listens = ListenRegex().Count(server);
        server = ListenRegex().Replace(server, "");
        server = TlsRegex().Replace(server, "");
        if (listens == 0 || server.Contains("ssl", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"{DeployConfig}'s server block changed shape (listen or ssl lines); update NginxServer.Configuration.");
        }
        server = server.Insert(server.IndexOf('{', StringComparison.Ordinal) + 1, $"\n    listen 127.0.0.1:{port};\n");

        // Running as root, nginx would hand its workers to "nobody", who cannot write in this private directory.
        var user = Environment.IsPrivilegedProcess ? "user root root;\n" : "";
        return BlankLineRegex().Replace($$"""
            # Generated by NginxServer from {{DeployConfig}} for a test.
            {{user}}worker_processes 1;
            pid {{directory}}/nginx.pid;
            error_log {{directory}}/logs/error.log warn;
            events {
                worker_connections 512;
            }
            http {
                log_format upstreams '$request_method $request_uri $status $upstream_addr';
                access_log {{directory}}/logs/access.log upstreams;
                client_body_temp_path {{directory}}/client_body;
                proxy_temp_path {{directory}}/proxy;
                fastcgi_temp_path {{directory}}/fastcgi;
                uwsgi_temp_path {{directory}}/uwsgi;
                scgi_temp_path {{directory}}/scgi;

            {{upstream}}

            {{server}}
            }

            """, "");
    }

    private async Task WaitUntilListeningAsync()
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(20))
        {
            if (_process.HasExited)
            {
                await _process.WaitForExitAsync();
                throw new InvalidOperationException($"nginx exited with code {_process.ExitCode} while starting.\n{Describe()}");
            }
            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync(IPAddress.Loopback, Port);
                return;
            }
            catch (SocketException)
            {
                await Task.Delay(20);
            }
        }
        throw new TimeoutException($"nginx did not listen on port {Port} within 20 s.\n{Describe()}");
    }

    /// <summary>The top-level <c>name … { … }</c> blocks of a configuration without comments, each from its name to its closing brace.</summary>
    private static List<string> TopLevelBlocks(string text)
    {
        var blocks = new List<string>();
        var depth = 0;
        var start = 0;
        for (var i = 0; i < text.Length; i++)
        {
            if (text[i] == '{' && depth++ == 0)
            {
                start = text.LastIndexOfAny([';', '}'], i) + 1;
            }
            else if (text[i] == '}' && --depth == 0)
            {
                blocks.Add(text[start..(i + 1)].Trim());
            }
        }
        return blocks;
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }
        lock (_output)
        {
            _output.AppendLine(line);
        }
    }

    private static string ReadShared(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    private static string TryRead(string path)
    {
        try
        {
            return ReadShared(path);
        }
        catch (IOException ex)
        {
            return $"(unreadable: {ex.Message})";
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    [GeneratedRegex(@"^[ \t]*\n", RegexOptions.Multiline)]
    private static partial Regex BlankLineRegex();

    [GeneratedRegex(@"#[^\n]*")]
    private static partial Regex CommentRegex();

    [GeneratedRegex(@"^upstream\s+tally\s*\{")]
    private static partial Regex UpstreamRegex();

    [GeneratedRegex(@"^\s*server\s+[^;{]+;[ \t]*\n?", RegexOptions.Multiline)]
    private static partial Regex UpstreamServerRegex();

    [GeneratedRegex(@"^\s*listen\s+[^;]+;[ \t]*\n?", RegexOptions.Multiline)]
    private static partial Regex ListenRegex();

    [GeneratedRegex(@"^\s*(ssl_\w+|server_name)\s+[^;]+;[ \t]*\n?", RegexOptions.Multiline)]
    private static partial Regex TlsRegex();
}
