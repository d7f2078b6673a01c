using System.Diagnostics;
using System.IO.Compression;
using Tally.Client.Tests.Infrastructure;

namespace Tally.Client.Tests;

/// <summary>dotnet pack of both projects, and the tool installed from the package alone, offline.</summary>
[Trait("Layer", "Process")]
public sealed class PackTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("tally-pack-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task TheClientPacksWithItsReadmeAndDocsAndTheToolInstallsOfflineAndRuns()
    {
        Cli.RequireProcessLayer();
        var packages = Path.Combine(_directory, "packages");
        foreach (var project in new[] { "src/Tally.Client/Tally.Client.csproj", "src/Tally.Cli/Tally.Cli.csproj" })
        {
            await RunAsync("dotnet", "pack", Path.Combine(Cli.RepositoryRoot, project), "-c", Cli.Configuration, "--no-build", "--nologo", "-o", packages);
        }

        using (var client = ZipFile.OpenRead(Path.Combine(packages, "Tally.Client.1.0.0.nupkg")))
        {
            var entries = client.Entries.Select(entry => entry.FullName).ToList();
            Assert.Contains("README.md", entries);
            Assert.Contains("lib/net10.0/Tally.Client.dll", entries);
            Assert.Contains("lib/net10.0/Tally.Client.xml", entries);
        }

        // Only the folder of packages as a source: the install must not need the network.
        var config = Path.Combine(_directory, "nuget.config");
        await File.WriteAllTextAsync(config, $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="local" value="{packages}" />
              </packageSources>
            </configuration>
            """);
        var tools = Path.Combine(_directory, "tools");
        await RunAsync("dotnet", "tool", "install", "--tool-path", tools, "--configfile", config, "Tally.Cli", "--version", "1.0.0");

        var help = await RunAsync(Path.Combine(tools, "tally"), "--help");
        Assert.Contains("tally [command] [options]", help, StringComparison.Ordinal);
    }

    private async Task<string> RunAsync(string program, params string[] arguments)
    {
        var start = new ProcessStartInfo(program)
        {
            WorkingDirectory = _directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        // A package cache of its own: the install cannot take a Tally.Cli cached by an earlier run, nor leave one behind.
        start.Environment["NUGET_PACKAGES"] = Path.Combine(_directory, "cache");
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await process.WaitForExitAsync(timeout.Token);
        Assert.True(process.ExitCode == 0, $"{program} {string.Join(' ', arguments)} exited {process.ExitCode}\n{await output}\n{await error}");
        return await output;
    }
}
