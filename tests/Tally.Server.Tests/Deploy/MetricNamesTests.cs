using System.Net;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Tally.Server.Counters;
using Tally.Server.Pipeline;
using Tally.Server.Storage;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Deploy;

/// <summary>
/// The Grafana dashboard, the alerting rules and the metrics table of docs/operations.md read only metrics
/// that a running Tally really exports: Tally runs in-process, serves some traffic (successes, a 409, a
/// failed commit, rate-limited requests), and its /metrics is compared with every name they use.
/// </summary>
[Trait("Layer", "Deploy")]
public partial class MetricNamesTests
{
    /// <summary>Series that other programs produce: Prometheus for every scrape, the blackbox exporter for /readyz.</summary>
    private static readonly HashSet<string> FromOtherExporters = new(StringComparer.Ordinal) { "up", "probe_success" };

    [Fact]
    public void DashboardIsJsonWithPanelsAndExpressions()
    {
        var dashboard = Dashboard.Load();
        Assert.Equal("tally", (string?)dashboard["uid"]);
        Assert.NotEmpty(dashboard["panels"]!.AsArray());
        foreach (var panel in dashboard["panels"]!.AsArray())
        {
            Assert.False(string.IsNullOrWhiteSpace((string?)panel!["title"]));
            Assert.NotEmpty(panel["targets"]!.AsArray());
        }
        Assert.NotEmpty(PromQL.DashboardExpressions(dashboard));
    }

    [Fact]
    public void ExtractsMetricNamesFromPromQL()
    {
        Assert.Equal(["a_bucket", "b_total", "c"], PromQL.MetricNames(
            """histogram_quantile(0.99, sum by (le, instance) (rate(a_bucket{x=~"y|z", w!="$v"}[$__rate_interval]))) / on (instance) group_left sum without (q) (b_total offset 5m) or c > 1e3 or vector(0)""")
            .Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task DashboardAlertsAndDocsUseOnlyExportedMetrics()
    {
        var exported = await ExportedMetricNamesAsync();

        var dashboard = Dashboard.Load();
        var used = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        foreach (var expression in PromQL.DashboardExpressions(dashboard))
        {
            Use(used, Dashboard.RelativePath, PromQL.MetricNames(expression));
        }
        Use(used, Dashboard.RelativePath + " (template variables)", PromQL.TemplateVariableMetrics(dashboard));

        var alerts = await DeployFiles.LoadYamlAsync("deploy/alerts.yml");
        foreach (var group in alerts[0]!["groups"]!.AsArray())
        {
            foreach (var rule in group!["rules"]!.AsArray())
            {
                Use(used, $"deploy/alerts.yml ({rule!["alert"]})", PromQL.MetricNames((string)rule["expr"]!));
            }
        }
        Use(used, "docs/operations.md (metrics table)", DocumentedMetrics());

        // PromQL names series exactly (x_bucket, x_total); the docs table names a histogram by its family (x, exported as x_count…).
        bool IsExported(string where, string name) => exported.Contains(name)
            || (where.StartsWith("docs/", StringComparison.Ordinal) && exported.Contains(name + "_count"));
        var unknown = used
            .SelectMany(entry => entry.Value.Where(name => !IsExported(entry.Key, name) && !FromOtherExporters.Contains(name)).Select(name => $"{name} in {entry.Key}"))
            .ToList();
        Assert.True(unknown.Count == 0,
            $"Not exported by Tally:\n  {string.Join("\n  ", unknown)}\nTally exports:\n  {string.Join("\n  ", exported.Order(StringComparer.Ordinal))}");

        // Every metric family Tally exports of its own is used somewhere (documented at least).
        var tallyFamilies = exported.Where(name => name.StartsWith("tally_", StringComparison.Ordinal))
            .Select(name => HistogramSuffix().Replace(name, string.Empty)).ToHashSet(StringComparer.Ordinal);
        var documented = DocumentedMetrics().ToHashSet(StringComparer.Ordinal);
        Assert.True(tallyFamilies.IsSubsetOf(documented),
            $"Metrics missing from the table in docs/operations.md: {string.Join(", ", tallyFamilies.Except(documented))}");
    }

    /// <summary>Sample names (with _bucket, _sum, _count, _total as exported) from the /metrics of two real instances.</summary>
    private static async Task<HashSet<string>> ExportedMetricNamesAsync()
    {
        var names = new HashSet<string>(StringComparer.Ordinal);

        // The embedded store, with ordinary traffic: creations, reads, a 409.
        await using (var app = new TallyApplication())
        {
            var client = app.CreateClient();
            Assert.Equal(HttpStatusCode.OK, (await client.IncrementAsync("deploy-a")).StatusCode);
            Assert.Equal(HttpStatusCode.OK, (await client.IncrementAsync("deploy-a", """{"by": 2}""")).StatusCode);
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/counters/deploy-a")).StatusCode);
            await client.SetUpCounterAsync("deploy-b", """{"value": 1, "max": 1}""");
            Assert.Equal(HttpStatusCode.Conflict, (await client.IncrementAsync("deploy-b")).StatusCode);
            names.UnionWith(await ScrapeAsync(app.CreateClient()));
        }

        // A store whose commits fail (503, a store error), and a rate limit of one request per second (429).
        await using var limited = new TallyApplication("memory", settings: new Dictionary<string, string?>
        {
            ["RateLimit:PermitsPerSecond"] = "1",
            ["RateLimit:Burst"] = "1",
        });
        await using (var failing = limited.WithWebHostBuilder(builder => builder.ConfigureTestServices(FailingCommitStore.Replace)))
        {
            var client = failing.CreateClient();
            Assert.Equal(HttpStatusCode.ServiceUnavailable, (await client.IncrementAsync("deploy-c")).StatusCode);
            var statuses = new List<HttpStatusCode>();
            for (var i = 0; i < 5; i++)
            {
                statuses.Add((await client.IncrementAsync("deploy-c")).StatusCode);
            }
            Assert.Contains(HttpStatusCode.TooManyRequests, statuses);

            // Without the key: its own rate-limit bucket (per address), and /metrics needs no key.
            var anonymous = failing.CreateClient();
            anonymous.DefaultRequestHeaders.Authorization = null;
            names.UnionWith(await ScrapeAsync(anonymous));
        }
        return names;
    }

    private static async Task<IEnumerable<string>> ScrapeAsync(HttpClient client)
    {
        var response = await client.GetAsync("/metrics");
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"GET /metrics answered {(int)response.StatusCode}: {text}");
        return text.Split('\n')
            .Where(line => line.Length > 0 && !line.StartsWith('#'))
            .Select(line => line[..line.IndexOfAny(['{', ' '])]);
    }

    /// <summary>The backticked names in the first column of the metrics table of docs/operations.md.</summary>
    private static IEnumerable<string> DocumentedMetrics()
    {
        var doc = File.ReadAllText(DeployFiles.PathOf("docs/operations.md"));
        var section = doc[doc.IndexOf("\n## Metrics", StringComparison.Ordinal)..];
        section = section[..section.IndexOf("\n## ", 3, StringComparison.Ordinal)];
        foreach (var line in section.Split('\n').Where(line => line.StartsWith("| `", StringComparison.Ordinal)))
        {
            var firstCell = line.Split('|')[1];
            foreach (Match name in Backticked().Matches(firstCell))
            {
                yield return name.Groups[1].Value;
            }
        }
    }

    private static void Use(Dictionary<string, HashSet<string>> used, string where, IEnumerable<string> names)
    {
        if (!used.TryGetValue(where, out var set))
        {
            used[where] = set = new HashSet<string>(StringComparer.Ordinal);
        }
        set.UnionWith(names);
    }

    [GeneratedRegex("`([a-z_:][a-z0-9_:]*)`")]
    private static partial Regex Backticked();

    [GeneratedRegex("_(bucket|sum|count)$")]
    private static partial Regex HistogramSuffix();

    /// <summary>Wraps the configured store; every commit fails, as on a full or read-only disk.</summary>
    private sealed class FailingCommitStore(ICounterStore inner) : ICounterStore
    {
        public static void Replace(IServiceCollection services)
        {
            var original = services.Last(d => d.ServiceType == typeof(ICounterStore));
            Func<IServiceProvider, object> factory = original.ImplementationFactory
                ?? (original.ImplementationType is { } type
                    ? provider => ActivatorUtilities.CreateInstance(provider, type)
                    : throw new InvalidOperationException("ICounterStore is expected to be registered with a factory or a type."));
            services.Remove(original);
            services.AddSingleton<ICounterStore>(provider => new FailingCommitStore((ICounterStore)factory(provider)));
        }

        public long Count => inner.Count;

        public Task OpenAsync(CancellationToken cancellationToken) => inner.OpenAsync(cancellationToken);

        public ValueTask<Counter?> GetAsync(string name, CancellationToken cancellationToken) => inner.GetAsync(name, cancellationToken);

        public ValueTask<IReadOnlyList<Counter>> ListAsync(string prefix, string? after, int limit, CancellationToken cancellationToken) =>
            inner.ListAsync(prefix, after, limit, cancellationToken);

        public ValueTask<IReadOnlyList<Counter>> TopAsync(string prefix, int limit, CancellationToken cancellationToken) =>
            inner.TopAsync(prefix, limit, cancellationToken);

        public ValueTask<IReadOnlyList<RequestOutcome>> CommitAsync(IReadOnlyList<PendingRequest> batch, CancellationToken cancellationToken) =>
            throw new IOException("Simulated: the disk is full.");

        public ValueTask<IReadOnlyList<Tally.Server.History.HistoryBucket>> ReadHistoryAsync(
            string name, Tally.Server.History.HistoryInterval interval, long from, long to, CancellationToken cancellationToken) =>
            inner.ReadHistoryAsync(name, interval, from, to, cancellationToken);

        public ValueTask<StoreHealth> CheckHealthAsync(CancellationToken cancellationToken) => inner.CheckHealthAsync(cancellationToken);

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}
