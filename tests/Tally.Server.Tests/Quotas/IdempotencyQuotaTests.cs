using System.Net;
using System.Text;
using Microsoft.Data.Sqlite;
using Tally.Server.Configuration;
using Tally.Server.Counters;
using Tally.Server.Pipeline;
using Tally.Server.Tests.Infrastructure;
using Tally.Server.Tests.Storage;

namespace Tally.Server.Tests.Quotas;

/// <summary>Idempotency records are compact, bounded per API key, and pruned even when no request arrives.</summary>
public sealed class IdempotencyQuotaTests
{
    private const long Now = 1_700_000_000_000;

    [Fact]
    public async Task ABatchOfAThousandNewCountersKeepsARecordOfAFewKilobytes()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        var ops = string.Join(",", Enumerable.Range(0, 1000).Select(i => $$"""{"op":"increment","name":"{{i:D4}}{{new string('n', 124)}}","by":{{i + 1}}}"""));
        var request = new HttpRequestMessage(HttpMethod.Post, "/batch") { Content = Api.JsonBody($$"""{"ops":[{{ops}}]}""") };
        request.Headers.Add("Idempotency-Key", "big-batch");
        var first = await client.SendAsync(request);
        var firstBody = await first.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.True(firstBody.Length > 150_000, "the answer itself is large");

        var stored = StoredRecordBytes(app.DataDir);

        Assert.True(stored < 16_000, $"The record of a 1,000-operation batch takes {stored} bytes; its answer is {firstBody.Length}.");
        var retry = new HttpRequestMessage(HttpMethod.Post, "/batch") { Content = Api.JsonBody($$"""{"ops":[{{ops}}]}""") };
        retry.Headers.Add("Idempotency-Key", "big-batch");
        var replay = await client.SendAsync(retry);
        Assert.Equal("true", replay.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(firstBody, await replay.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task PastItsQuotaAKeyedRequestIs429WithRetryAfterAndAppliesNothing()
    {
        await using var app = new TallyApplication(settings: new Dictionary<string, string?> { ["Quotas:IdempotencyBytesPerKey"] = "4096" });
        var client = app.CreateClient();
        HttpResponseMessage? refused = null;
        var accepted = 0;
        for (var i = 0; i < 200 && refused is null; i++)
        {
            var response = await Keyed(client, "hits", $"key-{i}-{new string('k', 100)}");
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                refused = response;
            }
            else
            {
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                accepted++;
            }
        }

        Assert.NotNull(refused);
        await refused.ReadProblemAsync(HttpStatusCode.TooManyRequests, ErrorCodes.IdempotencyQuotaExceeded);
        Assert.True(int.Parse(refused.Headers.GetValues("Retry-After").Single(), System.Globalization.CultureInfo.InvariantCulture) >= 1);
        Assert.Equal(accepted, (await client.GetCounterAsync("hits")).Value);
        // Without a key the request still counts; a refused key is not spent, and earlier keys still replay.
        Assert.Equal(accepted + 1, (await (await client.IncrementAsync("hits")).ReadCounterAsync()).Value);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await Keyed(client, "hits", $"key-{accepted}-{new string('k', 100)}")).StatusCode);
        var replay = await Keyed(client, "hits", $"key-0-{new string('k', 100)}");
        Assert.Equal("true", replay.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(accepted + 1, (await client.GetCounterAsync("hits")).Value);
    }

    [Theory]
    [InlineData("memory")]
    [InlineData("sqlite")]
    public async Task ExpiredRecordsArePrunedWhileIdleAndGiveTheirRoomBack(string kind)
    {
        using var dataDir = new TempDirectory();
        var clock = new ManualClock(Now);
        var quotas = new QuotaOptions { IdempotencyBytesPerKey = 4096 };
        await using var store = await QuotaTesting.OpenAsync(kind, dataDir.Path, clock, quotas);
        var requester = new Requester("key_a", null);
        var sent = 0;
        while ((await store.SendAsync(CounterCommand.Increment("a", 1), requester, $"k{sent}-{new string('x', 200)}")).Result.Succeeded)
        {
            sent++;
        }
        Assert.Equal(ErrorCodes.IdempotencyQuotaExceeded,
            (await store.SendAsync(CounterCommand.Increment("a", 1), requester, "one-more")).Result.Error?.Code);

        // A day later, with no request in between, the idle upkeep removes what expired.
        clock.NowMs += (long)TimeSpan.FromHours(24).TotalMilliseconds + 1;
        await store.MaintainAsync(CancellationToken.None);

        var after = await store.SendAsync(CounterCommand.Increment("a", 1), requester, "one-more");
        Assert.True(after.Result.Succeeded);
        Assert.False(after.Replayed);
        if (kind == "sqlite")
        {
            Assert.Equal(1L, Scalar(dataDir.Path, "SELECT count(*) FROM idempotency"));
        }
    }

    [Theory]
    [InlineData("memory")]
    [InlineData("sqlite")]
    public async Task AKeyReusedAfterItExpiredDoesNotCountTwice(string kind)
    {
        using var dataDir = new TempDirectory();
        var clock = new ManualClock(Now);
        await using var store = await QuotaTesting.OpenAsync(kind, dataDir.Path, clock, new QuotaOptions { IdempotencyBytesPerKey = 4096 });
        await AssertExpiredKeysGiveTheirBytesBackAsync(store, clock);
    }

    /// <summary>Ten rounds of the same 12 keys, each round after the last expired and before any pruning: never refused.</summary>
    internal static async Task AssertExpiredKeysGiveTheirBytesBackAsync(Tally.Server.Storage.ICounterStore store, ManualClock clock)
    {
        var requester = new Requester("key_a", null);
        for (var round = 0; round < 10; round++)
        {
            for (var i = 0; i < 12; i++)
            {
                var outcome = await store.SendAsync(CounterCommand.Increment("a", 1), requester, $"k{i}-{new string('x', 200)}");
                Assert.True(outcome.Result.Succeeded, $"round {round}, key {i}: {outcome.Result.Error?.Code}");
                Assert.False(outcome.Replayed);
            }
            clock.NowMs += (long)TimeSpan.FromHours(24).TotalMilliseconds + 1;
        }
    }

    [Fact]
    public async Task ARecordKeptBeforeTheCompactFormIsStillReplayed()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        Assert.Equal(HttpStatusCode.OK, (await Keyed(client, "old", "from-version-3")).StatusCode);

        // Rewrite the record as Tally 3 kept it: the rendered response, format 0.
        const string rendered = """{"name":"old","value":41,"initial":0,"min":null,"max":null,"version":41,"createdAt":"2026-01-01T00:00:00Z","updatedAt":"2026-01-01T00:00:00Z"}""";
        using (var connection = new SqliteConnection($"Data Source={Path.Combine(app.DataDir, "tally.db")};Pooling=False"))
        {
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = "UPDATE idempotency SET format = 0, status = 200, etag = '\"41\"', body = $body";
            command.Parameters.AddWithValue("$body", Encoding.UTF8.GetBytes(rendered));
            Assert.Equal(1, command.ExecuteNonQuery());
        }

        var replay = await Keyed(client, "old", "from-version-3");
        Assert.Equal("true", replay.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(rendered, await replay.Content.ReadAsStringAsync());
        Assert.Equal("\"41\"", replay.Headers.ETag?.Tag);
    }

    private static Task<HttpResponseMessage> Keyed(HttpClient client, string counter, string key)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, $"/counters/{counter}/increment");
        request.Headers.Add("Idempotency-Key", key);
        return client.SendAsync(request);
    }

    private static long StoredRecordBytes(string dataDir) => Scalar(dataDir, "SELECT sum(length(body) + length(key) + length(fingerprint)) FROM idempotency");

    private static long Scalar(string dataDir, string sql)
    {
        using var connection = new SqliteConnection($"Data Source={Path.Combine(dataDir, "tally.db")};Mode=ReadOnly;Pooling=False");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return Convert.ToInt64(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    }
}
