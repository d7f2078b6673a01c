using System.Diagnostics;
using System.Net;

namespace Tally.Client.Tests.Infrastructure;

/// <summary>
/// The built server as a child process (<c>dotnet Tally.Server.dll</c> from the test output, where the project reference
/// copies it) on a free loopback port with its own data directory. For the CLI tests, which run the real tool against it.
/// </summary>
public sealed class ServerProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly System.Text.StringBuilder _output = new();

    private ServerProcess(Process process, Uri baseAddress, string dataDir)
    {
        _process = process;
        BaseAddress = baseAddress;
        DataDir = dataDir;
    }

    public Uri BaseAddress { get; }

    public string DataDir { get; }

    public const string AdminKey = TallyServer.AdminKey;

    public static async Task<ServerProcess> StartAsync(string store = "sqlite", params string[] arguments)
    {
        Cli.RequireProcessLayer();
        var dataDir = Directory.CreateTempSubdirectory("tally-cli-test-").FullName;
        var baseAddress = new Uri($"http://127.0.0.1:{TallyServer.FreePort()}");
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = AppContext.BaseDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in (string[])[Path.Combine(AppContext.BaseDirectory, "Tally.Server.dll"), "--urls", baseAddress.ToString().TrimEnd('/'),
            "--DataDir", dataDir, "--Store", store, "--AdminKey", AdminKey, "--RateLimit:PermitsPerSecond", "0", .. arguments])
        {
            start.ArgumentList.Add(argument);
        }
        foreach (var name in start.Environment.Keys.Where(key => key.StartsWith("TALLY_", StringComparison.OrdinalIgnoreCase)).ToList())
        {
            start.Environment.Remove(name);
        }
        start.Environment["Logging__LogLevel__Default"] = "Warning";
        start.Environment["DOTNET_gcServer"] = "0";
        var process = new Process { StartInfo = start };
        var server = new ServerProcess(process, baseAddress, dataDir);
        process.OutputDataReceived += (_, e) => server.Append(e.Data);
        process.ErrorDataReceived += (_, e) => server.Append(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        await server.WaitUntilReadyAsync();
        return server;
    }

    private void Append(string? line)
    {
        if (line is not null)
        {
            lock (_output)
            {
                _output.AppendLine(line);
            }
        }
    }

    private async Task WaitUntilReadyAsync()
    {
        using var http = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(2) };
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(30))
        {
            if (_process.HasExited)
            {
                break;
            }
            try
            {
                using var response = await http.GetAsync("/readyz");
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
        lock (_output)
        {
            throw new InvalidOperationException($"Tally did not become ready.\n{_output}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
        try
        {
            Directory.Delete(DataDir, recursive: true);
        }
        catch (IOException)
        {
            // Left to the system's temporary directory cleanup.
        }
    }
}
