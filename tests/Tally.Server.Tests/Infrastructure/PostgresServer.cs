using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Npgsql;

namespace Tally.Server.Tests.Infrastructure;

/// <summary>
/// A private PostgreSQL 15 server from Debian's binaries (the package postgresql-15, which test.sh installs): its own
/// cluster in a temporary directory, listening on a free port on 127.0.0.1 only, trusting every connection there.
/// fsync stays on, so a test that kills the server (<see cref="KillAsync"/>) and starts it again (<see cref="StartAsync"/>) sees
/// what a crash of the database leaves. Its log goes to <see cref="LogPath"/>; <see cref="Describe"/> gives it for a
/// failure message. Dispose stops the server and deletes the directory.
/// Most tests share one server through <see cref="PostgresFixture"/> (<see cref="PostgresCollection"/>) and take a
/// database of their own from it; a test that stops or kills the server starts its own with <see cref="StartNewAsync"/>.
/// </summary>
public sealed class PostgresServer : IAsyncDisposable
{
    /// <summary>Where Debian's postgresql-15 puts initdb and postgres (they are not on PATH).</summary>
    public const string BinDirectory = "/usr/lib/postgresql/15/bin";

    /// <summary>The superuser that initdb creates; every connection uses it.</summary>
    public const string User = "postgres";

    private const string DebianPackage = "postgresql-15";

    private static int s_databases;

    private readonly Lock _lock = new();
    private System.Diagnostics.Process? _postmaster;

    private PostgresServer(string directory, int port)
    {
        Directory = directory;
        Port = port;
    }

    /// <summary>The temporary directory: the cluster (<c>data/</c>), the Unix socket (<c>socket/</c>) and the log.</summary>
    public string Directory { get; }

    public string DataDirectory => Path.Combine(Directory, "data");

    public string LogPath => Path.Combine(Directory, "server.log");

    /// <summary>The TCP port on 127.0.0.1; it stays the same across <see cref="StopAsync"/>/<see cref="KillAsync"/> and <see cref="StartAsync"/>.</summary>
    public int Port { get; }

    public bool IsRunning => _postmaster is { HasExited: false };

    /// <summary>The process id of the postmaster, while it runs.</summary>
    public int? ProcessId => IsRunning ? _postmaster!.Id : null;

    /// <summary>A connection string to the <c>postgres</c> maintenance database, as the superuser.</summary>
    public string AdminConnectionString => ConnectionString("postgres");

    /// <summary>
    /// The binaries run as the <c>postgres</c> OS user when the tests run as root (initdb and postgres refuse to run
    /// as root), through setpriv, which execs in place: the postmaster stays this process's child, so it is reaped
    /// the moment it dies and can be started again at once.
    /// </summary>
    private static bool AsPostgresUser => Environment.IsPrivilegedProcess;

    /// <summary>Creates a cluster in a new temporary directory and starts it; fails (never skips) when PostgreSQL is not installed.</summary>
    public static async Task<PostgresServer> StartNewAsync()
    {
        RequireLayer();
        foreach (var binary in new[] { "initdb", "postgres" })
        {
            if (!File.Exists(Path.Combine(BinDirectory, binary)))
            {
                throw new InvalidOperationException(
                    $"{Path.Combine(BinDirectory, binary)} is missing: test.sh must install the Debian package {DebianPackage}.");
            }
        }

        var directory = System.IO.Directory.CreateTempSubdirectory("tally-postgres-").FullName;
        var server = new PostgresServer(directory, FreePort());
        try
        {
            System.IO.Directory.CreateDirectory(Path.Combine(directory, "socket"));
            if (AsPostgresUser)
            {
                await RunAsync("chown", ["-R", $"{User}:{User}", directory], directory);
            }
            await server.InitDbAsync();
            await server.StartPostmasterAsync();
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    /// <summary>A connection string for the given database on this server, as the superuser.</summary>
    public string ConnectionString(string database) => new NpgsqlConnectionStringBuilder
    {
        Host = "127.0.0.1",
        Port = Port,
        Username = User,
        Database = database,
        IncludeErrorDetail = true,
        Timeout = 10,
    }.ConnectionString;

    /// <summary>
    /// Creates an empty database with a new name and returns its connection string, so that tests never share data.
    /// </summary>
    /// <param name="prefix">The start of the name (lower-case letters, digits and underscores, up to 40), to tell in the log which test it was for.</param>
    public async Task<string> CreateDatabaseAsync(string prefix = "tally")
    {
        if (prefix.Length is 0 or > 40 || !prefix.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '_'))
        {
            throw new ArgumentException("A database prefix has 1 to 40 lower-case letters, digits and underscores.", nameof(prefix));
        }
        var name = $"{prefix}_{Interlocked.Increment(ref s_databases)}_{Guid.NewGuid():N}"[..(prefix.Length + 1 + 6 + 1 + 12)].TrimEnd('_');
        await using var connection = new NpgsqlConnection(AdminConnectionString);
        try
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", connection);
            await command.ExecuteNonQueryAsync();
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
        {
            throw new InvalidOperationException($"Could not create database {name} on port {Port}: {ex.Message}\n{Describe()}", ex);
        }
        return ConnectionString(name);
    }

    /// <summary>Starts the server again on the same data directory and port (after <see cref="StopAsync"/> or <see cref="KillAsync"/>); returns once it accepts connections.</summary>
    public Task StartAsync() => StartPostmasterAsync();

    /// <summary>A fast shutdown (SIGINT: open transactions roll back, a checkpoint is written); waits for the server to exit.</summary>
    public async Task StopAsync()
    {
        if (_postmaster is not { HasExited: false } postmaster)
        {
            return;
        }
        await RunAsync("kill", ["-INT", postmaster.Id.ToString(CultureInfo.InvariantCulture)], Directory);
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            await postmaster.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            await KillAsync();
            throw new TimeoutException($"PostgreSQL did not shut down within 30 s (killed it).\n{Describe()}");
        }
    }

    /// <summary>
    /// SIGKILL to the postmaster and every process it started, as in a crash of the machine's database: nothing is
    /// flushed or checkpointed, and committed transactions survive only through the WAL (fsync is on).
    /// </summary>
    public async Task KillAsync()
    {
        if (_postmaster is not { HasExited: false } postmaster)
        {
            return;
        }
        var pid = postmaster.Id;
        // Stopped, the postmaster can neither fork nor restart a backend while its children are collected.
        await RunAsync("kill", ["-STOP", pid.ToString(CultureInfo.InvariantCulture)], Directory, check: false);
        var children = ChildrenOf(pid);
        await RunAsync("kill", ["-KILL", .. children.Append(pid).Select(p => p.ToString(CultureInfo.InvariantCulture))], Directory, check: false);
        await postmaster.WaitForExitAsync();
        // A backend still attached to the shared memory would stop the next start ("pre-existing shared memory block").
        var deadline = Stopwatch.StartNew();
        while (children.Any(IsAlive))
        {
            if (deadline.Elapsed > TimeSpan.FromSeconds(10))
            {
                throw new TimeoutException($"PostgreSQL's processes {string.Join(", ", children.Where(IsAlive))} outlived SIGKILL.");
            }
            await Task.Delay(20);
        }
    }

    /// <summary>The server's log so far, for an assertion message.</summary>
    public string Describe()
    {
        lock (_lock)
        {
            try
            {
                return $"--- PostgreSQL log ({LogPath}) ---\n{File.ReadAllText(LogPath)}";
            }
            catch (IOException ex)
            {
                return $"--- PostgreSQL log: unreadable ({ex.Message}) ---";
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await KillAsync();
        }
        finally
        {
            _postmaster?.Dispose();
            TempDirectory.Delete(Directory);
        }
    }

    private async Task InitDbAsync()
    {
        // --no-sync: the fresh cluster is a throwaway until the server has started; the server itself runs with fsync on.
        var result = await RunAsync(Path.Combine(BinDirectory, "initdb"),
            ["-D", DataDirectory, "-U", User, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"], Directory, asPostgres: true, check: false);
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException($"initdb failed with exit code {result.ExitCode}:\n{result.Output}");
        }
        // Trust, but only for the Unix socket (in this private directory) and 127.0.0.1; nothing else may connect.
        await File.WriteAllTextAsync(Path.Combine(DataDirectory, "pg_hba.conf"), """
            local all all trust
            host  all all 127.0.0.1/32 trust
            """);
        var settings = new Dictionary<string, string>
        {
            ["listen_addresses"] = "'127.0.0.1'",
            ["port"] = Port.ToString(CultureInfo.InvariantCulture),
            ["unix_socket_directories"] = $"'{Path.Combine(Directory, "socket")}'",
            // Durability tests rely on these (the defaults, stated so that no one turns them off for speed).
            ["fsync"] = "on",
            ["synchronous_commit"] = "on",
            ["full_page_writes"] = "on",
            // Small: several servers and Tally processes share two cores and little memory during a run.
            ["shared_buffers"] = "32MB",
            ["max_connections"] = "200",
            ["logging_collector"] = "off",
            ["log_min_messages"] = "warning",
            ["log_timezone"] = "'UTC'",
            ["timezone"] = "'UTC'",
        };
        await File.AppendAllTextAsync(Path.Combine(DataDirectory, "postgresql.conf"),
            "\n# Tally tests (PostgresServer)\n" + string.Concat(settings.Select(s => $"{s.Key} = {s.Value}\n")));
    }

    private async Task StartPostmasterAsync()
    {
        if (IsRunning)
        {
            throw new InvalidOperationException("PostgreSQL is already running.");
        }
        var start = StartInfo(Path.Combine(BinDirectory, "postgres"), ["-D", DataDirectory], Directory, asPostgres: true);
        var postmaster = new System.Diagnostics.Process { StartInfo = start, EnableRaisingEvents = true };
        postmaster.OutputDataReceived += (_, e) => AppendLog(e.Data);
        postmaster.ErrorDataReceived += (_, e) => AppendLog(e.Data);
        postmaster.Start();
        postmaster.BeginOutputReadLine();
        postmaster.BeginErrorReadLine();
        _postmaster?.Dispose();
        _postmaster = postmaster;

        // Ready, as pg_ctl -w decides it: the eighth line of postmaster.pid says "ready" once connections are accepted.
        var pidFile = Path.Combine(DataDirectory, "postmaster.pid");
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(60))
        {
            if (postmaster.HasExited)
            {
                await postmaster.WaitForExitAsync();
                throw new InvalidOperationException($"PostgreSQL exited with code {postmaster.ExitCode} while starting.\n{Describe()}");
            }
            try
            {
                var lines = await File.ReadAllLinesAsync(pidFile);
                if (lines.Length >= 8 && lines[0].Trim() == postmaster.Id.ToString(CultureInfo.InvariantCulture) && lines[7].Trim() == "ready")
                {
                    return;
                }
            }
            catch (IOException)
            {
                // Not written yet.
            }
            await Task.Delay(20);
        }
        await KillAsync();
        throw new TimeoutException($"PostgreSQL was not ready within 60 s.\n{Describe()}");
    }

    private void AppendLog(string? line)
    {
        if (line is null)
        {
            return;
        }
        lock (_lock)
        {
            File.AppendAllText(LogPath, line + "\n");
        }
    }

    private static ProcessStartInfo StartInfo(string fileName, IEnumerable<string> arguments, string workingDirectory, bool asPostgres)
    {
        var start = new ProcessStartInfo(asPostgres && AsPostgresUser ? "setpriv" : fileName)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (asPostgres && AsPostgresUser)
        {
            foreach (var argument in (string[])["--reuid", User, "--regid", User, "--init-groups", "--", fileName])
            {
                start.ArgumentList.Add(argument);
            }
        }
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        // libpq and the server read these; the test's environment must not point them elsewhere.
        foreach (var name in start.Environment.Keys.Where(key => key.StartsWith("PG", StringComparison.Ordinal)).ToList())
        {
            start.Environment.Remove(name);
        }
        start.Environment["LC_ALL"] = "C";
        return start;
    }

    private static async Task<(int ExitCode, string Output)> RunAsync(string fileName, IEnumerable<string> arguments, string workingDirectory,
        bool asPostgres = false, bool check = true)
    {
        using var process = new System.Diagnostics.Process { StartInfo = StartInfo(fileName, arguments, workingDirectory, asPostgres) };
        var output = new StringBuilder();
        process.OutputDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.ErrorDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        await process.WaitForExitAsync(cancel.Token);
        string text;
        lock (output)
        {
            text = output.ToString();
        }
        if (check && process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{fileName} {string.Join(' ', process.StartInfo.ArgumentList)} exited with {process.ExitCode}:\n{text}");
        }
        return (process.ExitCode, text);
    }

    /// <summary>The processes whose parent is <paramref name="pid"/> (from /proc).</summary>
    private static List<int> ChildrenOf(int pid) =>
        [.. System.IO.Directory.EnumerateDirectories("/proc")
            .Select(Path.GetFileName)
            .Select(name => int.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out var id) ? id : 0)
            .Where(id => id > 0 && Stat(id) is { } stat && stat.ParentId == pid)];

    /// <summary>Alive: it exists and is not a zombie (a zombie holds no memory; init reaps it in its own time).</summary>
    private static bool IsAlive(int pid) => Stat(pid) is { State: not 'Z' and not 'X' };

    private static (char State, int ParentId)? Stat(int pid)
    {
        try
        {
            // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so read after the last ')'.
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return (fields[0][0], int.Parse(fields[1], CultureInfo.InvariantCulture));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return null;
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
            throw new InvalidOperationException("This test starts a server but runs in the fast layer: give it [Trait(\"Layer\", \"Process\")].");
        }
    }
}
