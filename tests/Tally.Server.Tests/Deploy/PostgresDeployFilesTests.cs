using System.Globalization;
using System.Text.Json.Nodes;

namespace Tally.Server.Tests.Deploy;

/// <summary>
/// The deployment files for Store=postgres: deploy/compose.postgres.yaml (PostgreSQL, three Tally replicas, nginx)
/// and deploy/kubernetes/postgres (stateless replicas, autoscaled, with a disruption budget). YamlFilesTests
/// parses them along with every other YAML file; these tests check that they agree with each other and with
/// what Tally needs.
/// </summary>
[Trait("Layer", "Deploy")]
public class PostgresDeployFilesTests
{
    private const string Compose = "deploy/compose.postgres.yaml";
    private const string Kubernetes = "deploy/kubernetes/postgres";

    [Fact]
    public async Task ComposeRunsThreeTallyReplicasOnPostgresBehindNginx()
    {
        var compose = await DeployFiles.LoadSingleYamlAsync(Compose);
        var services = compose["services"]!.AsObject();
        var tallies = services.Where(s => (string?)s.Value!["environment"]?["TALLY_STORE"] == "postgres").ToList();
        Assert.Equal(["tally-1", "tally-2", "tally-3"], tallies.Select(s => s.Key).Order(StringComparer.Ordinal));

        var secrets = compose["secrets"]!.AsObject();
        foreach (var (name, service) in tallies)
        {
            var environment = service!["environment"]!;
            Assert.Equal("sync", (string?)environment["TALLY_DURABILITY"]);
            // The connection string comes from a secret (put into TALLY_POSTGRES by the entrypoint), never inline.
            Assert.Null(environment["TALLY_POSTGRES"]);
            var usedSecrets = service["secrets"]!.AsArray().Select(s => (string)s!).ToList();
            Assert.Contains("tally_postgres", usedSecrets);
            Assert.Contains("/run/secrets/tally_postgres", string.Join(' ', service["entrypoint"]!.AsArray().Select(a => (string)a!)), StringComparison.Ordinal);
            Assert.Contains("TALLY_POSTGRES=", string.Join(' ', service["entrypoint"]!.AsArray().Select(a => (string)a!)), StringComparison.Ordinal);
            foreach (var secret in usedSecrets)
            {
                Assert.True(secrets.ContainsKey(secret), $"{name} uses the secret {secret}, which the compose file does not define.");
            }

            // Starts only once PostgreSQL is healthy; readiness (/readyz) is its health check.
            Assert.Equal("service_healthy", (string?)service["depends_on"]!["postgres"]!["condition"]);
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

        var postgres = services["postgres"]!;
        Assert.StartsWith("postgres:15", (string)postgres["image"]!, StringComparison.Ordinal);
        Assert.Contains("pg_isready", string.Join(' ', postgres["healthcheck"]!["test"]!.AsArray().Select(a => (string)a!)), StringComparison.Ordinal);
        Assert.Contains("synchronous_commit=on", postgres["command"]!.AsArray().Select(a => (string)a!));
        var dataVolume = postgres["volumes"]!.AsArray().Select(v => (string)v!).Single(v => v.EndsWith(":/var/lib/postgresql/data", StringComparison.Ordinal));
        Assert.True(compose["volumes"]!.AsObject().ContainsKey(dataVolume.Split(':')[0]), $"{dataVolume} is not a named volume.");
        Assert.Equal("/run/secrets/postgres_password", (string?)postgres["environment"]!["POSTGRES_PASSWORD_FILE"]);

        // max_connections leaves room for every replica's pool (Maximum Pool Size in deploy/secrets/README.md).
        var maxConnections = int.Parse(postgres["command"]!.AsArray().Select(a => (string)a!)
            .Single(a => a.StartsWith("max_connections=", StringComparison.Ordinal)).Split('=')[1], CultureInfo.InvariantCulture);
        var readme = await File.ReadAllTextAsync(DeployFiles.PathOf("deploy/secrets/README.md"));
        var pool = int.Parse(System.Text.RegularExpressions.Regex.Match(readme, @"Maximum Pool Size=(\d+)").Groups[1].Value, CultureInfo.InvariantCulture);
        Assert.True(tallies.Count * pool + 10 <= maxConnections, $"{tallies.Count} replicas x pool {pool} leave too little of max_connections {maxConnections}.");

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
        var upstream = System.Text.RegularExpressions.Regex.Matches(config, @"^\s*server\s+([^\s;{]+:\d+)", System.Text.RegularExpressions.RegexOptions.Multiline)
            .Select(m => m.Groups[1].Value);
        Assert.Equal(tallies.Select(s => $"{s.Key}:8080").Order(StringComparer.Ordinal), upstream.Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task KustomizationListsEveryManifestAndNoSecretOrVolumeClaim()
    {
        var kustomization = await DeployFiles.LoadSingleYamlAsync($"{Kubernetes}/kustomization.yaml");
        var resources = kustomization["resources"]!.AsArray().Select(r => (string)r!).ToList();
        var manifests = Directory.EnumerateFiles(DeployFiles.PathOf(Kubernetes), "*.yaml")
            .Select(path => Path.GetFileName(path)).Where(name => name != "kustomization.yaml").Order(StringComparer.Ordinal).ToList();
        Assert.Equal(manifests, resources.Order(StringComparer.Ordinal).ToList());
        Assert.Null(kustomization["namespace"]);

        var kinds = new List<string>();
        foreach (var resource in resources)
        {
            var manifest = await DeployFiles.LoadSingleYamlAsync($"{Kubernetes}/{resource}");
            kinds.Add((string)manifest["kind"]!);
            Assert.Null(manifest["metadata"]!["namespace"]);
        }
        // The Secrets are created outside the kustomization (so apply -k never overwrites them); no data volume.
        Assert.Equal(["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"], kinds.Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task DeploymentIsStatelessRollingWithProbesRequestsAndTheConnectionStringFromASecret()
    {
        var deployment = await DeployFiles.LoadSingleYamlAsync($"{Kubernetes}/deployment.yaml");
        var config = (await DeployFiles.LoadSingleYamlAsync($"{Kubernetes}/configmap.yaml"))["data"]!;
        var spec = deployment["spec"]!;
        var pod = spec["template"]!["spec"]!;
        var container = pod["containers"]!.AsArray().Single()!;

        Assert.Equal("postgres", (string?)config["TALLY_STORE"]);
        Assert.Equal("sync", (string?)config["TALLY_DURABILITY"]);
        Assert.Null(config["TALLY_POSTGRES"]);
        Assert.Equal("tally-config", (string?)container["envFrom"]![0]!["configMapRef"]!["name"]);

        // Many replicas, owned by the HPA; rolling updates that keep every ready pod until its successor is ready.
        Assert.Null(spec["replicas"]);
        Assert.Equal("RollingUpdate", (string?)spec["strategy"]!["type"]);
        Assert.Equal(0, (int)spec["strategy"]!["rollingUpdate"]!["maxUnavailable"]!);
        // No state in the pod: no claim, no hostPath.
        Assert.All(pod["volumes"]!.AsArray(), volume => Assert.NotNull(volume!["emptyDir"]));

        var connection = container["env"]!.AsArray().Single(e => (string?)e!["name"] == "TALLY_POSTGRES")!;
        Assert.Null(connection["value"]);
        Assert.Equal("connection-string", (string?)connection["valueFrom"]!["secretKeyRef"]!["key"]);
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
        var deployment = await DeployFiles.LoadSingleYamlAsync($"{Kubernetes}/deployment.yaml");
        var podLabels = deployment["spec"]!["template"]!["metadata"]!["labels"]!.AsObject();
        Assert.True(Selects(deployment["spec"]!["selector"]!["matchLabels"]!.AsObject(), podLabels));

        var hpa = await DeployFiles.LoadSingleYamlAsync($"{Kubernetes}/hpa.yaml");
        Assert.Equal("autoscaling/v2", (string?)hpa["apiVersion"]);
        var target = hpa["spec"]!["scaleTargetRef"]!;
        Assert.Equal(("Deployment", "apps/v1", (string)deployment["metadata"]!["name"]!),
            ((string)target["kind"]!, (string)target["apiVersion"]!, (string)target["name"]!));
        Assert.Equal(3, (int)hpa["spec"]!["minReplicas"]!);
        Assert.Equal(10, (int)hpa["spec"]!["maxReplicas"]!);
        var metric = hpa["spec"]!["metrics"]!.AsArray().Single()!;
        Assert.Equal(("Resource", "cpu", "Utilization"), ((string)metric["type"]!, (string)metric["resource"]!["name"]!, (string)metric["resource"]!["target"]!["type"]!));

        var pdb = await DeployFiles.LoadSingleYamlAsync($"{Kubernetes}/pdb.yaml");
        Assert.Equal(2, (int)pdb["spec"]!["minAvailable"]!);
        Assert.Null(pdb["spec"]!["maxUnavailable"]);
        Assert.True(Selects(pdb["spec"]!["selector"]!["matchLabels"]!.AsObject(), podLabels), "The PodDisruptionBudget does not select Tally's pods.");
        Assert.True((int)pdb["spec"]!["minAvailable"]! < (int)hpa["spec"]!["minReplicas"]!, "minAvailable must be below minReplicas, or no drain could ever evict a pod.");

        var service = await DeployFiles.LoadSingleYamlAsync($"{Kubernetes}/service.yaml");
        Assert.True(Selects(service["spec"]!["selector"]!.AsObject(), podLabels));
        Assert.Equal("http", (string?)service["spec"]!["ports"]![0]!["targetPort"]);
    }

    /// <summary>Whether a matchLabels selector selects pods with these labels.</summary>
    private static bool Selects(JsonObject matchLabels, JsonObject labels) =>
        matchLabels.Count > 0 && matchLabels.All(pair => labels.TryGetPropertyValue(pair.Key, out var value) && (string?)value == (string?)pair.Value);
}
