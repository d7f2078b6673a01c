using System.Diagnostics;

namespace Tally.Client.Tests.Infrastructure;

/// <summary>Runs the built tool, <c>dotnet tally.dll …</c>, from the CLI project's own output, as an installed tool runs.</summary>
public static class Cli
{
    public sealed record Result(int ExitCode, string Output, string Error)
    {
        public override string ToString() => $"exit {ExitCode}\n--- stdout ---\n{Output}\n--- stderr ---\n{Error}";
    }

    /// <summary>The repository root (where Tally.sln is).</summary>
    public static string RepositoryRoot { get; } = FindRoot();

    /// <summary>src/Tally.Cli/bin/&lt;the tests' configuration&gt;/net10.0/tally.dll.</summary>
    public static string ToolAssembly { get; } = Path.Combine(RepositoryRoot, "src", "Tally.Cli", "bin", Configuration, "net10.0", "tally.dll");

    public static string Configuration => new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar)).Parent!.Name;

    /// <summary>test.sh names the layer it runs; the fast one must not start processes.</summary>
    public static void RequireProcessLayer()
    {
        if (Environment.GetEnvironmentVariable("TALLYTESTS_LAYER") is "fast")
        {
            throw new InvalidOperationException("This test starts processes but runs in the fast layer: give it [Trait(\"Layer\", \"Process\")].");
        }
    }

    /// <summary>Runs tally with <paramref name="arguments"/>; TALLY_URL and TALLY_KEY only as <paramref name="environment"/> gives them.</summary>
    public static async Task<Result> RunWithAsync(IReadOnlyDictionary<string, string>? environment, params string[] arguments)
    {
        RequireProcessLayer();
        if (!File.Exists(ToolAssembly))
        {
            throw new FileNotFoundException($"The tool is not built; build the solution first. Looked for {ToolAssembly}.");
        }
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(ToolAssembly);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        start.Environment.Remove("TALLY_URL");
        start.Environment.Remove("TALLY_KEY");
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }
        using var process = Process.Start(start)!;
        process.StandardInput.Close();
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"tally {string.Join(' ', arguments)} did not end within a minute.");
        }
        return new Result(process.ExitCode, await output, await error);
    }

    public static Task<Result> RunAsync(ServerProcess server, params string[] arguments) =>
        RunWithAsync(new Dictionary<string, string> { ["TALLY_URL"] = server.BaseAddress.ToString(), ["TALLY_KEY"] = ServerProcess.AdminKey }, arguments);

    private static string FindRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Tally.sln")))
            {
                return directory.FullName;
            }
        }
        throw new DirectoryNotFoundException($"No Tally.sln above {AppContext.BaseDirectory}.");
    }
}
