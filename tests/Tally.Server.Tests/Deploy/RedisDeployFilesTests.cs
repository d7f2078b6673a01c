using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using StackExchange.Redis;
using Tally.Server.Storage.Redis;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Deploy;

/// <summary>
/// The deployment files for Store=redis: deploy/compose.redis.yaml (Redis, three Tally replicas, nginx) and
/// deploy/kubernetes/redis (stateless replicas, autoscaled, with a disruption budget; no Redis). What every shared
/// store's files must have is checked by <see cref="ClusterDeployFilesTests"/>; these tests check Redis's service, and
/// run it: the compose file's Redis entrypoint and health check, and the replicas' entrypoint, on Debian's redis-server
/// (Redis 7.0, the oldest Tally supports) and the built server, with secrets made as deploy/secrets/README.md says.
/// </summary>
[Trait("Layer", "Deploy")]
public class RedisDeployFilesTests : ClusterDeployFilesTests
{
    protected override string Store => "redis";

    protected override string ConnectionVariable => "TALLY_REDIS";

    protected override string ComposeSecret => "tally_redis";

    protected override (string Name, string Key) KubernetesSecret => ("tally-redis", "configuration-string");

    [Fact]
    public async Task ComposeRedisIsPinnedPersistentAndTakesItsPasswordFromASecret()
    {
        var compose = await DeployFiles.LoadSingleYamlAsync(ComposeFile);
        var redis = compose["services"]!["redis"]!;

        // The official image, a Redis 7 series named by its tag (never `latest` or a bare `redis`).
        Assert.Matches(@"^redis:7\.\d+(\.\d+)?$", (string)redis["image"]!);

        // Every setting Tally's promise rests on is on the command line, and the data directory is the named volume.
        var script = RedisScript(redis);
        foreach (var flag in (string[])["--appendonly yes", "--appendfsync always", "--no-appendfsync-on-rewrite no", "--maxmemory-policy noeviction", "--dir /data"])
        {
            Assert.Contains(flag, script, StringComparison.Ordinal);
        }
        Assert.Matches(@"--maxmemory [1-9]\d*(kb|mb|gb)?\b", script);
        Assert.Contains("redis-data:/data", redis["volumes"]!.AsArray().Select(v => (string)v!));

        // The password: from the secret, read by the entrypoint; never in the file, the environment or a command line.
        Assert.Equal(["redis_password"], redis["secrets"]!.AsArray().Select(s => (string)s!));
        Assert.True(compose["secrets"]!["redis_password"]!["file"] is not null);
        Assert.Null(redis["environment"]);
        Assert.Null(redis["command"]);
        Assert.Contains("/run/secrets/redis_password", script, StringComparison.Ordinal);
        Assert.DoesNotContain("--requirepass", script, StringComparison.Ordinal);
        Assert.Matches(@"(?m)^requirepass \$pw$", script);

        // Health: PING with the password, the answer checked (redis-cli exits 0 even on an error answer).
        var health = HealthCheck(redis);
        Assert.Contains("REDISCLI_AUTH=", health, StringComparison.Ordinal);
        Assert.Contains("redis-cli", health, StringComparison.Ordinal);
        Assert.Contains("PONG", health, StringComparison.Ordinal);

        // A Redis Tally would refuse stops the replicas at start: RedisAllowDataLoss is left at false.
        foreach (var replica in (string[])["tally-1", "tally-2", "tally-3"])
        {
            var allow = (string?)compose["services"]![replica]!["environment"]!["TALLY_REDISALLOWDATALOSS"];
            Assert.True(allow is null or "false", $"{replica} sets TALLY_REDISALLOWDATALOSS={allow}.");
        }
    }

    /// <summary>
    /// The compose file's commands, run for real: the secrets made by deploy/secrets/README.md's recipe, Redis started by
    /// the redis service's own entrypoint script (on Redis 7.0, so the flags are valid for the oldest Redis Tally supports),
    /// its health check passing with the password and failing without it, Tally's start-up check accepting that Redis,
    /// and a replica started by its own entrypoint script from the secrets, ready by its compose health check and
    /// counting into Redis. Only what cannot run here is changed: the secrets and data directories, and the addresses
    /// (127.0.0.1 and free ports instead of the compose network's redis:6379 and :8080).
    /// </summary>
    [Fact]
    public async Task ComposeCommandsStartRedisWithTallysSettingsAndAReplicaOnItFromTheReadmesSecrets()
    {
        Assert.True(File.Exists(RedisServer.Binary), $"{RedisServer.Binary} is missing: test.sh must install the Debian package redis-server.");
        var compose = await DeployFiles.LoadSingleYamlAsync(ComposeFile);
        var redis = compose["services"]!["redis"]!;
        using var root = new TempDirectory();
        var secrets = await MakeSecretsAsync(root.Path);
        var password = await File.ReadAllTextAsync(Path.Combine(secrets, "redis_password"));
        Assert.Matches("^[0-9a-f]{32,}$", password);

        // The configuration string names compose's `redis` service; here Redis listens on a free port of 127.0.0.1.
        var port = FreePort();
        var tallyRedis = Path.Combine(secrets, "tally_redis");
        var configuration = (await File.ReadAllTextAsync(tallyRedis)).TrimEnd('\n');
        Assert.Equal($"redis:6379,password={password}", configuration);
        configuration = configuration.Replace("redis:6379,", $"127.0.0.1:{port},", StringComparison.Ordinal);
        await File.WriteAllTextAsync(tallyRedis, configuration + "\n");

        var data = Directory.CreateDirectory(Path.Combine(root.Path, "data")).FullName;
        var script = Substitute(RedisScript(redis),
            ("/run/secrets/", secrets + "/"),
            ("--dir /data ", $"--dir {data} "),
            ("exec redis-server ", $"exec {RedisServer.Binary} --port {port} --bind 127.0.0.1 "));
        await using var server = Child.Start("/bin/sh", ["-c", script]);

        // The health check as compose runs it (CMD-SHELL: /bin/sh -c), pointed at this Redis.
        var health = Substitute(HealthCheck(redis), ("-h 127.0.0.1 ", $"-h 127.0.0.1 -p {port} "));
        var healthy = await WaitUntilAsync(async () => (await RunShellAsync(Substitute(health, ("/run/secrets/", secrets + "/")))).ExitCode == 0,
            server, TimeSpan.FromSeconds(30));
        Assert.True(healthy, $"The redis health check never passed.\n{server.Describe()}");
        var wrong = Directory.CreateDirectory(Path.Combine(root.Path, "wrong")).FullName;
        await File.WriteAllTextAsync(Path.Combine(wrong, "redis_password"), "not-the-password");
        Assert.NotEqual(0, (await RunShellAsync(Substitute(health, ("/run/secrets/", wrong + "/")))).ExitCode);
        Assert.StartsWith("-NOAUTH", await RawCommandAsync(port, "PING"), StringComparison.Ordinal);

        // Tally's own connection and start-up check accept this Redis; and it is the Redis the flags describe.
        using (var connection = RedisStoreRegistration.Connect(configuration))
        {
            var database = connection.GetDatabase();
            Assert.Null(await RedisPersistence.CheckAsync(database));
            Assert.Equal("no", await ConfigAsync(database, "no-appendfsync-on-rewrite"));
            Assert.Equal("", await ConfigAsync(database, "save"));
            Assert.Equal(data, await ConfigAsync(database, "dir"));
            Assert.Equal(password, await ConfigAsync(database, "requirepass"));
            Assert.True(long.Parse(await ConfigAsync(database, "maxmemory"), CultureInfo.InvariantCulture) >= 64L << 20);
        }

        // A replica, started by its entrypoint script with the replicas' environment, as in the image (WORKDIR /app).
        var replica = compose["services"]!["tally-1"]!;
        var tallyPort = FreePort();
        var environment = replica["environment"]!.AsObject().ToDictionary(pair => pair.Key, pair => (string?)pair.Value);
        environment["TALLY_DATADIR"] = Directory.CreateDirectory(Path.Combine(root.Path, "tally-data")).FullName; // a tmpfs in compose
        environment["ASPNETCORE_URLS"] = $"http://127.0.0.1:{tallyPort}"; // the image: http://+:8080
        environment["ASPNETCORE_HTTP_PORTS"] = "";
        if (DeployFiles.DotnetHost() is var host && Path.IsPathRooted(host))
        {
            // The entrypoint runs `dotnet` from PATH: the one running these tests.
            environment["PATH"] = $"{Path.GetDirectoryName(host)}:{Environment.GetEnvironmentVariable("PATH")}";
        }
        environment["DOTNET_gcServer"] = "0";
        var entrypoint = replica["entrypoint"]!.AsArray().Select(word => Interpolated((string)word!)).ToArray();
        Assert.Equal(["bash", "-c"], entrypoint[..2]);
        entrypoint[2] = Substitute(entrypoint[2], ("/run/secrets/", secrets + "/"));
        await using var tally = Child.Start(entrypoint[0], entrypoint[1..], environment, AppContext.BaseDirectory);

        // Its compose health check (/readyz through deploy/healthcheck.sh, the image's tally-healthcheck).
        var probe = replica["healthcheck"]!["test"]!.AsArray().Select(word => (string)word!).ToArray();
        Assert.Equal(["CMD", "bash", "/usr/local/bin/tally-healthcheck"], probe[..3]);
        var probeEnvironment = new Dictionary<string, string?> { ["HEALTHCHECK_PORT"] = tallyPort.ToString(CultureInfo.InvariantCulture) };
        var ready = await WaitUntilAsync(async () =>
            (await DeployFiles.RunAsync(probe[1], [DeployFiles.PathOf("deploy/healthcheck.sh"), .. probe[3..]], environment: probeEnvironment, timeout: TimeSpan.FromSeconds(10))).ExitCode == 0,
            tally, TimeSpan.FromSeconds(60));
        Assert.True(ready, $"The replica never became ready.\n{tally.Describe()}\n{server.Describe()}");

        // The admin key from the secret works, and the change is in Redis.
        var adminKey = (await File.ReadAllTextAsync(Path.Combine(secrets, "tally_admin_key"))).Trim();
        using (var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{tallyPort}"), Timeout = TimeSpan.FromSeconds(15) })
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", adminKey);
            using var response = await client.PostAsync("/counters/deploy-check/increment", content: null);
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"{response.StatusCode}: {await response.Content.ReadAsStringAsync()}\n{tally.Describe()}");
        }
        using (var connection = RedisStoreRegistration.Connect(configuration))
        {
            Assert.Equal("1", (string?)await connection.GetDatabase().HashGetAsync("tally:c:deploy-check", "v"));
        }

        // docker stop: SIGTERM to each PID 1 (the entrypoints exec Tally and Redis), clean exits.
        Assert.Equal(0, await tally.TerminateAsync(TimeSpan.FromSeconds(20)));
        Assert.Equal(0, await server.TerminateAsync(TimeSpan.FromSeconds(30)));
        var files = Directory.EnumerateFiles(Path.Combine(data, "appendonlydir")).ToList();
        Assert.Contains(files, file => file.EndsWith(".aof.manifest", StringComparison.Ordinal));
        if (!OperatingSystem.IsWindows())
        {
            // umask 0077, as the image's own entrypoint sets it: the data is readable by Redis's user only.
            foreach (var file in files)
            {
                var shared = File.GetUnixFileMode(file) & (UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite);
                Assert.True(shared == UnixFileMode.None, $"{file} is open to others: {shared}.");
            }
        }
    }

    [Fact]
    public async Task KubernetesRunsNoRedisAndTallyRefusesARedisThatLosesChanges()
    {
        var config = (await DeployFiles.LoadSingleYamlAsync($"{KubernetesFolder}/configmap.yaml"))["data"]!;
        Assert.Null(config["TALLY_REDISALLOWDATALOSS"]);

        // Redis is the user's to run: no manifest here runs an image but Tally's.
        var kustomization = await DeployFiles.LoadSingleYamlAsync($"{KubernetesFolder}/kustomization.yaml");
        foreach (var resource in kustomization["resources"]!.AsArray().Select(r => (string)r!))
        {
            var manifest = await DeployFiles.LoadSingleYamlAsync($"{KubernetesFolder}/{resource}");
            var images = Descendants(manifest).Where(pair => pair.Key == "image").Select(pair => (string?)pair.Value).ToList();
            Assert.All(images, image => Assert.Equal("tally", image));
        }
    }

    /// <summary>The redis service's entrypoint script (<c>sh -c script</c>), as the container sees it.</summary>
    private static string RedisScript(JsonNode redis)
    {
        var entrypoint = redis["entrypoint"]!.AsArray().Select(word => Interpolated((string)word!)).ToArray();
        Assert.Equal(["sh", "-c"], entrypoint[..2]);
        Assert.Equal(3, entrypoint.Length);
        return entrypoint[2];
    }

    /// <summary>The redis service's health check command (<c>CMD-SHELL command</c>), as the container sees it.</summary>
    private static string HealthCheck(JsonNode redis)
    {
        var test = redis["healthcheck"]!["test"]!.AsArray().Select(word => Interpolated((string)word!)).ToArray();
        Assert.Equal("CMD-SHELL", test[0]);
        return test[1];
    }

    /// <summary>Runs the "Redis mode" recipe of deploy/secrets/README.md in a copy of its layout; returns the secrets folder.</summary>
    private static async Task<string> MakeSecretsAsync(string root)
    {
        var readme = await File.ReadAllTextAsync(DeployFiles.PathOf("deploy/secrets/README.md"));
        var recipe = Regex.Match(readme, @"^## Redis mode[^\n]*\n.*?^```sh\n(.*?)^```", RegexOptions.Multiline | RegexOptions.Singleline);
        Assert.True(recipe.Success, "deploy/secrets/README.md has no ```sh block under \"## Redis mode\".");
        var secrets = Directory.CreateDirectory(Path.Combine(root, "deploy", "secrets")).FullName;
        var result = await DeployFiles.RunToolAsync("/bin/sh", ["-ec", recipe.Groups[1].Value], "dash", workingDirectory: root);
        Assert.True(result.ExitCode == 0, result.Describe("the Redis recipe of deploy/secrets/README.md"));
        foreach (var name in (string[])["tally_admin_key", "redis_password", "tally_redis"])
        {
            Assert.True(new FileInfo(Path.Combine(secrets, name)) is { Exists: true, Length: > 0 }, $"The recipe wrote no {name}.");
        }
        return secrets;
    }

    private static string Substitute(string text, params (string From, string To)[] replacements)
    {
        foreach (var (from, to) in replacements)
        {
            Assert.True(text.Contains(from, StringComparison.Ordinal), $"Expected `{from}` in:\n{text}");
            text = text.Replace(from, to, StringComparison.Ordinal);
        }
        return text;
    }

    private static Task<ProcessResult> RunShellAsync(string command) =>
        DeployFiles.RunAsync("/bin/sh", ["-c", command], timeout: TimeSpan.FromSeconds(10));

    /// <summary>Polls until the condition holds; false after the timeout or when the process it waits on has exited.</summary>
    private static async Task<bool> WaitUntilAsync(Func<Task<bool>> condition, Child process, TimeSpan timeout)
    {
        var waited = Stopwatch.StartNew();
        while (waited.Elapsed < timeout && !process.HasExited)
        {
            if (await condition())
            {
                return true;
            }
            await Task.Delay(100);
        }
        return false;
    }

    private static async Task<string> ConfigAsync(IDatabase database, string name)
    {
        var reply = (RedisResult[])(await database.ExecuteAsync("CONFIG", "GET", name))!;
        Assert.Equal(2, reply.Length);
        return (string)reply[1]!;
    }

    /// <summary>One inline command on a connection of its own, without a password; the first line of the answer.</summary>
    private static async Task<string> RawCommandAsync(int port, string command)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, port);
        var stream = client.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(command + "\r\n"));
        using var reader = new StreamReader(stream, Encoding.ASCII);
        return await reader.ReadLineAsync() ?? "(connection closed)";
    }

    private static IEnumerable<KeyValuePair<string, JsonNode?>> Descendants(JsonNode? node) => node switch
    {
        JsonObject map => map.SelectMany(pair => Descendants(pair.Value).Prepend(pair)),
        JsonArray list => list.SelectMany(Descendants),
        _ => [],
    };

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>A child process that runs in the background, its output kept for a failure message; killed on dispose.</summary>
    private sealed class Child : IAsyncDisposable
    {
        private readonly System.Diagnostics.Process _process;
        private readonly StringBuilder _output = new();

        private Child(System.Diagnostics.Process process) => _process = process;

        public bool HasExited => _process.HasExited;

        /// <summary>Starts a program with only the given TALLY_* and ASPNETCORE_* variables (none inherited).</summary>
        public static Child Start(string fileName, IEnumerable<string> arguments, IReadOnlyDictionary<string, string?>? environment = null, string? workingDirectory = null)
        {
            var start = new ProcessStartInfo(fileName)
            {
                WorkingDirectory = workingDirectory ?? DeployFiles.RepositoryRoot,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            foreach (var argument in arguments)
            {
                start.ArgumentList.Add(argument);
            }
            foreach (var name in start.Environment.Keys.Where(key => key.StartsWith("TALLY_", StringComparison.OrdinalIgnoreCase)
                || key.StartsWith("ASPNETCORE_", StringComparison.OrdinalIgnoreCase)).ToList())
            {
                start.Environment.Remove(name);
            }
            foreach (var (name, value) in environment ?? new Dictionary<string, string?>())
            {
                start.Environment[name] = value;
            }
            var child = new Child(new System.Diagnostics.Process { StartInfo = start });
            child._process.OutputDataReceived += (_, e) => child.Append(e.Data);
            child._process.ErrorDataReceived += (_, e) => child.Append(e.Data);
            child._process.Start();
            child._process.BeginOutputReadLine();
            child._process.BeginErrorReadLine();
            return child;
        }

        /// <summary>SIGTERM, as docker stop sends to the container's PID 1; the exit code (fails after the timeout).</summary>
        public async Task<int> TerminateAsync(TimeSpan timeout)
        {
            using (var kill = System.Diagnostics.Process.Start("kill", ["-TERM", _process.Id.ToString(CultureInfo.InvariantCulture)]))
            {
                await kill.WaitForExitAsync();
            }
            using var cancel = new CancellationTokenSource(timeout);
            try
            {
                await _process.WaitForExitAsync(cancel.Token);
            }
            catch (OperationCanceledException)
            {
                Assert.Fail($"{_process.StartInfo.FileName} did not exit within {timeout} of SIGTERM.\n{Describe()}");
            }
            return _process.ExitCode;
        }

        public string Describe()
        {
            lock (_output)
            {
                return $"--- {_process.StartInfo.FileName} output ---\n{_output}";
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
    }
}
