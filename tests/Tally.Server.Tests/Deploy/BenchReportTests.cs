using System.Text.Json.Nodes;

namespace Tally.Server.Tests.Deploy;

/// <summary>
/// bench/report.py renders docs/benchmarks.md and its charts from a benchmarks.json: here a small one written by the
/// test, with figures chosen so that each of issue 14's targets falls on a known side. The charts come from Debian's
/// matplotlib (python3-matplotlib, which test.sh installs) and must be the same bytes on every rendering.
/// </summary>
[Trait("Layer", "Deploy")]
public sealed class BenchReportTests : IDisposable
{
    private const string RunA = "2026-01-02T03:04:05Z";
    private const string RunB = "2026-01-01T00:00:00Z";

    private readonly string directory = Directory.CreateTempSubdirectory("tally-bench-report-").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    [Fact]
    public async Task TheTargetsTableJudgesEachTargetFromRowsOfOneRun()
    {
        var page = await RenderAsync();

        // Compare group: per round 9,000 / 10,000 and 10,800 / 12,000, so 0.90 in both.
        Assert.Matches(@"\| sync increment, hot counter / `GET /healthz` \| 0\.90× \| ≥ 0\.85× \| met \|", page);
        // Async 8,000 in both rounds against sync 9,000 and 10,800: below 1.
        Assert.Matches(@"\| async / sync, hot counter \| 0\.81× \| ≥ 1\.00× \| \*\*missed\*\* \|", page);
        Assert.Matches(@"\| p99 at 64 connections \(sync, hot counter\) \| 4\.20 ms \| < 5 ms \| met \|", page);
        Assert.Matches(@"\| ↳ same, history off \| 5\.50 ms \| < 5 ms \| \*\*missed\*\* \|", page);
        Assert.Matches(@"\| `POST /batch` of 1,000 increments, sync \| 1,200,000 increments/s \| ≥ 1,000,000/s \| met \|", page);
        Assert.Matches(@"\| restart to ready with 1,000,000 counters \| 1\.50 s \| < 2 s \| met \|", page);
        // The 1,000,000-counter row is of another run than the 10,000-counter row: not judged.
        Assert.Matches(@"\| 1,000,000 counters / 10,000 counters, increments/s \| \(0\.50×\) \| ≥ 0\.80× \| n/a: rows of different runs \|", page);
        // Its own p99 and RSS are of one run each and are judged.
        Assert.Matches(@"\| p99 over 1,000,000 counters \| 12\.00 ms \| < 10 ms \| \*\*missed\*\* \|", page);
        Assert.Matches(@"\| RSS serving 1,000,000 counters \(peak during the measurement\) \| 205 MB \| < 250 MB \| met \|", page);
        // The cost of history, from the rounds with history off (10,000 in both) against on (9,000 and 10,800).
        Assert.Matches(@"\| sync hot counter \| 0\.90, 1\.08 \| 0\.99× \| 1% \|", page);
    }

    [Fact]
    public async Task TheChartsAreWrittenBesideThePageLinkedFromItAndTheSameOnEveryRendering()
    {
        var page = await RenderAsync();
        string[] charts = ["bench-connections.svg", "bench-counters.svg", "bench-side.svg"];
        foreach (var chart in charts)
        {
            Assert.Contains($"](images/{chart})", page, StringComparison.Ordinal);
        }
        var first = charts.ToDictionary(chart => chart, chart => File.ReadAllBytes(Path.Combine(directory, "images", chart)));

        await RenderAsync();

        foreach (var chart in charts)
        {
            var again = File.ReadAllBytes(Path.Combine(directory, "images", chart));
            Assert.True(first[chart].AsSpan().SequenceEqual(again), $"images/{chart} differs between two renderings of the same figures.");
            var svg = System.Text.Encoding.UTF8.GetString(again);
            Assert.StartsWith("<?xml", svg, StringComparison.Ordinal);
            Assert.DoesNotContain("<dc:date>", svg, StringComparison.Ordinal);
            Assert.True(again.Length < 100_000, $"images/{chart} has {again.Length} bytes; text as text keeps it small.");
        }
        // The figures are in the charts: the 64-connection rate on the connection chart, a peer on the side-by-side one.
        var connections = File.ReadAllText(Path.Combine(directory, "images", "bench-connections.svg"));
        Assert.Contains("27,000", connections, StringComparison.Ordinal);
        Assert.Contains("increments/s, history off", connections, StringComparison.Ordinal);
        Assert.Contains("Redis INCR, appendfsync always", File.ReadAllText(Path.Combine(directory, "images", "bench-side.svg")), StringComparison.Ordinal);
        // The counters chart mixes rows of two runs (1,000,000 counters from the older one), and says so.
        Assert.Contains("rows of different runs", File.ReadAllText(Path.Combine(directory, "images", "bench-counters.svg")), StringComparison.Ordinal);
    }

    private async Task<string> RenderAsync()
    {
        var json = Path.Combine(directory, "benchmarks.json");
        var page = Path.Combine(directory, "benchmarks.md");
        await File.WriteAllTextAsync(json, Fixture().ToJsonString());
        var result = await DeployFiles.RunToolAsync(DeployFiles.Python, [DeployFiles.PathOf("bench/report.py"), json, page],
            "python3-matplotlib", timeout: TimeSpan.FromMinutes(3));
        Assert.True(result.ExitCode == 0, result.Describe("bench/report.py benchmarks.json benchmarks.md"));
        return await File.ReadAllTextAsync(page);
    }

    private static JsonObject Row(string group, string id, double rate, double p99, string run = RunA, int ops = 1,
        int counters = 1, int connections = 50, string? peer = null, int? rep = null, string subject = "tally")
    {
        var row = new JsonObject
        {
            ["group"] = group, ["id"] = id, ["title"] = $"{group} {id}", ["subject"] = subject, ["status"] = "ok",
            ["connections"] = connections, ["counters"] = counters, ["ops_per_request"] = ops,
            ["requests_per_s"] = ops == 0 ? rate : rate / ops, ["increments_per_s"] = ops == 0 ? null : rate,
            ["latency_ms"] = new JsonObject { ["p50"] = p99 / 4, ["p99"] = p99 }, ["run"] = run,
        };
        if (peer is not null)
        {
            row["peer"] = peer;
            row["rep"] = rep;
            row["title"] = $"{peer} (round {rep})";
        }
        return row;
    }

    private static JsonObject Settings(string groups) => new()
    {
        ["quick"] = 0, ["duration_s"] = 10, ["warmup_s"] = 2, ["connections"] = 50, ["spread_counters"] = 10000,
        ["batch_size"] = 1000, ["groups"] = groups, ["tally_revision"] = "abc1234",
    };

    private static JsonObject Fixture()
    {
        var rows = new JsonArray
        {
            Row("http", "healthz", 10_000, 3, ops: 0),
            Row("http", "inc_hot_sync", 8_000, 6),
            Row("http", "inc_spread_sync", 8_000, 7),
            Row("http", "batch_sync", 1_200_000, 40, ops: 1000, counters: 1000),
            Row("connections", "c1", 2_000, 1, connections: 1),
            Row("connections", "c8", 11_000, 2, connections: 8),
            Row("connections", "c64", 27_000, 4.2, connections: 64),
            Row("connections", "c256", 30_000, 20, connections: 256),
        };
        foreach (var (connections, rate, p99) in new[] { (1, 2_100, 1.0), (64, 28_000, 5.5) })
        {
            var off = Row("connections", $"c{connections}_nohist", rate, p99, connections: connections);
            off["history"] = "off";
            rows.Add(off);
        }
        var alias = Row("counters", "n10000", 8_000, 7, counters: 10000);
        alias["same_as"] = "http/inc_spread_sync";
        rows.Add(Row("counters", "n1", 8_000, 6));
        rows.Add(alias);
        var big = Row("counters", "n1000000", 4_000, 12, run: RunB, counters: 1_000_000);
        big["peak_rss_kb"] = 200_000;
        rows.Add(big);
        (string Peer, double R1, double R2, string Subject)[] peers =
        [
            ("redis_incr", 100_000, 110_000, "redis"), ("redis_incr_durable", 38_000, 36_000, "redis"),
            ("flask_redis", 4_000, 4_100, "flask"), ("healthz", 10_000, 12_000, "tally"),
            ("sync_hot", 9_000, 10_800, "tally"), ("async_hot", 8_000, 8_000, "tally"),
            ("sync_hot_nohist", 10_000, 10_000, "tally"),
        ];
        foreach (var (peer, r1, r2, subject) in peers)
        {
            rows.Add(Row("compare", $"{peer}_r1", r1, 5, ops: peer == "healthz" ? 0 : 1, peer: peer, rep: 1, subject: subject));
            rows.Add(Row("compare", $"{peer}_r2", r2, 5, ops: peer == "healthz" ? 0 : 1, peer: peer, rep: 2, subject: subject));
        }
        return new JsonObject
        {
            ["generated_at"] = RunA,
            ["machine"] = new JsonObject { ["nproc"] = "2" },
            ["settings"] = Settings("tally compare"),
            ["scenarios"] = rows,
            ["extras"] = new JsonObject
            {
                ["counters_load"] = new JsonObject { ["counters_target"] = 1_000_000, ["counters_loaded"] = 1_000_000, ["restart_to_ready_ms"] = 1500 },
            },
            ["extras_run"] = new JsonObject { ["counters_load"] = RunB },
            ["runs"] = new JsonArray
            {
                new JsonObject { ["id"] = RunA, ["generated_at"] = RunA, ["groups"] = new JsonArray("tally", "compare"), ["settings"] = Settings("tally compare"), ["machine"] = new JsonObject() },
                new JsonObject { ["id"] = RunB, ["generated_at"] = RunB, ["groups"] = new JsonArray("big"), ["settings"] = Settings("big"), ["machine"] = new JsonObject() },
            },
        };
    }
}
