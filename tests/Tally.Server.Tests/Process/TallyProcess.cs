using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Tally.Server.Tests.Process;

/// <summary>
/// The built server as a real child process: <c>dotnet Tally.Server.dll --urls http://127.0.0.1:&lt;port&gt; --DataDir &lt;dir&gt;</c>,
/// run from the test output directory (the server is copied there as a project reference).
/// For crash, shutdown and start-up tests. Does not own the data directory.
/// </summary>
public sealed class TallyProcess : IAsyncDisposable
{
    private readonly System.Diagnostics.Process _process;
    private readonly StringBuilder _output = new();
    private readonly StringBuilder _error = new();
    private readonly Lock _lock = new();

    private TallyProcess(System.Diagnostics.Process process, Uri baseAddress, string dataDir)
    {
        _process = process;
        BaseAddress = baseAddress;
        DataDir = dataDir;
    }

    public Uri BaseAddress { get; }

    public string DataDir { get; }

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    public string StandardOutput
    {
        get
        {
            lock (_lock)
            {
                return _output.ToString();
            }
        }
    }

    public string StandardError
    {
        get
        {
            lock (_lock)
            {
                return _error.ToString();
            }
        }
    }

    public const string AdminKey = Infrastructure.TallyApplication.AdminKey;

    public static string ServerAssembly => Path.Combine(AppContext.BaseDirectory, "Tally.Server.dll");

    /// <summary>Starts Tally on a free loopback port; further arguments (e.g. <c>--Store memory</c>) follow the defaults and win.</summary>
    public static TallyProcess Start(string dataDir, params string[] arguments) =>
        Start(dataDir, new Dictionary<string, string>(), arguments);

    /// <summary>As <see cref="Start(string, string[])"/>, with further environment variables for the child (e.g. <c>TZ</c>).</summary>
    public static TallyProcess Start(string dataDir, IReadOnlyDictionary<string, string> environment, params string[] arguments)
    {
        // test.sh names the layer it runs; the fast one must not start processes (see tests/README.md).
        if (Environment.GetEnvironmentVariable("TALLYTESTS_LAYER") is "fast")
        {
            throw new InvalidOperationException("This test starts the real server but runs in the fast layer: give it [Trait(\"Layer\", \"Process\")].");
        }
        if (!File.Exists(ServerAssembly))
        {
            throw new FileNotFoundException($"The server is not next to the tests; build the solution first. Looked for {ServerAssembly}.");
        }
        var baseAddress = new Uri($"http://127.0.0.1:{FreePort()}");
        var start = new ProcessStartInfo(DotnetHost())
        {
            WorkingDirectory = AppContext.BaseDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        // The test admin key (clients send it) and no rate limit, as in TallyApplication; "--AdminKey=" removes the key.
        string[] defaults = ["--AdminKey", AdminKey, "--RateLimit:PermitsPerSecond", "0"];
        foreach (var argument in (string[])[ServerAssembly, "--urls", baseAddress.ToString().TrimEnd('/'), "--DataDir", dataDir, .. defaults, .. arguments])
        {
            start.ArgumentList.Add(argument);
        }
        // The child sees only the configuration the test gives it.
        foreach (var name in start.Environment.Keys.Where(key => key.StartsWith("TALLY_", StringComparison.OrdinalIgnoreCase)).ToList())
        {
            start.Environment.Remove(name);
        }
        // Several processes share two cores during a test run; workstation GC keeps each one small.
        start.Environment["DOTNET_gcServer"] = "0";
        // Warnings and errors only (the output is kept for Describe()); a test's --Logging:LogLevel:… arguments win.
        start.Environment["Logging__LogLevel__Default"] = "Warning";
        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }

        var process = new System.Diagnostics.Process { StartInfo = start, EnableRaisingEvents = true };
        var tally = new TallyProcess(process, baseAddress, dataDir);
        process.OutputDataReceived += (_, e) => tally.Append(tally._output, e.Data);
        process.ErrorDataReceived += (_, e) => tally.Append(tally._error, e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return tally;
    }

    /// <summary>A client that sends <see cref="AdminKey"/>.</summary>
    public HttpClient CreateClient() => new(new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(5) })
    {
        BaseAddress = BaseAddress,
        Timeout = TimeSpan.FromSeconds(15),
        DefaultRequestHeaders = { Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", AdminKey) },
    };

    /// <summary>Polls <c>/readyz</c> until it answers 200; fails with the process's output if it exits or takes too long.</summary>
    public async Task WaitUntilReadyAsync(TimeSpan? timeout = null)
    {
        using var client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(2) };
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < (timeout ?? TimeSpan.FromSeconds(30)))
        {
            if (HasExited)
            {
                await WaitForExitAsync();
                throw new InvalidOperationException($"Tally exited with code {ExitCode} before it was ready.\n{Describe()}");
            }
            try
            {
                using var response = await client.GetAsync("/readyz");
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    return;
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
                // Not listening yet.
            }
            await Task.Delay(50);
        }
        throw new TimeoutException($"Tally was not ready within the timeout.\n{Describe()}");
    }

    /// <summary>
    /// Asserts a refused start: exit code 2 and a plain sentence naming the problem, not a crash: one line on stderr
    /// starting "Tally cannot start:" and containing <paramref name="named"/>, no "Unhandled exception", no stack frame
    /// on stderr or in the log on stdout.
    /// </summary>
    public async Task AssertFailedStartAsync(string named)
    {
        var exitCode = await WaitForExitAsync();
        Assert.True(exitCode == 2, $"Expected exit code 2, got {exitCode}.\n{Describe()}");
        var lines = StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1 && lines[0].StartsWith("Tally cannot start: ", StringComparison.Ordinal),
            $"stderr is not one 'Tally cannot start:' line.\n{Describe()}");
        Assert.True(lines[0].Contains(named, StringComparison.Ordinal), $"stderr does not say '{named}'.\n{Describe()}");
        var everything = StandardError + StandardOutput;
        Assert.False(everything.Contains("Unhandled exception", StringComparison.Ordinal) || everything.Contains("   at ", StringComparison.Ordinal),
            $"The output shows a crash or a stack trace, not a message.\n{Describe()}");
    }

    /// <summary>SIGKILL: no shutdown code runs, as in a power cut of the process.</summary>
    public void Kill() => _process.Kill(entireProcessTree: true);

    /// <summary>SIGTERM: the host's graceful shutdown.</summary>
    public void Terminate()
    {
        using var kill = System.Diagnostics.Process.Start("kill", ["-TERM", Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    /// <summary>Waits for the process to end and for its output to be read to the end; returns the exit code.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan? timeout = null)
    {
        using var cancel = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(30));
        try
        {
            await _process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"Tally did not exit within the timeout.\n{Describe()}");
        }
        return _process.ExitCode;
    }

    public string Describe() => $"--- stdout ---\n{StandardOutput}\n--- stderr ---\n{StandardError}";

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }
        }
        catch (InvalidOperationException)
        {
            // Never started or already gone.
        }
        _process.Dispose();
    }

    private void Append(StringBuilder target, string? line)
    {
        if (line is null)
        {
            return;
        }
        lock (_lock)
        {
            target.AppendLine(line);
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>The dotnet host running these tests, so the child uses the same runtime.</summary>
    private static string DotnetHost()
    {
        if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host))
        {
            return host;
        }
        if (Environment.ProcessPath is { } path && Path.GetFileNameWithoutExtension(path) == "dotnet")
        {
            return path;
        }
        return "dotnet";
    }
}
