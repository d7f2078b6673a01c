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
    private TallyCluster _cluster = null!;
    private NginxServer _nginx = null!;

    public async Task InitializeAsync()
    {
        // Started together on an empty database: they migrate it once, in turn.
        _cluster = await TallyCluster.StartAsync(3, "--Store", "postgres", "--Postgres", await postgres.CreateDatabaseAsync());
        _nginx = await NginxServer.StartAsync([.. _cluster.Instances.Select(instance => instance.BaseAddress)]);
    }

    public async Task DisposeAsync()
    {
        await _nginx.DisposeAsync();
        await _cluster.DisposeAsync();
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
        Assert.Equal(320, await _cluster.ValueOnEveryInstanceAsync("hot"));
        Assert.True((accepted, refused) == (100, 220), $"stock: {accepted} accepted, {refused} refused");
        Assert.Equal(100, await _cluster.ValueOnEveryInstanceAsync("stock"));
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
        using var a = _cluster[0].CreateClient();
        using var b = _cluster[1].CreateClient();
        var first = await Keyed(a, "orders", "retry-1");
        var retry = await Keyed(b, "orders", "retry-1");
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal("true", retry.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(await first.Content.ReadAsStringAsync(), await retry.Content.ReadAsStringAsync());

        for (var round = 0; round < 20; round++)
        {
            var key = $"race-{round}";
            var answers = await Task.WhenAll(_cluster.Instances.Select(async instance =>
            {
                using var client = instance.CreateClient();
                return await Keyed(client, "raced", key);
            }));
            Assert.All(answers, answer => Assert.Equal(HttpStatusCode.OK, answer.StatusCode));
        }
        Assert.Equal(20, await _cluster.ValueOnEveryInstanceAsync("raced"));
        Assert.Equal(1, await _cluster.ValueOnEveryInstanceAsync("orders"));
    }

    [Fact]
    public async Task AKeyCreatedOrRevokedOnOneInstanceHoldsOnEveryInstanceWithinASecond()
    {
        using var admin = _cluster[0].CreateClient();
        var created = await admin.PostAsync("/admin/keys", Api.JsonBody("""{"name": "shop", "scopes": ["read", "write"]}"""));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var json = JsonNode.Parse(await created.Content.ReadAsStringAsync())!;
        var secret = (string)json["key"]!;

        var clock = Stopwatch.StartNew();
        await _cluster.UntilEveryInstanceAnswersAsync(secret, HttpStatusCode.OK);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), $"the new key worked everywhere only after {clock.Elapsed}");

        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync($"/admin/keys/{(string)json["id"]!}")).StatusCode);
        clock.Restart();
        await _cluster.UntilEveryInstanceAnswersAsync(secret, HttpStatusCode.Unauthorized);
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

        await Poll.UntilAsync(() => Interlocked.Read(ref acked) >= 200, "the load to start");
        _cluster[2].Kill();
        var ackedAtKill = Interlocked.Read(ref acked);
        await Poll.UntilAsync(() => Interlocked.Read(ref acked) >= ackedAtKill + 200, "the others to go on counting");
        await stop.CancelAsync();
        await Task.WhenAll(load);

        using var survivor = _cluster[0].CreateClient();
        var value = (long)JsonNode.Parse(await survivor.GetStringAsync("/counters/survivor"))!["value"]!;
        Assert.InRange(value, Interlocked.Read(ref acked), Interlocked.Read(ref sent));
    }

    [Fact]
    public async Task AKeysCounterQuotaHoldsAcrossInstances()
    {
        using var admin = _cluster[0].CreateClient();
        var created = await admin.PostAsync("/admin/keys", Api.JsonBody("""{"name": "page", "scopes": ["increment"], "maxCounters": 5}"""));
        var secret = (string)JsonNode.Parse(await created.Content.ReadAsStringAsync())!["key"]!;
        await _cluster.UntilEveryInstanceAnswersAsync(secret, HttpStatusCode.Forbidden); // known everywhere (it may not list)

        var answers = await Task.WhenAll(Enumerable.Range(0, 30).Select(async i =>
        {
            using var client = _cluster[i % 3].CreateClient();
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", secret);
            return (await client.PostAsync($"/counters/page:{i}/increment", null)).StatusCode;
        }));

        Assert.Equal(5, answers.Count(status => status == HttpStatusCode.OK));
        Assert.Equal(25, answers.Count(status => status == HttpStatusCode.Forbidden));
        var listed = JsonNode.Parse(await admin.GetStringAsync("/counters?prefix=page:&limit=100"))!["items"]!.AsArray();
        Assert.Equal(5, listed.Count);
    }

    [Fact]
    public async Task AnAlertCrossedOnOneInstanceReachesTheEventStreamsOfTheOthers()
    {
        await using var pair = await TallyCluster.StartAsync(2, "--Store", "postgres", "--Postgres", await postgres.CreateDatabaseAsync(),
            "--Alerts:AllowedHosts", "127.0.0.1");
        using var a = pair[0].CreateClient();
        using var b = pair[1].CreateClient();

        await CrossInstanceEvents.AlertsOnAReachStreamsOnAAndBAsync(a, b);
    }

    [Fact]
    public async Task AChangeOnOneInstanceReachesTheEventStreamsOfTheOthersOnceAndThroughTheBalancer()
    {
        using var a = _cluster[0].CreateClient();
        using var b = _cluster[1].CreateClient();
        await CrossInstanceEvents.ChangesOnAReachStreamsOnBOnceEachAsync(a, b);

        using var balanced = _nginx.CreateClient();
        await using var throughNginx = await EventStreamClient.OpenAsync(balanced, "/events?prefix=nginx:");
        // Through nginx (proxy_buffering off for the event paths; X-Accel-Buffering is nginx's, it does not pass it on),
        // from whichever instance serves the stream.
        foreach (var instance in _cluster.Instances)
        {
            using var client = instance.CreateClient();
            Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/counters/nginx:seen/increment", null)).StatusCode);
        }
        // Each change, or (conflated, Events:CoalesceMs) the latest: never an older value after a newer one, and it ends on 3.
        var seen = new List<long> { (await throughNginx.NextAsync()).Counter.Value };
        while (seen[^1] < 3)
        {
            seen.Add((await throughNginx.NextAsync()).Counter.Value);
        }
        Assert.Equal(seen.Distinct().Order(), seen);
        Assert.Equal(3, seen[^1]);
    }

    [Fact]
    public async Task ExportAndImportWorkAndBackupPointsToPgDump()
    {
        using var client = _cluster[0].CreateClient();
        await client.PutAsync("/counters/moved", Api.JsonBody("""{"value": 7, "max": 10}"""));
        var exported = await client.GetStringAsync("/admin/export");
        Assert.Contains("\"moved\"", exported, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync("/counters/moved")).StatusCode);

        using var other = _cluster[1].CreateClient();
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
        await using var fresh = await TallyCluster.StartAsync(3, "--Store", "postgres", "--Postgres", await postgres.CreateDatabaseAsync(), "--AdminKey=");

        // The one instance that created it printed it, once (a shared store keeps no admin.key file: instances are stateless).
        await fresh.SingleFirstAdminKeyAsync();
    }

    [Fact]
    public async Task ARateLimitHoldsForTheClusterNotPerInstance()
    {
        // Three instances of their own with a limit of 20/s (burst 20) per key for the cluster, found by each other's
        // heartbeats. A low rate, so that even a slow machine sends far more than one instance would admit on its own.
        await using var limited = await TallyCluster.StartAsync(3, "--Store", "postgres", "--Postgres", await postgres.CreateDatabaseAsync(),
            "--RateLimit:PermitsPerSecond", "20");
        await limited.UntilEveryInstanceCountsAsync(3);

        var (admitted, sent, elapsed) = await limited.CountAdmittedAsync("/counters/limited/increment", TimeSpan.FromSeconds(3));

        // One bucket of 20 plus 20/s for the cluster; per instance it would be three times that.
        var expected = 20 + 20 * elapsed.TotalSeconds;
        var outcome = $"{admitted} of {sent} increments admitted in {elapsed.TotalSeconds:0.00} s by three instances sharing 20/s with a burst of 20 (expected about {expected:0})";
        Assert.True(sent >= 4 * expected, $"too few requests to tell a cluster's limit from an instance's: {outcome}");
        Assert.True(admitted >= expected * 0.75 && admitted <= expected * 1.25, outcome);
    }

    private static Task<HttpResponseMessage> Keyed(HttpClient client, string counter, string key)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, $"/counters/{counter}/increment");
        request.Headers.Add("Idempotency-Key", key);
        return client.SendAsync(request);
    }
}
