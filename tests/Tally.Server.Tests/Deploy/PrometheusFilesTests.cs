using System.Text;

namespace Tally.Server.Tests.Deploy;

/// <summary>
/// promtool (Debian package prometheus) accepts the Prometheus configuration and the alerting rules, the
/// rules' unit tests pass, and every PromQL expression of the Grafana dashboard is valid PromQL.
/// </summary>
[Trait("Layer", "Deploy")]
public class PrometheusFilesTests
{
    private const string Package = "prometheus";

    [Fact]
    public async Task PromtoolAcceptsTheConfiguration()
    {
        var result = await DeployFiles.RunToolAsync("promtool", ["check", "config", "deploy/prometheus.yml"], Package);
        Assert.True(result.ExitCode == 0, result.Describe("promtool check config deploy/prometheus.yml"));
    }

    [Fact]
    public async Task PromtoolAcceptsTheAlertingRules()
    {
        var result = await DeployFiles.RunToolAsync("promtool", ["check", "rules", "deploy/alerts.yml"], Package);
        Assert.True(result.ExitCode == 0, result.Describe("promtool check rules deploy/alerts.yml"));
    }

    [Fact]
    public async Task AlertingRulesPassTheirUnitTests()
    {
        var result = await DeployFiles.RunToolAsync("promtool", ["test", "rules", "alerts.test.yml"], Package, workingDirectory: DeployFiles.DeployDirectory);
        Assert.True(result.ExitCode == 0, result.Describe("promtool test rules deploy/alerts.test.yml"));
    }

    [Fact]
    public async Task DashboardExpressionsAreValidPromQL()
    {
        // Each expression becomes a recording rule, Grafana's interval variables a fixed range, and promtool parses them all.
        var expressions = PromQL.DashboardExpressions(Dashboard.Load());
        Assert.NotEmpty(expressions);
        var rules = new StringBuilder("groups:\n  - name: dashboard\n    rules:\n");
        for (var i = 0; i < expressions.Count; i++)
        {
            var expression = expressions[i].Replace("$__rate_interval", "5m").Replace("$__interval", "1m").Replace("$__range", "1h");
            rules.Append("      - record: dashboard:expression").Append(i).Append('\n');
            rules.Append("        expr: ").Append(System.Text.Json.JsonSerializer.Serialize(expression)).Append('\n');
        }
        var file = Path.Combine(Path.GetTempPath(), $"tally-dashboard-rules-{Guid.NewGuid():N}.yml");
        await File.WriteAllTextAsync(file, rules.ToString());
        try
        {
            var result = await DeployFiles.RunToolAsync("promtool", ["check", "rules", file], Package);
            Assert.True(result.ExitCode == 0, result.Describe("promtool check rules (the dashboard's expressions)") + "\n" + rules);
        }
        finally
        {
            File.Delete(file);
        }
    }
}
