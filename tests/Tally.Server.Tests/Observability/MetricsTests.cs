using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Tally.Server.Observability;
using Tally.Server.Tests.Infrastructure;
using Tally.Server.Tests.Process;

namespace Tally.Server.Tests.Observability;

/// <summary>/metrics: valid Prometheus text (promtool agrees), and a real Prometheus can scrape and query it.</summary>
public class MetricsTests
{
    [Fact]
    [Trait("Layer", "Process")]
    public async Task MetricsPassPromtoolAndCountOperationsByOutcome()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        await client.SetUpCounterAsync("stock", """{"value": 1, "max": 1}""");
        await client.IncrementAsync("stock");               // 409 out_of_range
        await client.IncrementAsync("views");
        await client.IncrementAsync("views");
        await client.GetAsync("/counters/missing");         // 404

        var metrics = await client.GetStringAsync("/metrics");

        var (exitCode, output) = await RunAsync("promtool", ["check", "metrics"], metrics);
        Assert.True(exitCode == 0, $"promtool check metrics failed ({exitCode}): {output}\n{metrics}");
        Assert.Contains("tally_operations_total{op=\"increment\",outcome=\"ok\"} 2", metrics, StringComparison.Ordinal);
        Assert.Contains("tally_operations_total{op=\"increment\",outcome=\"out_of_range\"} 1", metrics, StringComparison.Ordinal);
        Assert.Contains("tally_operations_total{op=\"get\",outcome=\"counter_not_found\"} 1", metrics, StringComparison.Ordinal);
        Assert.Contains("tally_counters 2", metrics, StringComparison.Ordinal);
        Assert.Contains("http_server_request_duration_seconds_bucket{http_request_method=\"POST\",http_route=\"/counters/{name}/increment\",http_response_status_code=\"200\",le=\"+Inf\"} 2", metrics, StringComparison.Ordinal);
        Assert.DoesNotContain("views", metrics, StringComparison.Ordinal); // counter names never become labels
    }

    [Fact]
    public void HistogramBucketsAreCumulativeAndLabelsEscaped()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var meters = services.GetRequiredService<IMeterFactory>();
        using var exporter = new PrometheusExporter(meters);
        var meter = meters.Create(TallyMetrics.MeterName);
        var histogram = meter.CreateHistogram<double>("tally.test.duration", "s", "A \"test\" histogram.\nSecond line.");
        histogram.Record(0.0002);
        histogram.Record(0.003);
        histogram.Record(100);
        var counter = meter.CreateCounter<long>("tally.test.events", "{event}", "Events.");
        counter.Add(3, new KeyValuePair<string, object?>("op", "say \"hi\"\\"), new KeyValuePair<string, object?>("outcome", "ok"));

        var text = exporter.Render();

        Assert.Contains("tally_test_duration_seconds_bucket{le=\"0.0001\"} 0\n", text, StringComparison.Ordinal);
        Assert.Contains("tally_test_duration_seconds_bucket{le=\"0.00025\"} 1\n", text, StringComparison.Ordinal);
        Assert.Contains("tally_test_duration_seconds_bucket{le=\"0.005\"} 2\n", text, StringComparison.Ordinal);
        Assert.Contains("tally_test_duration_seconds_bucket{le=\"10\"} 2\n", text, StringComparison.Ordinal);
        Assert.Contains("tally_test_duration_seconds_bucket{le=\"+Inf\"} 3\n", text, StringComparison.Ordinal);
        Assert.Contains("tally_test_duration_seconds_count 3\n", text, StringComparison.Ordinal);
        Assert.Contains("# HELP tally_test_duration_seconds A \"test\" histogram.\\nSecond line.\n", text, StringComparison.Ordinal);
        Assert.Contains("tally_test_events_total{op=\"say \\\"hi\\\"\\\\\",outcome=\"ok\"} 3\n", text, StringComparison.Ordinal);
    }

    /// <summary>A private Prometheus scrapes a running Tally every second and answers a PromQL query with the right count.</summary>
    [Fact]
    [Trait("Layer", "Process")]
    public async Task ARealPrometheusScrapesTallyAndAnswersAQuery()
    {
        using var dataDir = new TempDirectory();
        await using var tally = TallyProcess.Start(dataDir.Path);
        await tally.WaitUntilReadyAsync();
        using (var client = tally.CreateClient())
        {
            for (var i = 0; i < 7; i++)
            {
                Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/counters/scraped/increment", null)).StatusCode);
            }
        }

        using var prometheusDir = new TempDirectory();
        var port = FreePort();
        var config = Path.Combine(prometheusDir.Path, "prometheus.yml");
        await File.WriteAllTextAsync(config, $"""
            global:
              scrape_interval: 1s
            scrape_configs:
              - job_name: tally
                static_configs:
                  - targets: ["{tally.BaseAddress.Host}:{tally.BaseAddress.Port}"]
            """);
        using var prometheus = System.Diagnostics.Process.Start(new ProcessStartInfo("prometheus",
        [
            $"--config.file={config}", $"--storage.tsdb.path={Path.Combine(prometheusDir.Path, "data")}",
            $"--web.listen-address=127.0.0.1:{port}",
        ])
        { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false })
            ?? throw new InvalidOperationException("prometheus did not start; ./test.sh installs Debian's prometheus package.");
        var log = new System.Text.StringBuilder();
        prometheus.ErrorDataReceived += (_, e) => { lock (log) { log.AppendLine(e.Data); } };
        prometheus.BeginErrorReadLine();
        prometheus.BeginOutputReadLine();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(5) };
            var query = Uri.EscapeDataString("sum(tally_operations_total{op=\"increment\",outcome=\"ok\"})");
            string? last = null;
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed < TimeSpan.FromSeconds(40))
            {
                try
                {
                    last = await http.GetStringAsync($"/api/v1/query?query={query}");
                    var result = JsonNode.Parse(last)!["data"]!["result"]!.AsArray();
                    if (result.Count == 1 && (string?)result[0]!["value"]![1] == "7")
                    {
                        return;
                    }
                }
                catch (HttpRequestException)
                {
                    // Prometheus is still starting.
                }
                await Task.Delay(500);
            }
            Assert.Fail($"Prometheus never answered 7 increments. Last answer: {last}\n{log}");
        }
        finally
        {
            prometheus.Kill(entireProcessTree: true);
            await prometheus.WaitForExitAsync();
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static async Task<(int ExitCode, string Output)> RunAsync(string command, string[] arguments, string input)
    {
        var start = new ProcessStartInfo(command, arguments)
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        using var process = System.Diagnostics.Process.Start(start)
            ?? throw new InvalidOperationException($"{command} did not start; ./test.sh installs it.");
        await process.StandardInput.WriteAsync(input);
        process.StandardInput.Close();
        var output = await process.StandardOutput.ReadToEndAsync() + await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, output);
    }
}
