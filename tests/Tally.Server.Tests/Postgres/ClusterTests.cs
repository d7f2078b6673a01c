using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using Tally.Server.Tests.Events;
using Tally.Server.Tests.Infrastructure;
using Tally.Server.Tests.Process;

namespace Tally.Server.Tests.Postgres;

/// <summary>
/// Three real Tally processes sharing one real PostgreSQL behind a real nginx: exact under concurrent load,
/// bounds that hold across instances, idempotency across instances, key changes seen by all, one instance killed.
/// </summary>
[Trait("Layer", "Process")]
[Collection(PostgresCollection.Name)]
public sealed class ClusterTests(PostgresFixture postgres) : IAsyncLifetime
{
    private readonly List<TempDirectory> _dirs = [];
    private readonly List<TallyProcess> _instances = [];
    private NginxServer _nginx = null!;

    public async Task InitializeAsync()
    {
        var connectionString = await postgres.CreateDatabaseAsync();
        for (var i = 0; i < 3; i++)
        {
            var dir = new TempDirectory();
            _dirs.Add(dir);
            _instances.Add(TallyProcess.Start(dir.Path, "--Store", "postgres", "--Postgres", connectionString));
        }
        // Started together on an empty database: they migrate it once, in turn.
        await Task.WhenAll(_instances.Select(instance => instance.WaitUntilReadyAsync()));
        _nginx = await NginxServer.StartAsync([.. _instances.Select(instance => instance.BaseAddress)]);
    }

    public async Task DisposeAsync()
    {
        await _nginx.DisposeAsync();
        foreach (var instance in _instances)
        {
            await instance.DisposeAsync();
        }
        _dirs.ForEach(dir => dir.Dispose());
    }

    [Fact]
    public async Task ConcurrentIncrementsThroughTheBalancerAreExactAndABoundHoldsAcrossInstances()
    {
        using var client = _nginx.CreateClient();
        Assert.Equal(HttpStatusCode.Created, (await client.PutAsync("/counters/stock", Api.JsonBody("""{"value": 0, "max": 100}"""))).StatusCode);
        var accepted = 0;
        var refused = 0;
        var unexpected = new List<string>();
        var load = Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
        {
            using var http = _nginx.CreateClient();
            for (var i = 0; i < 40; i++)
            {
                var hot = await http.PostAsync("/counters/hot/increment", null);
                var stock = await http.PostAsync("/counters/stock/increment", null);
                if (hot.StatusCode != HttpStatusCode.OK)
                {
                    var text = await hot.Content.ReadAsStringAsync();
                    lock (unexpected)
                    {
                        unexpected.Add($"hot: {(int)hot.StatusCode} {text}");
                    }
                }
                switch (stock.StatusCode)
                {
                    case HttpStatusCode.OK:
                        Interlocked.Increment(ref accepted);
                        break;
                    case HttpStatusCode.Conflict:
                        Interlocked.Increment(ref refused);
                        break;
                    default:
                        var text = await stock.Content.ReadAsStringAsync();
                        lock (unexpected)
                        {
                            unexpected.Add($"stock: {(int)stock.StatusCode} {text}");
                        }
                        break;
                }
            }
        }));
        await Task.WhenAll(load);

        Assert.True(unexpected.Count == 0, string.Join("\n", unexpected.Take(5)));
        Assert.Equal(320, await ValueOnEveryInstanceAsync("hot"));
        Assert.True((accepted, refused) == (100, 220), $"stock: {accepted} accepted, {refused} refused");
        Assert.Equal(100, await ValueOnEveryInstanceAsync("stock"));
        // Every instance served some of it (nginx logs a request as it finishes it: the last lines may come a moment later).
        var deadline = Stopwatch.StartNew();
        while (_nginx.UpstreamsServed().Distinct().Count() < 3 && deadline.Elapsed < TimeSpan.FromSeconds(5))
        {
            await Task.Delay(50);
        }
        Assert.True(_nginx.UpstreamsServed().Distinct().Count() == 3,
            $"served by {string.Join(", ", _nginx.UpstreamsServed().GroupBy(upstream => upstream).Select(group => $"{group.Key} ×{group.Count()}"))}\n{_nginx.Describe()}");
    }

    [Fact]
    public async Task ARetryOnAnotherInstanceReplaysAndTheSameKeyOnTwoInstancesAtOnceAppliesOnce()
    {
        using var a = _instances[0].CreateClient();
        using var b = _instances[1].CreateClient();
        var first = await Keyed(a, "orders", "retry-1");
        var retry = await Keyed(b, "orders", "retry-1");
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal("true", retry.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(await first.Content.ReadAsStringAsync(), await retry.Content.ReadAsStringAsync());

        for (var round = 0; round < 20; round++)
        {
            var key = $"race-{round}";
            var answers = await Task.WhenAll(_instances.Select(async instance =>
            {
                using var client = instance.CreateClient();
                return await Keyed(client, "raced", key);
            }));
            Assert.All(answers, answer => Assert.Equal(HttpStatusCode.OK, answer.StatusCode));
        }
        Assert.Equal(20, await ValueOnEveryInstanceAsync("raced"));
        Assert.Equal(1, await ValueOnEveryInstanceAsync("orders"));
    }

    [Fact]
    public async Task AKeyCreatedOrRevokedOnOneInstanceHoldsOnEveryInstanceWithinASecond()
    {
        using var admin = _instances[0].CreateClient();
        var created = await admin.PostAsync("/admin/keys", Api.JsonBody("""{"name": "shop", "scopes": ["read", "write"]}"""));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var json = JsonNode.Parse(await created.Content.ReadAsStringAsync())!;
        var secret = (string)json["key"]!;

        var clock = Stopwatch.StartNew();
        await UntilEveryInstanceAnswers(secret, HttpStatusCode.OK);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), $"the new key worked everywhere only after {clock.Elapsed}");

        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync($"/admin/keys/{(string)json["id"]!}")).StatusCode);
        clock.Restart();
        await UntilEveryInstanceAnswers(secret, HttpStatusCode.Unauthorized);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), $"the revoked key was refused everywhere only after {clock.Elapsed}");
    }

    [Fact]
    public async Task KillingOneInstanceMidLoadLeavesTheOthersCountingAndLosesNothingAcknowledged()
    {
        long sent = 0;
        long acked = 0;
        using var stop = new CancellationTokenSource();
        var load = Enumerable.Range(0, 6).Select(_ => Task.Run(async () =>
        {
            using var http = _nginx.CreateClient();
            while (!stop.IsCancellationRequested)
            {
                Interlocked.Increment(ref sent);
                try
                {
                    var response = await http.PostAsync("/counters/survivor/increment", null);
                    if (response.StatusCode == HttpStatusCode.OK)
                    {
                        Interlocked.Increment(ref acked);
                    }
                }
                catch (HttpRequestException)
                {
                    // The killed instance's connection: not acknowledged.
                }
            }
        })).ToArray();

        await Until(() => Interlocked.Read(ref acked) >= 200);
        _instances[2].Kill();
        var ackedAtKill = Interlocked.Read(ref acked);
        await Until(() => Interlocked.Read(ref acked) >= ackedAtKill + 200);
        await stop.CancelAsync();
        await Task.WhenAll(load);

        using var survivor = _instances[0].CreateClient();
        var value = (long)JsonNode.Parse(await survivor.GetStringAsync("/counters/survivor"))!["value"]!;
        Assert.InRange(value, Interlocked.Read(ref acked), Interlocked.Read(ref sent));
    }

    [Fact]
    public async Task AKeysCounterQuotaHoldsAcrossInstances()
    {
        using var admin = _instances[0].CreateClient();
        var created = await admin.PostAsync("/admin/keys", Api.JsonBody("""{"name": "page", "scopes": ["increment"], "maxCounters": 5}"""));
        var secret = (string)JsonNode.Parse(await created.Content.ReadAsStringAsync())!["key"]!;
        await UntilEveryInstanceAnswers(secret, HttpStatusCode.Forbidden); // known everywhere (it may not list)

        var answers = await Task.WhenAll(Enumerable.Range(0, 30).Select(async i =>
        {
            using var client = _instances[i % 3].CreateClient();
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", secret);
            return (await client.PostAsync($"/counters/page:{i}/increment", null)).StatusCode;
        }));

        Assert.Equal(5, answers.Count(status => status == HttpStatusCode.OK));
        Assert.Equal(25, answers.Count(status => status == HttpStatusCode.Forbidden));
        var listed = JsonNode.Parse(await admin.GetStringAsync("/counters?prefix=page:&limit=100"))!["items"]!.AsArray();
        Assert.Equal(5, listed.Count);
    }

    [Fact]
    public async Task AChangeOnOneInstanceReachesTheEventStreamsOfTheOthersOnceAndThroughTheBalancer()
    {
        using var a = _instances[0].CreateClient();
        using var b = _instances[1].CreateClient();
        await CrossInstanceEvents.ChangesOnAReachStreamsOnBOnceEachAsync(a, b);

        using var balanced = _nginx.CreateClient();
        await using var throughNginx = await EventStreamClient.OpenAsync(balanced, "/events?prefix=nginx:");
        // Through nginx (proxy_buffering off for the event paths; X-Accel-Buffering is nginx's, it does not pass it on),
        // from whichever instance serves the stream.
        foreach (var instance in _instances)
        {
            using var client = instance.CreateClient();
            Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/counters/nginx:seen/increment", null)).StatusCode);
        }
        var seen = await throughNginx.NextAsync(3);
        Assert.Equal([1L, 2L, 3L], seen.Select(message => message.Counter.Value));
    }

    [Fact]
    public async Task ExportAndImportWorkAndBackupPointsToPgDump()
    {
        using var client = _instances[0].CreateClient();
        await client.PutAsync("/counters/moved", Api.JsonBody("""{"value": 7, "max": 10}"""));
        var exported = await client.GetStringAsync("/admin/export");
        Assert.Contains("\"moved\"", exported, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync("/counters/moved")).StatusCode);

        using var other = _instances[1].CreateClient();
        var imported = await other.PostAsync("/admin/import", new StringContent(exported, System.Text.Encoding.UTF8, "application/x-ndjson"));
        Assert.Equal(HttpStatusCode.OK, imported.StatusCode);
        var counter = JsonNode.Parse(await client.GetStringAsync("/counters/moved"))!;
        Assert.Equal((7L, 10L), ((long)counter["value"]!, (long)counter["max"]!));

        var backup = await client.GetAsync("/admin/backup");
        Assert.Equal(HttpStatusCode.BadRequest, backup.StatusCode);
        Assert.Contains("pg_dump", await backup.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task InstancesStartingTogetherWithoutAnAdminKeyCreateExactlyOneFirstKey()
    {
        var connectionString = await postgres.CreateDatabaseAsync();
        var dirs = Enumerable.Range(0, 3).Select(_ => new TempDirectory()).ToList();
        var fresh = dirs.Select(dir => TallyProcess.Start(dir.Path, "--Store", "postgres", "--Postgres", connectionString, "--AdminKey=")).ToList();
        try
        {
            await Task.WhenAll(fresh.Select(instance => instance.WaitUntilReadyAsync()));
            // The one instance that created it printed it, once (a shared store keeps no admin.key file: instances are stateless).
            // The key is created once the server listens, so perhaps a moment after /readyz first answers.
            await Until(() => fresh.Any(instance => instance.StandardOutput.Contains("tly_", StringComparison.Ordinal)));
            var printed = fresh.Where(instance => instance.StandardOutput.Contains("Tally created its first admin key", StringComparison.Ordinal)).ToList();
            Assert.Single(printed);
            var key = printed[0].StandardOutput.Split('\n').Select(line => line.Trim()).Single(line => line.StartsWith("tly_", StringComparison.Ordinal));
            foreach (var instance in fresh)
            {
                using var client = instance.CreateClient();
                client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
                var deadline = Stopwatch.StartNew();
                HttpResponseMessage listed;
                while ((listed = await client.GetAsync("/admin/keys")).StatusCode != HttpStatusCode.OK)
                {
                    Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(5), $"{instance.BaseAddress}: {(int)listed.StatusCode}");
                    await Task.Delay(20);
                }
                Assert.Single(JsonNode.Parse(await listed.Content.ReadAsStringAsync())!["items"]!.AsArray());
            }
        }
        finally
        {
            foreach (var instance in fresh)
            {
                await instance.DisposeAsync();
            }
            dirs.ForEach(dir => dir.Dispose());
        }
    }

    [Fact]
    public async Task ARateLimitHoldsForTheClusterNotPerInstance()
    {
        // Three instances of their own with a limit of 100/s (burst 100) per key, found by each other's heartbeats.
        var connectionString = await postgres.CreateDatabaseAsync();
        var dirs = Enumerable.Range(0, 3).Select(_ => new TempDirectory()).ToList();
        var limited = dirs.Select(dir => TallyProcess.Start(dir.Path, "--Store", "postgres", "--Postgres", connectionString,
            "--RateLimit:PermitsPerSecond", "100")).ToList();
        try
        {
            await Task.WhenAll(limited.Select(instance => instance.WaitUntilReadyAsync()));
            foreach (var instance in limited)
            {
                using var metrics = instance.CreateClient();
                var deadline = Stopwatch.StartNew();
                while (!(await metrics.GetStringAsync("/metrics")).Contains("tally_cluster_instances 3", StringComparison.Ordinal))
                {
                    Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(10), $"{instance.BaseAddress} never counted 3 instances");
                    await Task.Delay(50);
                }
            }

            long admitted = 0;
            var clock = Stopwatch.StartNew();
            var load = limited.SelectMany(instance => Enumerable.Range(0, 2).Select(_ => Task.Run(async () =>
            {
                using var http = instance.CreateClient();
                while (clock.Elapsed < TimeSpan.FromSeconds(3))
                {
                    if ((await http.PostAsync("/counters/limited/increment", null)).StatusCode == HttpStatusCode.OK)
                    {
                        Interlocked.Increment(ref admitted);
                    }
                }
            })));
            await Task.WhenAll(load);

            // One bucket of 100 plus 100/s for the cluster; per instance it would be three times that.
            var expected = 100 + 100 * clock.Elapsed.TotalSeconds;
            Assert.InRange(admitted, (long)(expected * 0.75), (long)(expected * 1.25));
        }
        finally
        {
            foreach (var instance in limited)
            {
                await instance.DisposeAsync();
            }
            dirs.ForEach(dir => dir.Dispose());
        }
    }

    private async Task<long> ValueOnEveryInstanceAsync(string name)
    {
        var values = new List<long>();
        foreach (var instance in _instances)
        {
            using var client = instance.CreateClient();
            values.Add((long)JsonNode.Parse(await client.GetStringAsync($"/counters/{name}"))!["value"]!);
        }
        Assert.All(values, value => Assert.Equal(values[0], value));
        return values[0];
    }

    private async Task UntilEveryInstanceAnswers(string secret, HttpStatusCode expected)
    {
        var deadline = Stopwatch.StartNew();
        foreach (var instance in _instances)
        {
            using var client = instance.CreateClient();
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", secret);
            while ((await client.GetAsync("/counters?limit=1")).StatusCode != expected)
            {
                Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(5), $"{instance.BaseAddress} never answered {expected}");
                await Task.Delay(20);
            }
        }
    }

    private static Task<HttpResponseMessage> Keyed(HttpClient client, string counter, string key)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, $"/counters/{counter}/increment");
        request.Headers.Add("Idempotency-Key", key);
        return client.SendAsync(request);
    }

    private static async Task Until(Func<bool> condition)
    {
        var deadline = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(30), "the load did not make progress");
            await Task.Delay(10);
        }
    }
}
