using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;
using Tally.Server.History;
using Tally.Server.Storage;
using Tally.Server.Tests.Auth;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.History;

/// <summary><c>GET /counters/{name}/history</c> over HTTP, on a fake clock.</summary>
public class HistoryApiTests
{
    private static readonly DateTimeOffset Start = new(2026, 11, 21, 22, 0, 30, TimeSpan.Zero);

    private static (TallyApplication App, FakeTimeProvider Clock) Create(string store = "memory", string durability = "sync",
        IReadOnlyDictionary<string, string?>? settings = null)
    {
        var clock = new FakeTimeProvider(Start);
        return (new TallyApplication(store, durability, settings, clock), clock);
    }

    private static async Task<JsonObject> ReadHistoryAsync(HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"Expected 200, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        return JsonNode.Parse(text)!.AsObject();
    }

    /// <summary>The buckets as "start +increments -decrements sets value" lines, to compare in one go.</summary>
    private static List<string> Buckets(JsonObject history) => [.. history["buckets"]!.AsArray().Select(bucket =>
        $"{(string?)bucket!["start"]} +{(long)bucket["increments"]!} -{(long)bucket["decrements"]!} sets {(long)bucket["sets"]!} value {(long)bucket["value"]!}")];

    [Theory]
    [InlineData("memory", "sync")]
    [InlineData("sqlite", "sync")]
    [InlineData("sqlite", "async")]
    public async Task HistoryAnswersTheBucketsWithActivityOfEachInterval(string store, string durability)
    {
        var (app, clock) = Create(store, durability);
        await using var _ = app;
        var client = app.CreateClient();
        await client.PostAsync("/counters/page:home/increment?by=5", null);
        await client.PostAsync("/counters/page:home/decrement?by=2", null);
        await client.SetUpCounterAsync("page:home", """{"value": 10}""");
        clock.Advance(TimeSpan.FromMinutes(2));
        await client.PostAsync("/counters/page:home/increment", null);

        var minutes = await ReadHistoryAsync(await client.GetAsync("/counters/page:home/history?interval=minute"));
        Assert.Equal(["name", "interval", "buckets"], minutes.Select(member => member.Key));
        Assert.Equal(("page:home", "minute"), ((string?)minutes["name"], (string?)minutes["interval"]));
        Assert.Equal(["start", "increments", "decrements", "sets", "value"], minutes["buckets"]![0]!.AsObject().Select(member => member.Key));
        Assert.Equal(["2026-11-21T22:00:00Z +5 -2 sets 1 value 10", "2026-11-21T22:02:00Z +1 -0 sets 0 value 11"], Buckets(minutes));
        // minute is the default interval.
        Assert.Equal(Buckets(minutes), Buckets(await ReadHistoryAsync(await client.GetAsync("/counters/page:home/history"))));
        Assert.Equal(["2026-11-21T22:00:00Z +6 -2 sets 1 value 11"],
            Buckets(await ReadHistoryAsync(await client.GetAsync("/counters/page:home/history?interval=hour"))));
        Assert.Equal(["2026-11-21T00:00:00Z +6 -2 sets 1 value 11"],
            Buckets(await ReadHistoryAsync(await client.GetAsync("/counters/page:home/history?interval=day"))));
    }

    [Fact]
    public async Task AcceptTextCsvAnswersCsvWithAHeaderRow()
    {
        var (app, clock) = Create();
        await using var _ = app;
        var client = app.CreateClient();
        await client.PostAsync("/counters/a/increment?by=3", null);
        clock.Advance(TimeSpan.FromMinutes(1));
        await client.PostAsync("/counters/a/decrement", null);

        var request = new HttpRequestMessage(HttpMethod.Get, "/counters/a/history?interval=minute");
        request.Headers.Accept.ParseAdd("text/csv");
        var response = await client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/csv", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains("Accept", response.Headers.Vary);
        Assert.Equal("start,increments,decrements,sets,value\r\n2026-11-21T22:00:00Z,3,0,0,3\r\n2026-11-21T22:01:00Z,0,1,0,2\r\n",
            await response.Content.ReadAsStringAsync());

        // JSON when the client prefers it, or says nothing of CSV.
        foreach (var accept in new[] { "application/json, text/csv;q=0.5", "*/*", "application/xml" })
        {
            var preferJson = new HttpRequestMessage(HttpMethod.Get, "/counters/a/history");
            preferJson.Headers.TryAddWithoutValidation("Accept", accept);
            await ReadHistoryAsync(await client.SendAsync(preferJson));
        }
        var empty = new HttpRequestMessage(HttpMethod.Get, "/counters/a/history?interval=day&to=2026-11-20");
        empty.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/csv"));
        Assert.Equal("start,increments,decrements,sets,value\r\n", await (await client.SendAsync(empty)).Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task WithoutFromAndToTheLast60IntervalsAreAnswered()
    {
        var (app, clock) = Create();
        await using var _ = app;
        var client = app.CreateClient();
        await client.PostAsync("/counters/a/increment", null);        // 22:00
        clock.Advance(TimeSpan.FromMinutes(30));
        await client.PostAsync("/counters/a/increment", null);        // 22:30
        clock.Advance(TimeSpan.FromMinutes(30));
        await client.PostAsync("/counters/a/increment", null);        // 23:00, the current minute: 22:01 to 23:00 are the last 60

        Assert.Equal(["2026-11-21T22:30:00Z +1 -0 sets 0 value 2", "2026-11-21T23:00:00Z +1 -0 sets 0 value 3"],
            Buckets(await ReadHistoryAsync(await client.GetAsync("/counters/a/history"))));
        // With only 'to': the 60 intervals before it; with only 'from': up to now.
        Assert.Equal(["2026-11-21T22:00:00Z +1 -0 sets 0 value 1", "2026-11-21T22:30:00Z +1 -0 sets 0 value 2"],
            Buckets(await ReadHistoryAsync(await client.GetAsync("/counters/a/history?to=2026-11-21T22:59:00Z"))));
        Assert.Equal(3, Buckets(await ReadHistoryAsync(await client.GetAsync("/counters/a/history?from=2026-11-21"))).Count);
    }

    [Fact]
    public async Task FromAndToSelectTheBucketsThatOverlapTheRange()
    {
        var (app, clock) = Create();
        await using var _ = app;
        var client = app.CreateClient();
        for (var minute = 0; minute < 4; minute++)
        {
            await client.PostAsync("/counters/a/increment", null);    // 22:00, 22:01, 22:02, 22:03
            clock.Advance(TimeSpan.FromMinutes(1));
        }

        string[] middle = ["2026-11-21T22:01:00Z +1 -0 sets 0 value 2", "2026-11-21T22:02:00Z +1 -0 sets 0 value 3"];
        // 'from' inside a bucket takes that bucket; 'to' is exclusive.
        Assert.Equal(middle, Buckets(await ReadHistoryAsync(await client.GetAsync("/counters/a/history?from=2026-11-21T22:01:30Z&to=2026-11-21T22:03:00Z"))));
        // The same instants with offsets (an unescaped '+' arrives as a space, and is read as the '+' it was).
        Assert.Equal(middle, Buckets(await ReadHistoryAsync(await client.GetAsync("/counters/a/history?from=2026-11-21T23:01:30%2B01:00&to=2026-11-21T23:03+01:00"))));
        Assert.Equal(middle, Buckets(await ReadHistoryAsync(await client.GetAsync("/counters/a/history?from=2026-11-21T17:01:30.5-05:00&to=2026-11-21T22:03:00"))));
    }

    [Theory]
    [InlineData("interval=week", "'interval' must be minute, hour or day")]
    [InlineData("interval=Minute", "'interval' must be minute, hour or day")]
    [InlineData("from=yesterday", "'from' must be an ISO-8601 time")]
    [InlineData("from=2026-13-01", "'from' must be an ISO-8601 time")]
    [InlineData("to=1700000000", "'to' must be an ISO-8601 time")]
    [InlineData("from=11/21/2026", "'from' must be an ISO-8601 time")]
    [InlineData("from=2026-11-21T22:00:00Z%00", "'from' must be an ISO-8601 time")]
    [InlineData("from=2026-11-21T22:00:00Z&to=2026-11-21T21:00:00Z", "'from' must be before 'to'")]
    [InlineData("from=2026-11-21T22:00:00Z&to=2026-11-21T22:00:00Z", "'from' must be before 'to'")]
    [InlineData("from=2026-11-21&from=2026-11-20", "'from' is given 2 times")]
    [InlineData("since=2026-11-21", "Unknown query parameter 'since'")]
    public async Task ABadQueryIsInvalidQuerySayingWhat(string query, string detail)
    {
        var (app, _) = Create();
        await using var __ = app;
        var client = app.CreateClient();
        await client.PostAsync("/counters/a/increment", null);

        var problem = await (await client.GetAsync($"/counters/a/history?{query}")).ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_query");
        Assert.Contains(detail, (string?)problem["detail"], StringComparison.Ordinal);
    }

    [Fact]
    public async Task AMissingCounterIsNotFoundAndABadNameInvalid()
    {
        var (app, _) = Create();
        await using var __ = app;
        var client = app.CreateClient();
        await (await client.GetAsync("/counters/nothing/history")).ReadProblemAsync(HttpStatusCode.NotFound, "counter_not_found");
        await (await client.GetAsync("/counters/-bad/history")).ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_name");

        var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/counters/nothing/history"));
        Assert.Equal(HttpStatusCode.NotFound, head.StatusCode);
    }

    [Fact]
    public async Task HistoryNeedsTheReadScopeInsideTheKeysPrefix()
    {
        var (app, _) = Create();
        await using var __ = app;
        var admin = app.CreateClient();
        await admin.PostAsync("/counters/shop:orders/increment", null);
        await admin.PostAsync("/counters/other/increment", null);
        var reader = app.CreateClientWithKey((await admin.CreateKeyAsync("reader", ["read"], prefix: "shop:")).Key);
        var incrementer = app.CreateClientWithKey((await admin.CreateKeyAsync("web", ["increment"])).Key);

        await ReadHistoryAsync(await reader.GetAsync("/counters/shop:orders/history"));
        await (await reader.GetAsync("/counters/other/history")).ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");
        await (await incrementer.GetAsync("/counters/shop:orders/history")).ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");
        await (await app.CreateClientWithKey(null).GetAsync("/counters/shop:orders/history")).ReadProblemAsync(HttpStatusCode.Unauthorized, "unauthorized");
        // Outside the prefix, the answer is the same whether the counter exists or not.
        await (await reader.GetAsync("/counters/nothing/history")).ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");
    }

    [Theory]
    [InlineData("memory")]
    [InlineData("sqlite")]
    public async Task DeletingACounterDeletesItsHistory(string store)
    {
        var (app, clock) = Create(store);
        await using var _ = app;
        var client = app.CreateClient();
        await client.PostAsync("/counters/a/increment?by=7", null);
        Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync("/counters/a")).StatusCode);
        await (await client.GetAsync("/counters/a/history")).ReadProblemAsync(HttpStatusCode.NotFound, "counter_not_found");

        clock.Advance(TimeSpan.FromSeconds(5));
        await client.PostAsync("/counters/a/increment", null);
        Assert.Equal(["2026-11-21T22:00:00Z +1 -0 sets 0 value 1"], Buckets(await ReadHistoryAsync(await client.GetAsync("/counters/a/history"))));
        Assert.Equal(["2026-11-21T00:00:00Z +1 -0 sets 0 value 1"], Buckets(await ReadHistoryAsync(await client.GetAsync("/counters/a/history?interval=day"))));
    }

    [Theory]
    [InlineData("memory")]
    [InlineData("sqlite")]
    public async Task BucketsPastTheirRetentionAreNotAnsweredAndArePruned(string store)
    {
        var (app, clock) = Create(store, settings: new Dictionary<string, string?> { ["History:MinuteRetentionHours"] = "2", ["History:HourRetentionDays"] = "1" });
        await using var _ = app;
        var client = app.CreateClient();
        await client.PostAsync("/counters/a/increment", null);
        clock.Advance(TimeSpan.FromHours(2) + TimeSpan.FromMinutes(1));
        await client.PostAsync("/counters/a/increment", null);      // 00:01 the next day; minutes from 22:01 on are kept

        Assert.Equal(["2026-11-22T00:01:00Z +1 -0 sets 0 value 2"],
            Buckets(await ReadHistoryAsync(await client.GetAsync("/counters/a/history?from=2026-11-21"))));
        Assert.Equal(2, Buckets(await ReadHistoryAsync(await client.GetAsync("/counters/a/history?interval=hour&from=2026-11-21"))).Count);

        // Pruning rides along with a commit (or idle upkeep) once a minute: the old minute bucket is gone from the store.
        clock.Advance(TimeSpan.FromMinutes(1));
        await client.PostAsync("/counters/b/increment", null);
        var stored = await app.GetService<ICounterStore>().ReadHistoryAsync("a", HistoryInterval.Minute, 0, long.MaxValue, CancellationToken.None);
        Assert.Equal([Start.AddMinutes(121).ToUnixTimeMilliseconds() - 30_000], stored.Select(bucket => bucket.Start));

        clock.Advance(TimeSpan.FromDays(1));
        await client.PostAsync("/counters/b/increment", null);
        Assert.Single(await app.GetService<ICounterStore>().ReadHistoryAsync("a", HistoryInterval.Hour, 0, long.MaxValue, CancellationToken.None));
        Assert.Equal(2, (await app.GetService<ICounterStore>().ReadHistoryAsync("a", HistoryInterval.Day, 0, long.MaxValue, CancellationToken.None)).Count);
    }

    [Fact]
    public async Task HistoryOffRecordsNothing()
    {
        var (app, _) = Create(settings: new Dictionary<string, string?> { ["History:Enabled"] = "false" });
        await using var __ = app;
        var client = app.CreateClient();
        await client.PostAsync("/counters/a/increment", null);

        Assert.Empty(Buckets(await ReadHistoryAsync(await client.GetAsync("/counters/a/history"))));
    }

    [Fact]
    public async Task TheOpenApiDocumentDescribesTheQueryAndBothAnswers()
    {
        var (app, _) = Create();
        await using var __ = app;
        var document = JsonNode.Parse(await app.CreateClientWithKey(null).GetStringAsync("/openapi/v1.json"))!;
        var operation = document["paths"]!["/counters/{name}/history"]!["get"]!;

        Assert.Equal(["name", "interval", "from", "to"], operation["parameters"]!.AsArray().Select(parameter => (string?)parameter!["name"]));
        var content = operation["responses"]!["200"]!["content"]!.AsObject();
        Assert.Equal(["application/json", "text/csv"], content.Select(entry => entry.Key));
        Assert.Equal("#/components/schemas/HistoryResponse", (string?)content["application/json"]!["schema"]!["$ref"]);
        Assert.NotNull(operation["responses"]!["404"]);
    }
}
