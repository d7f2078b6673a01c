using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Process;

/// <summary>
/// Several real Tally processes (<see cref="TallyProcess"/>) sharing one store (PostgreSQL or Redis), each with a data
/// directory of its own, started together; and the checks cluster tests make of every instance. Dispose kills the
/// processes (SIGKILL: an instance does not sign off) and deletes their directories.
/// <code>
/// await using var cluster = await TallyCluster.StartAsync(2, "--Store", "redis", "--Redis", configuration);
/// using var a = cluster[0].CreateClient();
/// </code>
/// </summary>
internal sealed class TallyCluster : IAsyncDisposable
{
    private readonly List<TempDirectory> _dirs = [];
    private readonly List<TallyProcess> _instances = [];

    private TallyCluster()
    {
    }

    public IReadOnlyList<TallyProcess> Instances => _instances;

    public TallyProcess this[int index] => _instances[index];

    /// <summary>Starts <paramref name="count"/> instances at once with the same arguments; returns once every one is ready.</summary>
    public static async Task<TallyCluster> StartAsync(int count, params string[] arguments)
    {
        var cluster = new TallyCluster();
        try
        {
            for (var i = 0; i < count; i++)
            {
                var dir = new TempDirectory();
                cluster._dirs.Add(dir);
                cluster._instances.Add(TallyProcess.Start(dir.Path, arguments));
            }
            await Task.WhenAll(cluster._instances.Select(instance => instance.WaitUntilReadyAsync()));
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    /// <summary>The counter's value as each instance reads it; fails unless they all read the same.</summary>
    public async Task<long> ValueOnEveryInstanceAsync(string name)
    {
        var values = new List<long>();
        foreach (var instance in _instances)
        {
            using var client = instance.CreateClient();
            values.Add((await client.GetCounterAsync(name)).Value);
        }
        Assert.True(values.All(value => value == values[0]), $"{name}: the instances read different values: {string.Join(", ", values)}");
        return values[0];
    }

    /// <summary>Polls every instance, one after another, until a request with <paramref name="secret"/> gets <paramref name="expected"/> (5 s at most each).</summary>
    public async Task UntilEveryInstanceAnswersAsync(string secret, HttpStatusCode expected)
    {
        foreach (var instance in _instances)
        {
            using var client = instance.CreateClient();
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", secret);
            var deadline = Stopwatch.StartNew();
            HttpStatusCode answered;
            while ((answered = (await client.GetAsync("/counters?limit=1")).StatusCode) != expected)
            {
                Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(5), $"{instance.BaseAddress} answered {(int)answered} to the key, not {(int)expected}, for 5 s");
                await Task.Delay(20);
            }
        }
    }

    /// <summary>Waits until every instance's heartbeat counts <paramref name="instances"/> instances (the metric <c>tally_cluster_instances</c>).</summary>
    public async Task UntilEveryInstanceCountsAsync(int instances)
    {
        foreach (var instance in _instances)
        {
            using var metrics = instance.CreateClient();
            await Poll.UntilAsync(async () => (await metrics.GetStringAsync("/metrics")).Contains($"tally_cluster_instances {instances}", StringComparison.Ordinal),
                $"{instance.BaseAddress} to count {instances} instances", TimeSpan.FromSeconds(10));
        }
    }

    /// <summary>
    /// After a start without <c>AdminKey</c>: asserts that exactly one instance printed a first admin key, and that
    /// every instance then knows exactly one key, that one; returns its secret.
    /// </summary>
    public async Task<string> SingleFirstAdminKeyAsync()
    {
        // The key is created once the server listens, so perhaps a moment after /readyz first answers.
        await Poll.UntilAsync(() => _instances.Any(instance => instance.StandardOutput.Contains("tly_", StringComparison.Ordinal)),
            "an instance to print the first admin key", TimeSpan.FromSeconds(10));
        var printed = _instances.Where(instance => instance.StandardOutput.Contains("Tally created its first admin key", StringComparison.Ordinal)).ToList();
        Assert.True(printed.Count == 1, $"{printed.Count} instances printed a first admin key.\n{Describe()}");
        var key = printed[0].StandardOutput.Split('\n').Select(line => line.Trim()).Single(line => line.StartsWith("tly_", StringComparison.Ordinal));
        foreach (var instance in _instances)
        {
            using var client = instance.CreateClient();
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
            HttpResponseMessage listed = null!;
            await Poll.UntilAsync(async () => (listed = await client.GetAsync("/admin/keys")).StatusCode == HttpStatusCode.OK,
                $"{instance.BaseAddress} to accept the first admin key", TimeSpan.FromSeconds(5));
            var keys = JsonNode.Parse(await listed.Content.ReadAsStringAsync())!["items"]!.AsArray();
            Assert.True(keys.Count == 1, $"{instance.BaseAddress} knows {keys.Count} keys: {keys.ToJsonString()}");
        }
        return key;
    }

    /// <summary>
    /// Increments <paramref name="path"/> from <paramref name="clientsPerInstance"/> clients on every instance, as fast
    /// as they are answered, for <paramref name="duration"/>; returns how many were admitted (200), how many were sent,
    /// and how long it took.
    /// </summary>
    public async Task<(long Admitted, long Sent, TimeSpan Elapsed)> CountAdmittedAsync(string path, TimeSpan duration, int clientsPerInstance = 2)
    {
        long admitted = 0;
        long sent = 0;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(_instances.SelectMany(instance => Enumerable.Range(0, clientsPerInstance).Select(_ => Task.Run(async () =>
        {
            using var http = instance.CreateClient();
            while (clock.Elapsed < duration)
            {
                Interlocked.Increment(ref sent);
                if ((await http.PostAsync(path, null)).StatusCode == HttpStatusCode.OK)
                {
                    Interlocked.Increment(ref admitted);
                }
            }
        }))));
        return (admitted, sent, clock.Elapsed);
    }

    /// <summary>Every instance's output, for an assertion message.</summary>
    public string Describe() => string.Join("\n", _instances.Select(instance => $"=== {instance.BaseAddress} ===\n{instance.Describe()}"));

    public async ValueTask DisposeAsync()
    {
        foreach (var instance in _instances)
        {
            await instance.DisposeAsync();
        }
        _dirs.ForEach(dir => dir.Dispose());
    }
}
