using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Tally.Server.Tests.Infrastructure;

/// <summary>
/// A private Redis from Debian's binary (the package redis-server, which test.sh installs): its own configuration,
/// append-only file and log in a temporary directory, listening on a free port on 127.0.0.1 only. By default every
/// write is in the append-only file before Redis answers (<c>appendonly yes</c>, <c>appendfsync always</c>, no RDB
/// snapshots), so a test that kills it (<see cref="KillAsync"/>) and starts it again (<see cref="StartAsync"/>) sees
/// what a crash leaves; <see cref="StartNewAsync"/> takes other settings for a test about weaker persistence.
/// Its log goes to <see cref="LogPath"/>; <see cref="Describe"/> gives it for a failure message. Dispose kills the
/// server and deletes the directory.
/// Most tests take one from <see cref="RedisFixture"/> (a server per test class); a test that stops or kills the
/// server starts its own with <see cref="StartNewAsync"/>.
/// </summary>
public sealed class RedisServer : IAsyncDisposable
{
    /// <summary>Where Debian's redis-server package puts the server.</summary>
    public const string Binary = "/usr/bin/redis-server";

    private const string DebianPackage = "redis-server";

    /// <summary>Set by the class itself: a test may not move the server, its files or its log.</summary>
    private static readonly string[] s_fixedSettings = ["bind", "port", "dir", "logfile", "daemonize", "include", "unixsocket"];

    private readonly string _binary;
    private readonly StringBuilder _output = new();
    private System.Diagnostics.Process? _process;

    private RedisServer(string binary, string directory, int port, IReadOnlyDictionary<string, string> settings)
    {
        _binary = binary;
        Directory = directory;
        Port = port;
        Settings = settings;
    }

    /// <summary>The temporary directory: <c>redis.conf</c>, the append-only files (<c>appendonlydir/</c>) and the log.</summary>
    public string Directory { get; }

    public string ConfigPath => Path.Combine(Directory, "redis.conf");

    public string LogPath => Path.Combine(Directory, "redis.log");

    /// <summary>The TCP port on 127.0.0.1; it stays the same across <see cref="StopAsync"/>/<see cref="KillAsync"/> and <see cref="StartAsync"/>.</summary>
    public int Port { get; }

    /// <summary>A StackExchange.Redis configuration string for this server: <c>127.0.0.1:port</c>.</summary>
    public string ConfigurationString => $"127.0.0.1:{Port}";

    /// <summary>The directives in <c>redis.conf</c> besides the fixed ones (address, port, directory, log).</summary>
    public IReadOnlyDictionary<string, string> Settings { get; }

    public bool IsRunning => _process is { HasExited: false };

    /// <summary>The process id of redis-server, while it runs.</summary>
    public int? ProcessId => IsRunning ? _process!.Id : null;

    /// <summary>
    /// Starts a server in a new temporary directory; returns once it answers PING. Fails (never skips) when redis-server
    /// is not installed.
    /// </summary>
    /// <param name="settings">
    /// Directives that replace or add to the durable defaults, e.g. <c>["appendfsync"] = "everysec"</c> or
    /// <c>["appendonly"] = "no"</c>; a value is written as is (quote it as redis.conf wants, e.g. <c>"\"\""</c>).
    /// </param>
    public static Task<RedisServer> StartNewAsync(IReadOnlyDictionary<string, string>? settings = null) => StartNewAsync(settings, Binary);

    /// <summary>As <see cref="StartNewAsync(IReadOnlyDictionary{string, string}?)"/> with another binary (to test what a missing one does).</summary>
    internal static async Task<RedisServer> StartNewAsync(IReadOnlyDictionary<string, string>? settings, string binary)
    {
        RequireLayer();
        if (!File.Exists(binary))
        {
            throw new InvalidOperationException($"{binary} is missing: test.sh must install the Debian package {DebianPackage}.");
        }
        var merged = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
        {
            // Every acknowledged write is on disk: what a crash test relies on (and what Tally's Redis engine asks for).
            ["appendonly"] = "yes",
            ["appendfsync"] = "always",
            ["save"] = "\"\"",
            // Loopback only and no password: protected mode lets loopback clients in, so it stays on.
            ["protected-mode"] = "yes",
            ["loglevel"] = "notice",
        };
        foreach (var (name, value) in settings ?? new Dictionary<string, string>())
        {
            if (s_fixedSettings.Contains(name, StringComparer.OrdinalIgnoreCase))
            {
                throw new ArgumentException($"RedisServer sets '{name}' itself.", nameof(settings));
            }
            merged[name] = value;
        }

        var directory = System.IO.Directory.CreateTempSubdirectory("tally-redis-").FullName;
        var server = new RedisServer(binary, directory, FreePort(), merged);
        try
        {
            await File.WriteAllTextAsync(server.ConfigPath, server.Configuration());
            await server.StartAsync();
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    /// <summary>Starts the server (again) on the same directory and port; returns once it answers PING, its data loaded.</summary>
    public async Task StartAsync()
    {
        if (IsRunning)
        {
            throw new InvalidOperationException("Redis is already running.");
        }
        var start = new ProcessStartInfo(_binary)
        {
            WorkingDirectory = Directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(ConfigPath);
        var process = new System.Diagnostics.Process { StartInfo = start, EnableRaisingEvents = true };
        // With a log file Redis writes nothing here, except when it cannot even read its configuration.
        process.OutputDataReceived += (_, e) => AppendOutput(e.Data);
        process.ErrorDataReceived += (_, e) => AppendOutput(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process?.Dispose();
        _process = process;

        var deadline = Stopwatch.StartNew();
        var last = "no answer";
        while (deadline.Elapsed < TimeSpan.FromSeconds(30))
        {
            if (process.HasExited)
            {
                await process.WaitForExitAsync();
                throw new InvalidOperationException($"redis-server exited with code {process.ExitCode} while starting.\n{Describe()}");
            }
            try
            {
                // While it loads the append-only file Redis already listens, but answers -LOADING.
                last = await CommandAsync("PING");
                if (last == "+PONG")
                {
                    return;
                }
            }
            catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException)
            {
                last = ex.Message;
            }
            await Task.Delay(10);
        }
        await KillAsync();
        throw new TimeoutException($"Redis did not answer PING within 30 s (last: {last}).\n{Describe()}");
    }

    /// <summary>
    /// A clean shutdown (SIGTERM: Redis fsyncs the append-only file, or writes its snapshot when it keeps one, and
    /// exits); waits for it to exit.
    /// </summary>
    public async Task StopAsync()
    {
        if (_process is not { HasExited: false } process)
        {
            return;
        }
        using (var kill = System.Diagnostics.Process.Start("kill", ["-TERM", process.Id.ToString(CultureInfo.InvariantCulture)]))
        {
            await kill.WaitForExitAsync();
        }
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            await process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            await KillAsync();
            throw new TimeoutException($"Redis did not shut down within 30 s (killed it).\n{Describe()}");
        }
    }

    /// <summary>
    /// SIGKILL to redis-server and any child it forked (an append-only rewrite), as in a crash: what was written to
    /// the append-only file survives, the rest is gone.
    /// </summary>
    public async Task KillAsync()
    {
        if (_process is not { HasExited: false } process)
        {
            return;
        }
        try
        {
            process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // It exited just now.
        }
        await process.WaitForExitAsync();
    }

    /// <summary>A clean stop, then a start on the same directory and port.</summary>
    public async Task RestartAsync()
    {
        await StopAsync();
        await StartAsync();
    }

    /// <summary>
    /// Makes the running server as good as new: every key in every database, the function library and the script
    /// cache gone. Clients stay connected (and subscribed): a test closes its own.
    /// </summary>
    public async Task FlushAllAsync()
    {
        foreach (var command in (string[][])[["FLUSHALL", "SYNC"], ["FUNCTION", "FLUSH", "SYNC"], ["SCRIPT", "FLUSH", "SYNC"]])
        {
            var reply = await CommandAsync(command);
            if (reply != "+OK")
            {
                throw new InvalidOperationException($"{string.Join(' ', command)} answered {reply}.\n{Describe()}");
            }
        }
    }

    /// <summary>The server's configuration, output and log so far, for an assertion message.</summary>
    public string Describe()
    {
        string output;
        lock (_output)
        {
            output = _output.ToString();
        }
        return $"--- redis.conf ---\n{Configuration()}--- redis-server output ---\n{output}--- Redis log ({LogPath}) ---\n{TryRead(LogPath)}";
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await KillAsync();
        }
        finally
        {
            _process?.Dispose();
            TempDirectory.Delete(Directory);
        }
    }

    private string Configuration()
    {
        var text = new StringBuilder("# Tally tests (RedisServer)\n");
        text.Append(CultureInfo.InvariantCulture, $"bind 127.0.0.1\nport {Port}\ndaemonize no\n");
        text.Append(CultureInfo.InvariantCulture, $"dir \"{Directory}\"\nlogfile \"{LogPath}\"\n");
        foreach (var (name, value) in Settings)
        {
            text.Append(CultureInfo.InvariantCulture, $"{name} {value}\n");
        }
        return text.ToString();
    }

    /// <summary>Sends one command on a connection of its own and returns the first line of the answer (e.g. <c>+PONG</c>, <c>-LOADING …</c>).</summary>
    private async Task<string> CommandAsync(params string[] command)
    {
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, Port, cancel.Token);
        var stream = client.GetStream();
        var request = new StringBuilder().Append(CultureInfo.InvariantCulture, $"*{command.Length}\r\n");
        foreach (var part in command)
        {
            request.Append(CultureInfo.InvariantCulture, $"${Encoding.UTF8.GetByteCount(part)}\r\n{part}\r\n");
        }
        await stream.WriteAsync(Encoding.UTF8.GetBytes(request.ToString()), cancel.Token);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return await reader.ReadLineAsync(cancel.Token) ?? "(connection closed)";
    }

    private void AppendOutput(string? line)
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

    private static string TryRead(string path)
    {
        try
        {
            return File.ReadAllText(path);
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

    /// <summary>As <c>TallyProcess.Start</c>: the fast layer starts no processes (tests/README.md).</summary>
    private static void RequireLayer()
    {
        if (Environment.GetEnvironmentVariable("TALLYTESTS_LAYER") is "fast")
        {
            throw new InvalidOperationException("This test starts a Redis server but runs in the fast layer: give it [Trait(\"Layer\", \"Process\")].");
        }
    }
}
