using System.Text.Json.Nodes;

namespace Tally.Server.Tests.Deploy;

/// <summary>
/// Every YAML file under deploy/ parses, and the compose file and Kubernetes manifests agree with each
/// other and with what Tally needs (one replica, the probes, the data directory, the shutdown budget).
/// </summary>
[Trait("Layer", "Deploy")]
public class YamlFilesTests
{
    public static TheoryData<string> YamlFiles() => [.. DeployFiles.YamlFiles()];

    [Fact]
    public void DeployHasYamlFiles() =>
        Assert.Contains("deploy/compose.yaml", DeployFiles.YamlFiles());

    [Theory]
    [MemberData(nameof(YamlFiles))]
    public async Task ParsesWithPyYaml(string file)
    {
        // The plain check, exactly as one would run it by hand.
        var result = await DeployFiles.RunToolAsync(DeployFiles.Python,
            ["-c", "import sys,yaml; list(yaml.safe_load_all(open(sys.argv[1])))", DeployFiles.PathOf(file)], "python3-yaml");
        DeployFiles.RequirePyYaml(result);
        Assert.True(result.ExitCode == 0, $"{file} is not valid YAML:\n{result.StandardError}");
    }

    [Fact]
    public async Task KustomizationListsEveryManifestAndEachIsOneNamespaceFreeObject()
    {
        var kustomization = Single(await DeployFiles.LoadYamlAsync("deploy/kubernetes/kustomization.yaml"));
        var resources = kustomization["resources"]!.AsArray().Select(r => (string)r!).ToList();
        var manifests = Directory.EnumerateFiles(DeployFiles.PathOf("deploy/kubernetes"), "*.yaml")
            .Select(path => Path.GetFileName(path)).Where(name => name != "kustomization.yaml").Order(StringComparer.Ordinal).ToList();
        Assert.Equal(manifests, resources.Order(StringComparer.Ordinal).ToList());
        Assert.Null(kustomization["namespace"]);

        var kinds = new List<string>();
        foreach (var resource in resources)
        {
            var manifest = Single(await DeployFiles.LoadYamlAsync($"deploy/kubernetes/{resource}"));
            kinds.Add((string)manifest["kind"]!);
            Assert.Null(manifest["metadata"]!["namespace"]);
        }
        Assert.Equal(
            ["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PersistentVolumeClaim", "PodDisruptionBudget", "Secret", "Service"],
            kinds.Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task DeploymentRunsOneReplicaThatOwnsTheClaimWithProbesAndAShutdownBudget()
    {
        var deployment = Single(await DeployFiles.LoadYamlAsync("deploy/kubernetes/deployment.yaml"));
        var config = Single(await DeployFiles.LoadYamlAsync("deploy/kubernetes/configmap.yaml"))["data"]!;
        var pvc = Single(await DeployFiles.LoadYamlAsync("deploy/kubernetes/pvc.yaml"));
        var spec = deployment["spec"]!;
        var pod = spec["template"]!["spec"]!;
        var container = pod["containers"]!.AsArray().Single()!;

        // The embedded store: one process per data directory, the old pod gone before the new one starts.
        Assert.Equal(1, (int)spec["replicas"]!);
        Assert.Equal("Recreate", (string?)spec["strategy"]!["type"]);
        Assert.Equal("sqlite", (string?)config["TALLY_STORE"]);

        // The data directory is the claim, mounted where TALLY_DATADIR points, writable by the non-root user.
        var dataVolume = pod["volumes"]!.AsArray().Single(v => v!["persistentVolumeClaim"] is not null)!;
        Assert.Equal((string?)pvc["metadata"]!["name"], (string?)dataVolume["persistentVolumeClaim"]!["claimName"]);
        var dataMount = container["volumeMounts"]!.AsArray().Single(m => (string?)m!["name"] == (string?)dataVolume["name"])!;
        Assert.Equal((string?)config["TALLY_DATADIR"], (string?)dataMount["mountPath"]);
        Assert.True((bool)pod["securityContext"]!["runAsNonRoot"]!);
        Assert.True((bool)container["securityContext"]!["readOnlyRootFilesystem"]!);
        Assert.Equal(1654, (int)pod["securityContext"]!["fsGroup"]!);

        Assert.Equal("/readyz", (string?)container["readinessProbe"]!["httpGet"]!["path"]);
        Assert.Equal("/healthz", (string?)container["livenessProbe"]!["httpGet"]!["path"]);
        Assert.Equal(8080, (int)container["ports"]!.AsArray().Single()!["containerPort"]!);

        // SIGKILL only after Tally's own shutdown timeout, with room for the final flush.
        var shutdownSeconds = int.Parse((string)config["TALLY_SHUTDOWNTIMEOUTSECONDS"]!, System.Globalization.CultureInfo.InvariantCulture);
        Assert.True((int)pod["terminationGracePeriodSeconds"]! >= shutdownSeconds + 5,
            $"terminationGracePeriodSeconds {pod["terminationGracePeriodSeconds"]} leaves too little after ShutdownTimeoutSeconds {shutdownSeconds}.");

        // Kubernetes must not inject TALLY_SERVICE_HOST and friends, which Tally would read as settings.
        Assert.False((bool)pod["enableServiceLinks"]!);
    }

    [Fact]
    public async Task AutoscalerStaysAtOneReplicaForTheEmbeddedStore()
    {
        var hpa = Single(await DeployFiles.LoadYamlAsync("deploy/kubernetes/hpa.yaml"))["spec"]!;
        Assert.Equal(("Deployment", "tally"), ((string)hpa["scaleTargetRef"]!["kind"]!, (string)hpa["scaleTargetRef"]!["name"]!));
        Assert.Equal(1, (int)hpa["maxReplicas"]!);
    }

    [Fact]
    public async Task ComposeMountsFilesThatExistAndStopsTallyGracefully()
    {
        var compose = Single(await DeployFiles.LoadYamlAsync("deploy/compose.yaml"));
        var services = compose["services"]!.AsObject();
        Assert.Equal(["blackbox", "grafana", "prometheus", "tally"], services.Select(s => s.Key).Order(StringComparer.Ordinal));

        var build = services["tally"]!["build"]!;
        Assert.True(File.Exists(Path.Combine(DeployFiles.DeployDirectory, (string)build["context"]!, (string)build["dockerfile"]!)));

        foreach (var (name, service) in services)
        {
            foreach (var volume in service!["volumes"]?.AsArray() ?? [])
            {
                var source = ((string)volume!).Split(':')[0];
                if (source.StartsWith('.'))
                {
                    Assert.True(File.Exists(Path.Combine(DeployFiles.DeployDirectory, source)) || Directory.Exists(Path.Combine(DeployFiles.DeployDirectory, source)),
                        $"Service {name} mounts {source}, which does not exist under deploy/.");
                }
            }
        }

        var tally = services["tally"]!;
        Assert.Contains("tally-data:/data", tally["volumes"]!.AsArray().Select(v => (string)v!));
        Assert.Equal("/data", (string?)tally["environment"]!["TALLY_DATADIR"]);
        var grace = (string)tally["stop_grace_period"]!;
        var shutdownSeconds = int.Parse((string)tally["environment"]!["TALLY_SHUTDOWNTIMEOUTSECONDS"]!, System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(grace.EndsWith('s') && int.Parse(grace.TrimEnd('s'), System.Globalization.CultureInfo.InvariantCulture) > shutdownSeconds,
            $"stop_grace_period {grace} must exceed ShutdownTimeoutSeconds {shutdownSeconds}.");
    }

    [Fact]
    public async Task PrometheusScrapesTallyWhereComposeRunsIt()
    {
        var prometheus = Single(await DeployFiles.LoadYamlAsync("deploy/prometheus.yml"));
        var job = prometheus["scrape_configs"]!.AsArray().Single(j => (string?)j!["job_name"] == "tally")!;
        Assert.Equal("/metrics", (string?)job["metrics_path"]);
        Assert.Equal("tally:8080", (string?)job["static_configs"]![0]!["targets"]![0]);
    }

    private static JsonNode Single(JsonArray documents)
    {
        Assert.Single(documents);
        return documents[0]!;
    }
}
