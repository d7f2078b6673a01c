using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Tally.Server.Tests.Deploy;

/// <summary>
/// What the deployment files of every store shared by many instances must have, run against each store's files
/// (<see cref="PostgresDeployFilesTests"/>, <see cref="RedisDeployFilesTests"/>): deploy/compose.&lt;store&gt;.yaml with
/// three Tally replicas on the store behind nginx, and deploy/kubernetes/&lt;store&gt; with stateless replicas, autoscaled,
/// with a disruption budget. YamlFilesTests parses the files along with every other YAML file; the subclasses check the
/// store's own service and settings.
/// </summary>
public abstract class ClusterDeployFilesTests
{
    /// <summary>The value of TALLY_STORE; also the name of the store's compose service and of the files' folder and suffix.</summary>
    protected abstract string Store { get; }

    /// <summary>The variable that carries the connection or configuration string, e.g. TALLY_POSTGRES.</summary>
    protected abstract string ConnectionVariable { get; }

    /// <summary>The compose secret that holds that string.</summary>
    protected abstract string ComposeSecret { get; }

    /// <summary>The Kubernetes Secret (created by the user, outside the kustomization) and its key that hold that string.</summary>
    protected abstract (string Name, string Key) KubernetesSecret { get; }

    protected string ComposeFile => $"deploy/compose.{Store}.yaml";

    protected string KubernetesFolder => $"deploy/kubernetes/{Store}";

    [Fact]
    public async Task ComposeRunsThreeTallyReplicasOnTheStoreBehindNginx()
    {
        var compose = await DeployFiles.LoadSingleYamlAsync(ComposeFile);
        var services = compose["services"]!.AsObject();
        var tallies = services.Where(s => (string?)s.Value!["environment"]?["TALLY_STORE"] == Store).ToList();
        Assert.Equal(["tally-1", "tally-2", "tally-3"], tallies.Select(s => s.Key).Order(StringComparer.Ordinal));

        var secrets = compose["secrets"]!.AsObject();
        foreach (var (name, service) in tallies)
        {
            var environment = service!["environment"]!;
            Assert.Equal("sync", (string?)environment["TALLY_DURABILITY"]);
            // The connection string comes from a secret (put into the variable by the entrypoint), never inline.
            Assert.Null(environment[ConnectionVariable]);
            var usedSecrets = service["secrets"]!.AsArray().Select(s => (string)s!).ToList();
            Assert.Contains(ComposeSecret, usedSecrets);
            var entrypoint = string.Join(' ', service["entrypoint"]!.AsArray().Select(a => (string)a!));
            Assert.Contains($"/run/secrets/{ComposeSecret}", entrypoint, StringComparison.Ordinal);
            Assert.Contains($"{ConnectionVariable}=", entrypoint, StringComparison.Ordinal);
            foreach (var secret in usedSecrets)
            {
                Assert.True(secrets.ContainsKey(secret), $"{name} uses the secret {secret}, which the compose file does not define.");
            }

            // Starts only once the store is healthy; readiness (/readyz) is its health check.
            Assert.Equal("service_healthy", (string?)service["depends_on"]![Store]!["condition"]);
            Assert.Equal("/readyz", (string?)service["healthcheck"]!["test"]!.AsArray()[^1]);
            // Stateless: no named volume; DataDir is a tmpfs.
            Assert.DoesNotContain(service["volumes"]?.AsArray() ?? [], v => !((string)v!).StartsWith('.'));
            Assert.Contains((string)environment["TALLY_DATADIR"]!, service["tmpfs"]!.AsArray().Select(t => (string)t!));
            Assert.Null(service["ports"]);

            var grace = (string)service["stop_grace_period"]!;
            var shutdownSeconds = int.Parse((string)environment["TALLY_SHUTDOWNTIMEOUTSECONDS"]!, CultureInfo.InvariantCulture);
            Assert.True(grace.EndsWith('s') && int.Parse(grace.TrimEnd('s'), CultureInfo.InvariantCulture) > shutdownSeconds,
                $"{name}: stop_grace_period {grace} must exceed ShutdownTimeoutSeconds {shutdownSeconds}.");
            var build = service["build"]!;
            Assert.True(File.Exists(Path.Combine(DeployFiles.DeployDirectory, (string)build["context"]!, (string)build["dockerfile"]!)));
        }

        // The store keeps its data in a named volume, and has a health check for the replicas to wait on.
        var store = services[Store]!;
        Assert.NotNull(store["healthcheck"]?["test"]);
        Assert.Contains(store["volumes"]!.AsArray().Select(v => ((string)v!).Split(':')[0]), source => compose["volumes"]!.AsObject().ContainsKey(source));

        // nginx in front: the cluster configuration, published, started after every replica is ready.
        var nginx = services["nginx"]!;
        var mount = nginx["volumes"]!.AsArray().Select(v => (string)v!).Single();
        Assert.StartsWith("./nginx/tally-cluster.conf:", mount, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(DeployFiles.DeployDirectory, "nginx", "tally-cluster.conf")));
        Assert.NotEmpty(nginx["ports"]!.AsArray());
        foreach (var (name, _) in tallies)
        {
            Assert.Equal("service_healthy", (string?)nginx["depends_on"]![name]!["condition"]);
        }

        // The upstream lists exactly the replicas, on Tally's port.
        var config = await File.ReadAllTextAsync(DeployFiles.PathOf("deploy/nginx/tally-cluster.conf"));
        var upstream = Regex.Matches(config, @"^\s*server\s+([^\s;{]+:\d+)", RegexOptions.Multiline).Select(m => m.Groups[1].Value);
        Assert.Equal(tallies.Select(s => $"{s.Key}:8080").Order(StringComparer.Ordinal), upstream.Order(StringComparer.Ordinal));
    }

    /// <summary>
    /// Compose replaces <c>$NAME</c> and <c>${NAME}</c> anywhere in the file with the host's variables (empty when unset), so
    /// a shell variable meant for the container must be written <c>$$NAME</c>; a single <c>$</c> would silently become "".
    /// </summary>
    [Fact]
    public async Task ComposeWritesEveryDollarMeantForAContainerAsTwo()
    {
        var compose = await DeployFiles.LoadSingleYamlAsync(ComposeFile);
        var unescaped = Strings(compose).Where(text => text.Replace("$$", "", StringComparison.Ordinal).Contains('$')).ToList();
        Assert.True(unescaped.Count == 0, $"Compose would replace a $ with a host variable in:\n{string.Join("\n---\n", unescaped)}");
    }

    [Fact]
    public async Task KustomizationListsEveryManifestAndNoSecretOrVolumeClaim()
    {
        var kustomization = await DeployFiles.LoadSingleYamlAsync($"{KubernetesFolder}/kustomization.yaml");
        var resources = kustomization["resources"]!.AsArray().Select(r => (string)r!).ToList();
        var manifests = Directory.EnumerateFiles(DeployFiles.PathOf(KubernetesFolder), "*.yaml")
            .Select(path => Path.GetFileName(path)).Where(name => name != "kustomization.yaml").Order(StringComparer.Ordinal).ToList();
        Assert.Equal(manifests, resources.Order(StringComparer.Ordinal).ToList());
        Assert.Null(kustomization["namespace"]);

        var kinds = new List<string>();
        foreach (var resource in resources)
        {
            var manifest = await DeployFiles.LoadSingleYamlAsync($"{KubernetesFolder}/{resource}");
            kinds.Add((string)manifest["kind"]!);
            Assert.Null(manifest["metadata"]!["namespace"]);
        }
        // The Secrets are created outside the kustomization (so apply -k never overwrites them); no data volume, and no
        // StatefulSet: the store itself is the user's to run.
        Assert.Equal(["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"], kinds.Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task DeploymentIsStatelessRollingWithProbesRequestsAndTheConnectionStringFromASecret()
    {
        var deployment = await DeployFiles.LoadSingleYamlAsync($"{KubernetesFolder}/deployment.yaml");
        var config = (await DeployFiles.LoadSingleYamlAsync($"{KubernetesFolder}/configmap.yaml"))["data"]!;
        var spec = deployment["spec"]!;
        var pod = spec["template"]!["spec"]!;
        var container = pod["containers"]!.AsArray().Single()!;

        Assert.Equal(Store, (string?)config["TALLY_STORE"]);
        Assert.Equal("sync", (string?)config["TALLY_DURABILITY"]);
        Assert.Null(config[ConnectionVariable]);
        Assert.Equal("tally-config", (string?)container["envFrom"]![0]!["configMapRef"]!["name"]);

        // Many replicas, owned by the HPA; rolling updates that keep every ready pod until its successor is ready.
        Assert.Null(spec["replicas"]);
        Assert.Equal("RollingUpdate", (string?)spec["strategy"]!["type"]);
        Assert.Equal(0, (int)spec["strategy"]!["rollingUpdate"]!["maxUnavailable"]!);
        // No state in the pod: no claim, no hostPath.
        Assert.All(pod["volumes"]!.AsArray(), volume => Assert.NotNull(volume!["emptyDir"]));

        var connection = container["env"]!.AsArray().Single(e => (string?)e!["name"] == ConnectionVariable)!;
        Assert.Null(connection["value"]);
        Assert.Equal(KubernetesSecret, ((string)connection["valueFrom"]!["secretKeyRef"]!["name"]!, (string)connection["valueFrom"]!["secretKeyRef"]!["key"]!));
        Assert.False((bool?)connection["valueFrom"]!["secretKeyRef"]!["optional"] ?? false);

        Assert.Equal("/readyz", (string?)container["readinessProbe"]!["httpGet"]!["path"]);
        Assert.Equal("/healthz", (string?)container["livenessProbe"]!["httpGet"]!["path"]);
        Assert.Equal("/healthz", (string?)container["startupProbe"]!["httpGet"]!["path"]);
        Assert.Equal(8080, (int)container["ports"]!.AsArray().Single()!["containerPort"]!);

        // The HPA measures CPU utilization against the request: without one it cannot scale.
        Assert.False(string.IsNullOrEmpty((string?)container["resources"]!["requests"]!["cpu"]));
        Assert.False(string.IsNullOrEmpty((string?)container["resources"]!["requests"]!["memory"]));

        // Replicas spread over nodes.
        var podLabels = spec["template"]!["metadata"]!["labels"]!.AsObject();
        Assert.Contains(pod["topologySpreadConstraints"]!.AsArray(), c => (string?)c!["topologyKey"] == "kubernetes.io/hostname"
            && Selects(c["labelSelector"]!["matchLabels"]!.AsObject(), podLabels));

        var shutdownSeconds = int.Parse((string)config["TALLY_SHUTDOWNTIMEOUTSECONDS"]!, CultureInfo.InvariantCulture);
        Assert.True((int)pod["terminationGracePeriodSeconds"]! >= shutdownSeconds + 5);
        Assert.False((bool)pod["enableServiceLinks"]!);
        Assert.True((bool)pod["securityContext"]!["runAsNonRoot"]!);
        Assert.True((bool)container["securityContext"]!["readOnlyRootFilesystem"]!);
    }

    [Fact]
    public async Task AutoscalerTargetsTheDeploymentAndTheBudgetAndServiceSelectItsPods()
    {
        var deployment = await DeployFiles.LoadSingleYamlAsync($"{KubernetesFolder}/deployment.yaml");
        var podLabels = deployment["spec"]!["template"]!["metadata"]!["labels"]!.AsObject();
        Assert.True(Selects(deployment["spec"]!["selector"]!["matchLabels"]!.AsObject(), podLabels));

        var hpa = await DeployFiles.LoadSingleYamlAsync($"{KubernetesFolder}/hpa.yaml");
        Assert.Equal("autoscaling/v2", (string?)hpa["apiVersion"]);
        var target = hpa["spec"]!["scaleTargetRef"]!;
        Assert.Equal(("Deployment", "apps/v1", (string)deployment["metadata"]!["name"]!),
            ((string)target["kind"]!, (string)target["apiVersion"]!, (string)target["name"]!));
        Assert.Equal(3, (int)hpa["spec"]!["minReplicas"]!);
        Assert.Equal(10, (int)hpa["spec"]!["maxReplicas"]!);
        var metric = hpa["spec"]!["metrics"]!.AsArray().Single()!;
        Assert.Equal(("Resource", "cpu", "Utilization"), ((string)metric["type"]!, (string)metric["resource"]!["name"]!, (string)metric["resource"]!["target"]!["type"]!));

        var pdb = await DeployFiles.LoadSingleYamlAsync($"{KubernetesFolder}/pdb.yaml");
        Assert.Equal(2, (int)pdb["spec"]!["minAvailable"]!);
        Assert.Null(pdb["spec"]!["maxUnavailable"]);
        Assert.True(Selects(pdb["spec"]!["selector"]!["matchLabels"]!.AsObject(), podLabels), "The PodDisruptionBudget does not select Tally's pods.");
        Assert.True((int)pdb["spec"]!["minAvailable"]! < (int)hpa["spec"]!["minReplicas"]!, "minAvailable must be below minReplicas, or no drain could ever evict a pod.");

        var service = await DeployFiles.LoadSingleYamlAsync($"{KubernetesFolder}/service.yaml");
        Assert.True(Selects(service["spec"]!["selector"]!.AsObject(), podLabels));
        Assert.Equal("http", (string?)service["spec"]!["ports"]![0]!["targetPort"]);
    }

    /// <summary>A string of the compose file as the container sees it: compose turns <c>$$</c> into <c>$</c>.</summary>
    protected static string Interpolated(string text) => text.Replace("$$", "$", StringComparison.Ordinal);

    /// <summary>Every string value in a parsed YAML document, at any depth.</summary>
    private static IEnumerable<string> Strings(JsonNode? node) => node switch
    {
        JsonObject map => map.SelectMany(pair => Strings(pair.Value)),
        JsonArray list => list.SelectMany(Strings),
        JsonValue value when value.TryGetValue<string>(out var text) => [text],
        _ => [],
    };

    /// <summary>Whether a matchLabels selector selects pods with these labels.</summary>
    private static bool Selects(JsonObject matchLabels, JsonObject labels) =>
        matchLabels.Count > 0 && matchLabels.All(pair => labels.TryGetPropertyValue(pair.Key, out var value) && (string?)value == (string?)pair.Value);
}
