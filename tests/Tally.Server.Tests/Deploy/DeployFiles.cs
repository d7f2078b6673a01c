using System.ComponentModel;
using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;

namespace Tally.Server.Tests.Deploy;

/// <summary>The output of a finished child process.</summary>
internal sealed record ProcessResult(int ExitCode, string StandardOutput, string StandardError)
{
    public string Describe(string command) =>
        $"`{command}` exited with {ExitCode}.\n--- stdout ---\n{StandardOutput}\n--- stderr ---\n{StandardError}";
}

/// <summary>
/// The files under deploy/ and the external tools that check them. Tools the checks need are Debian
/// packages that test.sh installs; a missing one fails the test (never skips it), saying which package.
/// </summary>
internal static class DeployFiles
{
    /// <summary>The repository root: the first folder above the test binaries with Tally.sln and deploy/.</summary>
    public static string RepositoryRoot { get; } = FindRepositoryRoot();

    public static string DeployDirectory => Path.Combine(RepositoryRoot, "deploy");

    public static string PathOf(string relativePath) => Path.Combine(RepositoryRoot, relativePath.Replace('/', Path.DirectorySeparatorChar));

    /// <summary>Every YAML file under deploy/, relative to the repository root, with '/' separators.</summary>
    public static IReadOnlyList<string> YamlFiles() =>
        [.. Directory.EnumerateFiles(DeployDirectory, "*", SearchOption.AllDirectories)
            .Where(path => path.EndsWith(".yml", StringComparison.Ordinal) || path.EndsWith(".yaml", StringComparison.Ordinal))
            .Select(path => Path.GetRelativePath(RepositoryRoot, path).Replace(Path.DirectorySeparatorChar, '/'))
            .Order(StringComparer.Ordinal)];

    /// <summary>Debian's python3 (where the python3-yaml package installs PyYAML) if present, else python3 on PATH.</summary>
    public static string Python => File.Exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";

    /// <summary>Parses a YAML file (every document in it) with PyYAML's safe loader and returns the documents as JSON.</summary>
    public static async Task<JsonArray> LoadYamlAsync(string relativePath)
    {
        const string Script = "import sys, json, yaml; json.dump(list(yaml.safe_load_all(open(sys.argv[1], encoding='utf-8'))), sys.stdout, default=str)";
        var result = await RunToolAsync(Python, ["-c", Script, PathOf(relativePath)], "python3-yaml");
        RequirePyYaml(result);
        Assert.True(result.ExitCode == 0, $"{relativePath} is not valid YAML:\n{result.StandardError}");
        return JsonNode.Parse(result.StandardOutput)!.AsArray();
    }

    /// <summary>A YAML file that holds exactly one document.</summary>
    public static async Task<JsonNode> LoadSingleYamlAsync(string relativePath)
    {
        var documents = await LoadYamlAsync(relativePath);
        Assert.True(documents.Count == 1, $"{relativePath} holds {documents.Count} YAML documents; one is expected.");
        return documents[0]!;
    }

    /// <summary>Debian's nginx (package nginx), which test.sh installs.</summary>
    public static string Nginx => File.Exists("/usr/sbin/nginx") ? "/usr/sbin/nginx" : "nginx";

    /// <summary>
    /// Makes <paramref name="prefix"/> an nginx prefix that runs an http {}-context example from deploy/nginx: a minimal
    /// nginx.conf (pid, logs and temporary files inside the prefix, in the foreground) that includes a copy of the file
    /// in which each <c>server name:port</c> line of the upstream is rewritten by <paramref name="servers"/> (nginx
    /// resolves upstream names when it loads the configuration, and tally-1 … exist only on compose's network).
    /// Returns the configuration's path, for <c>nginx -p prefix -c …</c>.
    /// </summary>
    public static string WriteNginxPrefix(string prefix, string relativePath, IReadOnlyDictionary<string, string> servers)
    {
        var text = File.ReadAllText(PathOf(relativePath));
        foreach (var (from, to) in servers)
        {
            var line = $"server {from} ";
            Assert.True(text.Contains(line, StringComparison.Ordinal), $"{relativePath} has no upstream line `{line}…`.");
            text = text.Replace(line, $"server {to} ", StringComparison.Ordinal);
        }
        File.WriteAllText(Path.Combine(prefix, "site.conf"), text);
        Directory.CreateDirectory(Path.Combine(prefix, "tmp"));
        var temp = string.Join(' ', ((string[])["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]).Select(kind => $"{kind}_temp_path tmp/{kind};"));
        var config = Path.Combine(prefix, "nginx.conf");
        File.WriteAllText(config, $$"""
            daemon off;
            pid nginx.pid;
            error_log stderr;
            events { worker_connections 256; }
            http {
                {{temp}}
                access_log off;
                include site.conf;
            }
            """);
        return config;
    }

    /// <summary>Runs nginx (Debian package nginx) on a prefix made by <see cref="WriteNginxPrefix"/>.</summary>
    public static Task<ProcessResult> RunNginxAsync(string prefix, params string[] arguments) =>
        RunToolAsync(Nginx, ["-p", prefix + Path.DirectorySeparatorChar, "-c", "nginx.conf", "-e", "stderr", .. arguments], "nginx");

    /// <summary>Fails with the package to install when PyYAML is missing.</summary>
    public static void RequirePyYaml(ProcessResult result)
    {
        if (result.ExitCode != 0 && result.StandardError.Contains("No module named 'yaml'", StringComparison.Ordinal))
        {
            Assert.Fail($"PyYAML is missing for {Python}: test.sh must install the Debian package python3-yaml.\n{result.StandardError}");
        }
    }

    /// <summary>Runs a tool that a Debian package provides; fails naming the package if the tool is not installed.</summary>
    public static async Task<ProcessResult> RunToolAsync(string tool, IEnumerable<string> arguments, string debianPackage,
        string? workingDirectory = null, TimeSpan? timeout = null)
    {
        try
        {
            return await RunAsync(tool, arguments, workingDirectory, timeout: timeout);
        }
        catch (Win32Exception ex)
        {
            Assert.Fail($"{tool} cannot be started ({ex.Message}): test.sh must install the Debian package {debianPackage}.");
            throw;
        }
    }

    /// <summary>Runs a program to completion, capturing its output; kills it (and its children) after the timeout.</summary>
    public static async Task<ProcessResult> RunAsync(string fileName, IEnumerable<string> arguments, string? workingDirectory = null,
        IReadOnlyDictionary<string, string?>? environment = null, TimeSpan? timeout = null)
    {
        var start = new ProcessStartInfo(fileName)
        {
            WorkingDirectory = workingDirectory ?? RepositoryRoot,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        foreach (var (name, value) in environment ?? new Dictionary<string, string?>())
        {
            if (value is null)
            {
                start.Environment.Remove(name);
            }
            else
            {
                start.Environment[name] = value;
            }
        }

        using var process = new System.Diagnostics.Process { StartInfo = start };
        var output = new StringBuilder();
        var error = new StringBuilder();
        process.OutputDataReceived += (_, e) => Append(output, e.Data);
        process.ErrorDataReceived += (_, e) => Append(error, e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var cancel = new CancellationTokenSource(timeout ?? TimeSpan.FromMinutes(2));
        try
        {
            await process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
            Assert.Fail($"{fileName} {string.Join(' ', arguments)} did not finish within {timeout ?? TimeSpan.FromMinutes(2)}.\n{Read(output)}\n{Read(error)}");
        }
        return new ProcessResult(process.ExitCode, Read(output), Read(error));
    }

    /// <summary>The dotnet host running these tests, so child builds use the same SDK and runtime.</summary>
    public static string DotnetHost()
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

    private static void Append(StringBuilder target, string? line)
    {
        if (line is null)
        {
            return;
        }
        lock (target)
        {
            target.AppendLine(line);
        }
    }

    private static string Read(StringBuilder text)
    {
        lock (text)
        {
            return text.ToString();
        }
    }

    private static string FindRepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Tally.sln")) && Directory.Exists(Path.Combine(directory.FullName, "deploy")))
            {
                return directory.FullName;
            }
        }
        throw new InvalidOperationException($"No folder above {AppContext.BaseDirectory} holds Tally.sln and deploy/.");
    }
}
