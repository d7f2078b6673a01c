using System.Globalization;
using System.Text.RegularExpressions;

namespace Tally.Server.Tests.Deploy;

/// <summary>
/// The deployment files for Store=postgres: deploy/compose.postgres.yaml (PostgreSQL, three Tally replicas, nginx)
/// and deploy/kubernetes/postgres (stateless replicas, autoscaled, with a disruption budget). What every shared store's
/// files must have is checked by <see cref="ClusterDeployFilesTests"/>; these tests check PostgreSQL's service.
/// </summary>
[Trait("Layer", "Deploy")]
public class PostgresDeployFilesTests : ClusterDeployFilesTests
{
    protected override string Store => "postgres";

    protected override string ConnectionVariable => "TALLY_POSTGRES";

    protected override string ComposeSecret => "tally_postgres";

    protected override (string Name, string Key) KubernetesSecret => ("tally-postgres", "connection-string");

    [Fact]
    public async Task ComposePostgresCommitsDurablyAndHasRoomForEveryReplicasPool()
    {
        var compose = await DeployFiles.LoadSingleYamlAsync(ComposeFile);
        var services = compose["services"]!.AsObject();
        var tallies = services.Where(s => (string?)s.Value!["environment"]?["TALLY_STORE"] == Store).ToList();

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
        var pool = int.Parse(Regex.Match(readme, @"Maximum Pool Size=(\d+)").Groups[1].Value, CultureInfo.InvariantCulture);
        Assert.True(tallies.Count * pool + 10 <= maxConnections, $"{tallies.Count} replicas x pool {pool} leave too little of max_connections {maxConnections}.");
    }
}
