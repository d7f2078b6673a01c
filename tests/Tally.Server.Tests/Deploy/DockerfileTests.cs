using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Deploy;

/// <summary>
/// deploy/Dockerfile without a Docker engine: its build stage is replayed with the local SDK (the COPY lines
/// copy from the repository, honouring deploy/Dockerfile.dockerignore, into a temporary root; the RUN lines
/// run there), and the published server is then started the way the runtime stage describes (ENV, WORKDIR,
/// ENTRYPOINT), checked with the image's HEALTHCHECK command, and stopped with SIGTERM.
/// </summary>
[Trait("Layer", "Deploy")]
public class DockerfileTests
{
    private static readonly TimeSpan BuildTimeout = TimeSpan.FromMinutes(8);

    [Fact]
    public void DockerignoreKeepsBuildOutputAndSecretsOutButTheSourcesIn()
    {
        var ignore = new DockerIgnore(File.ReadAllText(DeployFiles.PathOf("deploy/Dockerfile.dockerignore")));
        Assert.True(ignore.IsIgnored("src/Tally.Server/bin/Release/net10.0/Tally.Server.dll"));
        Assert.True(ignore.IsIgnored("src/Tally.Server/obj/project.assets.json"));
        Assert.True(ignore.IsIgnored("deploy/secrets/tally_admin_key"));
        Assert.True(ignore.IsIgnored(".git/config"));
        Assert.False(ignore.IsIgnored("src/Tally.Server/Program.cs"));
        Assert.False(ignore.IsIgnored("deploy/healthcheck.sh"));
        Assert.False(ignore.IsIgnored("Directory.Packages.props"));
        Assert.True(ignore.IsIgnored("src/Tally.Server/node_modules/uplot/package.json"));
        Assert.True(ignore.IsIgnored("src/Tally.Server/wwwroot/lib/uPlot.esm.js"));
        Assert.False(ignore.IsIgnored("src/Tally.Server/package-lock.json"));
        Assert.False(ignore.IsIgnored("src/Tally.Server/wwwroot/app.js"));
    }

    [Fact]
    public async Task BuildStagePublishesAndTheRuntimeStageRunsHealthyAndStopsCleanly()
    {
        var stages = Dockerfile.Parse(await File.ReadAllTextAsync(DeployFiles.PathOf("deploy/Dockerfile")));
        var ignore = new DockerIgnore(await File.ReadAllTextAsync(DeployFiles.PathOf("deploy/Dockerfile.dockerignore")));
        Assert.True(stages.Count >= 2, "A multi-stage build is expected: an SDK stage and a runtime stage.");
        var build = stages.Single(s => s.Instructions.Any(i => i.Keyword == "RUN" && i.Arguments.StartsWith("dotnet publish", StringComparison.Ordinal)));
        var runtime = stages[^1];
        Assert.StartsWith("mcr.microsoft.com/dotnet/sdk:10.0", build.Image, StringComparison.Ordinal);
        Assert.StartsWith("mcr.microsoft.com/dotnet/aspnet:10.0", runtime.Image, StringComparison.Ordinal);

        using var root = new TempDirectory();
        var publishDirectory = await ReplayBuildStageAsync(build, root.Path, ignore);
        foreach (var file in (string[])["Tally.Server.dll", "Tally.Server.runtimeconfig.json", "appsettings.json"])
        {
            Assert.True(File.Exists(Path.Combine(publishDirectory, file)), $"The publish output has no {file}.");
        }
        Assert.True(File.Exists(Path.Combine(publishDirectory, "runtimes", "linux-x64", "native", "libe_sqlite3.so")),
            "The publish output has no SQLite native library for linux-x64.");
        foreach (var file in (string[])["index.html", "app.js", "lib/uPlot.esm.js"])
        {
            Assert.True(File.Exists(Path.Combine(publishDirectory, "wwwroot", file)), $"The publish output has no dashboard file wwwroot/{file}.");
        }

        await RunLikeTheRuntimeStageAsync(runtime, build, root.Path, publishDirectory, ignore);
    }

    /// <summary>Replays WORKDIR, COPY and RUN dotnet … into <paramref name="root"/>; returns the publish output folder.</summary>
    private static async Task<string> ReplayBuildStageAsync(Stage build, string root, DockerIgnore ignore)
    {
        var workdir = root;
        string? publishOutput = null;
        foreach (var instruction in build.Instructions)
        {
            switch (instruction.Keyword)
            {
                case "WORKDIR":
                    workdir = Resolve(root, workdir, instruction.Arguments);
                    Directory.CreateDirectory(workdir);
                    break;
                case "COPY":
                    var (flags, words) = instruction.Split();
                    Assert.True(flags.Count == 0, $"Line {instruction.Line}: the replay copies only from the build context.");
                    CopyFromContext(words, root, workdir, ignore, instruction.Line);
                    break;
                case "RUN" when instruction.Arguments.StartsWith("apt-get ", StringComparison.Ordinal):
                    // Build tools from the image's distribution: the replay uses this machine's (test.sh installs them).
                    Assert.Contains(" npm", instruction.Arguments, StringComparison.Ordinal);
                    var npm = await DeployFiles.RunAsync("npm", ["--version"], workdir, timeout: TimeSpan.FromSeconds(30));
                    Assert.True(npm.ExitCode == 0, npm.Describe("npm --version"));
                    break;
                case "RUN":
                    var command = instruction.Arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    Assert.True(command[0] == "dotnet",
                        $"Line {instruction.Line}: the replay runs only `dotnet …` commands in the build stage; extend DockerfileTests for: {instruction.Arguments}");
                    var arguments = command[1..].Select(word => word.StartsWith('/') ? Path.Combine(root, word.TrimStart('/')) : word).ToList();
                    if (command.Length > 1 && command[1] == "publish")
                    {
                        var output = Array.FindIndex(command, word => word is "-o" or "--output");
                        Assert.True(output > 0, $"Line {instruction.Line}: dotnet publish needs -o <folder>.");
                        publishOutput = command[output + 1];
                    }
                    var result = await DeployFiles.RunAsync(DeployFiles.DotnetHost(), arguments, workdir, IsolatedBuildEnvironment(), BuildTimeout);
                    Assert.True(result.ExitCode == 0, result.Describe(instruction.Arguments));
                    break;
                case "ENV" or "ARG" or "LABEL":
                    break;
                default:
                    Assert.Fail($"Line {instruction.Line}: the replay does not know {instruction.Keyword} in the build stage.");
                    break;
            }
        }
        Assert.NotNull(publishOutput);
        return Resolve(root, workdir, publishOutput);
    }

    private static async Task RunLikeTheRuntimeStageAsync(Stage runtime, Stage build, string root, string publishDirectory, DockerIgnore ignore)
    {
        // What the base image sets (mcr.microsoft.com/dotnet/aspnet), then the runtime stage's own ENV lines.
        var environment = new Dictionary<string, string>(StringComparer.Ordinal) { ["ASPNETCORE_HTTP_PORTS"] = "8080", ["APP_UID"] = "1654" };
        string[]? entrypoint = null, healthcheck = null;
        var exposed = new List<string>();
        var volumes = new List<string>();
        var copies = new Dictionary<string, string>(StringComparer.Ordinal); // image path -> repository path
        string? user = null;
        foreach (var instruction in runtime.Instructions)
        {
            switch (instruction.Keyword)
            {
                case "ENV":
                    foreach (var (key, value) in Dockerfile.EnvironmentOf(instruction))
                    {
                        environment[key] = value;
                    }
                    break;
                case "COPY":
                    var (flags, words) = instruction.Split();
                    if (flags.TryGetValue("from", out var from))
                    {
                        Assert.Equal(build.Name, from);
                        Assert.Equal(Path.GetFullPath(publishDirectory), Path.GetFullPath(Path.Combine(root, words[0].TrimStart('/'))));
                    }
                    else
                    {
                        Assert.True(words.Count == 2, $"Line {instruction.Line}: one file per COPY from the context, please.");
                        Assert.True(File.Exists(DeployFiles.PathOf(words[0])) && !ignore.IsIgnored(words[0]),
                            $"Line {instruction.Line}: {words[0]} is missing or excluded by the dockerignore file.");
                        copies[words[1]] = DeployFiles.PathOf(words[0]);
                    }
                    break;
                case "ENTRYPOINT":
                    entrypoint = Instruction.ExecForm(instruction.Arguments, instruction.Line);
                    break;
                case "HEALTHCHECK":
                    var cmd = instruction.Arguments.IndexOf("CMD ", StringComparison.Ordinal);
                    Assert.True(cmd >= 0, $"Line {instruction.Line}: HEALTHCHECK without CMD.");
                    healthcheck = Instruction.ExecForm(instruction.Arguments[(cmd + 4)..], instruction.Line);
                    break;
                case "EXPOSE":
                    exposed.AddRange(instruction.Split().Words);
                    break;
                case "VOLUME":
                    volumes.AddRange(Instruction.ExecForm(instruction.Arguments, instruction.Line));
                    break;
                case "USER":
                    user = instruction.Arguments;
                    break;
            }
        }

        Assert.Equal("$APP_UID", user);
        Assert.Equal(["8080"], exposed);
        Assert.Equal("http://+:8080", environment.GetValueOrDefault("ASPNETCORE_URLS"));
        Assert.Contains(environment.GetValueOrDefault("TALLY_DATADIR") ?? "(no TALLY_DATADIR)", volumes);
        Assert.NotNull(entrypoint);
        Assert.NotNull(healthcheck);
        Assert.Equal(["dotnet", "Tally.Server.dll"], entrypoint);
        Assert.Equal("/healthz", healthcheck[^1]);

        // The container's view, moved to this machine: its data volume is a temporary folder, its port a free one on loopback.
        var dataDir = Path.Combine(root, "data");
        Directory.CreateDirectory(dataDir);
        var port = FreePort();
        environment["ASPNETCORE_URLS"] = $"http://127.0.0.1:{port}";
        environment["TALLY_DATADIR"] = dataDir;

        var start = new ProcessStartInfo(DeployFiles.DotnetHost())
        {
            WorkingDirectory = publishDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in entrypoint[1..])
        {
            start.ArgumentList.Add(argument);
        }
        foreach (var name in start.Environment.Keys.Where(key => key.StartsWith("TALLY_", StringComparison.OrdinalIgnoreCase)
            || key.StartsWith("ASPNETCORE_", StringComparison.OrdinalIgnoreCase)).ToList())
        {
            start.Environment.Remove(name);
        }
        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }
        start.Environment["DOTNET_gcServer"] = "0";

        var log = new StringBuilder();
        using var tally = new System.Diagnostics.Process { StartInfo = start };
        tally.OutputDataReceived += (_, e) => { lock (log) { log.AppendLine(e.Data); } };
        tally.ErrorDataReceived += (_, e) => { lock (log) { log.AppendLine(e.Data); } };
        tally.Start();
        tally.BeginOutputReadLine();
        tally.BeginErrorReadLine();
        string Log()
        {
            lock (log)
            {
                return log.ToString();
            }
        }

        try
        {
            // The image's HEALTHCHECK command, its script taken from the repository.
            var probe = healthcheck.Select(word => copies.GetValueOrDefault(word, word)).ToArray();
            var checkEnvironment = new Dictionary<string, string?> { ["HEALTHCHECK_PORT"] = port.ToString(CultureInfo.InvariantCulture) };
            var healthy = false;
            var waited = Stopwatch.StartNew();
            ProcessResult? last = null;
            while (!healthy && waited.Elapsed < TimeSpan.FromSeconds(60) && !tally.HasExited)
            {
                last = await DeployFiles.RunAsync(probe[0], probe[1..], environment: checkEnvironment, timeout: TimeSpan.FromSeconds(10));
                healthy = last.ExitCode == 0;
                if (!healthy)
                {
                    await Task.Delay(200);
                }
            }
            Assert.True(healthy, $"The HEALTHCHECK never passed. Last check: {last?.Describe(string.Join(' ', healthcheck))}\n--- Tally ---\n{Log()}");

            var readiness = await DeployFiles.RunAsync(probe[0], [.. probe[1..^1], "/readyz"], environment: checkEnvironment, timeout: TimeSpan.FromSeconds(10));
            Assert.True(readiness.ExitCode == 0, readiness.Describe("healthcheck /readyz"));
            Assert.True(File.Exists(Path.Combine(dataDir, "tally.db")), "Tally did not create its data file in TALLY_DATADIR.");
            using (var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(10) })
            {
                using var dashboard = await http.GetAsync("/");
                Assert.True(dashboard.StatusCode == HttpStatusCode.OK && dashboard.Content.Headers.ContentType?.MediaType == "text/html",
                    $"GET / answered {(int)dashboard.StatusCode} {dashboard.Content.Headers.ContentType}, not the dashboard.");
            }
            Assert.DoesNotContain("Overriding HTTP_PORTS", Log(), StringComparison.Ordinal);

            // docker stop: SIGTERM, then a clean exit well within the grace period.
            using (var kill = System.Diagnostics.Process.Start("kill", ["-TERM", tally.Id.ToString(CultureInfo.InvariantCulture)]))
            {
                await kill.WaitForExitAsync();
            }
            using var exit = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            await tally.WaitForExitAsync(exit.Token);
            Assert.True(tally.ExitCode == 0, $"Tally exited with {tally.ExitCode} after SIGTERM.\n{Log()}");

            var afterwards = await DeployFiles.RunAsync(probe[0], probe[1..], environment: checkEnvironment, timeout: TimeSpan.FromSeconds(10));
            Assert.NotEqual(0, afterwards.ExitCode);
        }
        finally
        {
            if (!tally.HasExited)
            {
                tally.Kill(entireProcessTree: true);
                await tally.WaitForExitAsync();
            }
        }
    }

    /// <summary>COPY src… dest from the build context (the repository root) into the replay root.</summary>
    private static void CopyFromContext(List<string> words, string root, string workdir, DockerIgnore ignore, int line)
    {
        Assert.True(words.Count >= 2, $"Line {line}: COPY needs a source and a destination.");
        var sources = words[..^1];
        var destination = words[^1];
        var intoDirectory = sources.Count > 1 || destination.EndsWith('/') || destination is "." or "./";
        var target = Resolve(root, workdir, destination);
        foreach (var source in sources)
        {
            var from = DeployFiles.PathOf(source.TrimEnd('/'));
            if (Directory.Exists(from))
            {
                // A folder's contents, not the folder itself, as Docker does.
                foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
                {
                    var contextPath = Path.GetRelativePath(DeployFiles.RepositoryRoot, file).Replace(Path.DirectorySeparatorChar, '/');
                    if (!ignore.IsIgnored(contextPath))
                    {
                        CopyFile(file, Path.Combine(target, Path.GetRelativePath(from, file)));
                    }
                }
            }
            else
            {
                Assert.True(File.Exists(from), $"Line {line}: COPY {source}: no such file in the build context.");
                Assert.False(ignore.IsIgnored(source), $"Line {line}: COPY {source}: excluded by the dockerignore file.");
                CopyFile(from, intoDirectory ? Path.Combine(target, Path.GetFileName(from)) : target);
            }
        }
    }

    private static void CopyFile(string from, string to)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(to)!);
        File.Copy(from, to, overwrite: true);
    }

    /// <summary>An image path (absolute, or relative to the WORKDIR) inside the replay root.</summary>
    private static string Resolve(string root, string workdir, string path) =>
        Path.GetFullPath(path.StartsWith('/') ? Path.Combine(root, path.TrimStart('/')) : Path.Combine(workdir, path));

    /// <summary>
    /// A child build that leaves no server processes behind (they would keep the output pipes open) and does not
    /// inherit the MSBuild settings of the `dotnet test` that runs this.
    /// </summary>
    private static Dictionary<string, string?> IsolatedBuildEnvironment()
    {
        var environment = new Dictionary<string, string?>(StringComparer.Ordinal)
        {
            ["MSBUILDDISABLENODEREUSE"] = "1",
            ["DOTNET_CLI_USE_MSBUILD_SERVER"] = "0",
            ["UseSharedCompilation"] = "false",
            ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1",
            ["DOTNET_NOLOGO"] = "1",
            ["DOTNET_SKIP_FIRST_TIME_EXPERIENCE"] = "1",
        };
        foreach (var key in Environment.GetEnvironmentVariables().Keys.Cast<string>())
        {
            if (key.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase) && !environment.ContainsKey(key))
            {
                environment[key] = null;
            }
        }
        return environment;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
