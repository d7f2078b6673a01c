using System.Net;
using System.Text.Json.Nodes;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Batch;

/// <summary><c>POST /batch</c> (docs/api.md, "Batch"): each test on its own Tally and data directory.</summary>
public class BatchApiTests
{
    [Fact]
    public async Task EveryOperationKindAnswersItsResultInOrder()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        await client.SetUpCounterAsync("read-me", """{"value": 3}""");
        await client.SetUpCounterAsync("reset-me", """{"value": 9, "initial": 2}""");
        await client.SetUpCounterAsync("delete-me", """{"value": 1}""");
        await client.SetUpCounterAsync("update-me", """{"value": 1, "min": 0}""");

        var response = await client.PostBatchAsync(atomic: false,
            """{"op": "increment", "name": "inc", "by": 2}""",
            """{"op": "decrement", "name": "dec"}""",
            """{"op": "set", "name": "new", "value": 5, "initial": 1, "min": -10, "max": 10}""",
            """{"op": "set", "name": "update-me", "max": 100}""",
            """{"op": "get", "name": "read-me"}""",
            """{"op": "reset", "name": "reset-me"}""",
            """{"op": "delete", "name": "delete-me"}""");

        var results = await response.ReadResultsAsync(7);
        BatchTesting.Counter(results[0], 200, "inc", 2, 1);
        BatchTesting.Counter(results[1], 200, "dec", -1, 1);
        var created = BatchTesting.Counter(results[2], 201, "new", 5, 1);
        Assert.Equal((1L, -10L, 10L), ((long)created["initial"]!, (long)created["min"]!, (long)created["max"]!));
        var updated = BatchTesting.Counter(results[3], 200, "update-me", 1, 2);
        Assert.Equal((0L, 100L), ((long)updated["min"]!, (long)updated["max"]!));
        BatchTesting.Counter(results[4], 200, "read-me", 3, 1);
        BatchTesting.Counter(results[5], 200, "reset-me", 2, 2);
        Assert.Equal(204, (int?)results[6]!["status"]);
        Assert.Null(results[6]!["counter"]);
        Assert.Null(results[6]!["error"]);

        // The results are what the counters now are.
        Assert.Equal((2L, 1L), Of(await client.GetCounterAsync("inc")));
        Assert.Equal((-1L, 1L), Of(await client.GetCounterAsync("dec")));
        Assert.Equal(new CounterJson("new", 5, 1, -10, 10, 1, default, default), await client.GetCounterAsync("new") with { CreatedAt = default, UpdatedAt = default });
        Assert.Equal((1L, 2L), Of(await client.GetCounterAsync("update-me")));
        Assert.Equal((3L, 1L), Of(await client.GetCounterAsync("read-me")));
        Assert.Equal((2L, 2L), Of(await client.GetCounterAsync("reset-me")));
        await client.AssertMissingAsync("delete-me");
    }

    [Fact]
    public async Task ACounterInABatchResultIsTheSameJsonAsGetAnswers()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();

        var results = await (await client.PostBatchAsync(atomic: false, """{"op": "set", "name": "a", "value": 7, "max": 9}""")).ReadResultsAsync(1);

        var get = JsonNode.Parse(await client.GetStringAsync("/counters/a"))!;
        Assert.True(JsonNode.DeepEquals(get, results[0]!["counter"]), $"{get.ToJsonString()} vs {results[0]!.ToJsonString()}");
    }

    [Fact]
    public async Task FailedOperationsCarryTheirStatusAndProblem()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        await client.SetUpCounterAsync("full", """{"value": 10, "max": 10}""");
        await client.SetUpCounterAsync("versioned", "{}");

        var response = await client.PostBatchAsync(atomic: false,
            """{"op": "get", "name": "missing"}""",
            """{"op": "reset", "name": "missing"}""",
            """{"op": "delete", "name": "missing"}""",
            """{"op": "increment", "name": "full", "by": 3}""",
            """{"op": "set", "name": "versioned", "value": 1, "ifMatch": 7}""",
            """{"op": "set", "name": "new", "min": 5, "max": 4}""",
            """{"op": "set", "name": "new", "value": 11, "max": 10}""");

        var results = await response.ReadResultsAsync(7);
        BatchTesting.Error(results[0], 404, "counter_not_found");
        BatchTesting.Error(results[1], 404, "counter_not_found");
        BatchTesting.Error(results[2], 404, "counter_not_found");
        var outOfRange = BatchTesting.Error(results[3], 409, "out_of_range");
        Assert.Equal((10L, (long?)null, (long?)10L), ((long)outOfRange["value"]!, (long?)outOfRange["min"], (long?)outOfRange["max"]));
        Assert.True(outOfRange.ContainsKey("min"), "out_of_range carries min, even when it is null");
        BatchTesting.Error(results[4], 412, "version_mismatch");
        BatchTesting.Error(results[5], 400, "invalid_bounds");
        BatchTesting.Error(results[6], 400, "invalid_value");

        Assert.Equal((10L, 1L), Of(await client.GetCounterAsync("full")));
        Assert.Equal((0L, 1L), Of(await client.GetCounterAsync("versioned")));
        await client.AssertMissingAsync("missing");
        await client.AssertMissingAsync("new");
    }

    [Fact]
    public async Task LaterOperationsSeeTheEffectsOfEarlierOnes()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();

        var response = await client.PostBatchAsync(atomic: false,
            """{"op": "set", "name": "a", "value": 0, "max": 3}""",
            """{"op": "increment", "name": "a", "by": 2}""",
            """{"op": "increment", "name": "a", "by": 2}""",
            """{"op": "get", "name": "a"}""",
            """{"op": "delete", "name": "a"}""",
            """{"op": "get", "name": "a"}""",
            """{"op": "increment", "name": "a", "by": 5}""",
            """{"op": "reset", "name": "a"}""");

        var results = await response.ReadResultsAsync(8);
        BatchTesting.Counter(results[0], 201, "a", 0, 1);
        BatchTesting.Counter(results[1], 200, "a", 2, 2);
        var refused = BatchTesting.Error(results[2], 409, "out_of_range"); // the max set by op 0
        Assert.Equal((2L, 3L), ((long)refused["value"]!, (long)refused["max"]!));
        BatchTesting.Counter(results[3], 200, "a", 2, 2);
        Assert.Equal(204, (int?)results[4]!["status"]);
        BatchTesting.Error(results[5], 404, "counter_not_found");
        var recreated = BatchTesting.Counter(results[6], 200, "a", 5, 1); // a fresh counter, without the old bounds
        Assert.Null(recreated["max"]);
        BatchTesting.Counter(results[7], 200, "a", 0, 2);

        var counter = await client.GetCounterAsync("a");
        Assert.Equal((0L, 2L, (long?)null), (counter.Value, counter.Version, counter.Max));
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("memory")]
    public async Task ANonAtomicBatchAppliesEveryOperationThatSucceeds(string store)
    {
        await using var app = new TallyApplication(store);
        var client = app.CreateClient();
        await client.SetUpCounterAsync("full", """{"value": 1, "max": 1}""");

        var response = await client.PostBatchAsync(atomic: false,
            """{"op": "increment", "name": "before"}""",
            """{"op": "increment", "name": "full"}""",
            """{"op": "set", "name": "after", "value": 4}""");

        var results = await response.ReadResultsAsync(3);
        BatchTesting.Counter(results[0], 200, "before", 1, 1);
        BatchTesting.Error(results[1], 409, "out_of_range");
        BatchTesting.Counter(results[2], 201, "after", 4, 1);
        Assert.Equal((1L, 1L), Of(await client.GetCounterAsync("before")));
        Assert.Equal((1L, 1L), Of(await client.GetCounterAsync("full")));
        Assert.Equal((4L, 1L), Of(await client.GetCounterAsync("after")));
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("memory")]
    public async Task AFailedAtomicBatchAppliesNothingAndNamesTheFailingOperation(string store)
    {
        await using var app = new TallyApplication(store);
        var client = app.CreateClient();
        await client.SetUpCounterAsync("full", """{"value": 5, "min": 0, "max": 5}""");
        await client.SetUpCounterAsync("kept", """{"value": 2}""");

        var response = await client.PostBatchAsync(atomic: true,
            """{"op": "increment", "name": "new"}""",
            """{"op": "set", "name": "kept", "value": 100}""",
            """{"op": "delete", "name": "kept"}""",
            """{"op": "get", "name": "full"}""",
            """{"op": "increment", "name": "full", "by": 2}""",
            """{"op": "increment", "name": "never"}""");

        var problem = await response.ReadProblemAsync(HttpStatusCode.Conflict, "batch_failed");
        Assert.Equal(4, (int?)problem["index"]);
        var error = problem["error"]!.AsObject();
        Assert.Equal(("out_of_range", 409), ((string?)error["code"], (int?)error["status"]));
        Assert.Equal((5L, 0L, 5L), ((long)error["value"]!, (long)error["min"]!, (long)error["max"]!));
        Assert.False(string.IsNullOrWhiteSpace((string?)error["detail"]));
        Assert.Null(response.Headers.ETag);

        await client.AssertMissingAsync("new");
        await client.AssertMissingAsync("never");
        Assert.Equal((2L, 1L), Of(await client.GetCounterAsync("kept")));
        Assert.Equal((5L, 1L), Of(await client.GetCounterAsync("full")));
    }

    [Fact]
    public async Task AnAtomicBatchFailsOnWhatItsOwnEarlierOperationsDid()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();

        var response = await client.PostBatchAsync(atomic: true,
            """{"op": "set", "name": "a", "max": 1}""",
            """{"op": "increment", "name": "a"}""",
            """{"op": "increment", "name": "a"}""");

        var problem = await response.ReadProblemAsync(HttpStatusCode.Conflict, "batch_failed");
        Assert.Equal(2, (int?)problem["index"]);
        Assert.Equal("out_of_range", (string?)problem["error"]!["code"]);
        Assert.Equal(1L, (long)problem["error"]!["value"]!); // the value op 1 reached, though it was never applied
        await client.AssertMissingAsync("a");
    }

    [Fact]
    public async Task AnAtomicBatchThatSucceedsAppliesEveryOperation()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        await client.SetUpCounterAsync("gone", "{}");

        var response = await client.PostBatchAsync(atomic: true,
            """{"op": "increment", "name": "a", "by": 3}""",
            """{"op": "decrement", "name": "a"}""",
            """{"op": "set", "name": "b", "value": 8}""",
            """{"op": "delete", "name": "gone"}""",
            """{"op": "get", "name": "a"}""");

        var results = await response.ReadResultsAsync(5);
        BatchTesting.Counter(results[0], 200, "a", 3, 1);
        BatchTesting.Counter(results[1], 200, "a", 2, 2);
        BatchTesting.Counter(results[2], 201, "b", 8, 1);
        Assert.Equal(204, (int?)results[3]!["status"]);
        BatchTesting.Counter(results[4], 200, "a", 2, 2);
        Assert.Equal((2L, 2L), Of(await client.GetCounterAsync("a")));
        Assert.Equal((8L, 1L), Of(await client.GetCounterAsync("b")));
        await client.AssertMissingAsync("gone");
    }

    [Fact]
    public async Task MoreThanAThousandOperationsIsTooManyOperationsAndAppliesNothing()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();

        var ops = Enumerable.Range(0, 1001).Select(i => $$"""{"op": "increment", "name": "n{{i}}"}""").ToArray();
        var response = await client.PostBatchAsync(atomic: false, ops);

        var problem = await response.ReadProblemAsync(HttpStatusCode.BadRequest, "too_many_operations");
        Assert.Contains("1000", (string?)problem["detail"], StringComparison.Ordinal);
        await client.AssertMissingAsync("n0");
        await client.AssertMissingAsync("n1000");
        Assert.Empty((await (await client.GetAsync("/counters")).ReadPageAsync()).Items);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ExactlyAThousandOperationsAreApplied(bool atomic)
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();

        var ops = Enumerable.Range(0, 1000).Select(i => i % 2 == 0
            ? """{"op": "increment", "name": "same"}"""
            : $$"""{"op": "set", "name": "n{{i:D4}}", "value": {{i}}}""").ToArray();
        var results = await (await client.PostBatchAsync(atomic, ops)).ReadResultsAsync(1000);

        BatchTesting.Counter(results[998], 200, "same", 500, 500);
        BatchTesting.Counter(results[999], 201, "n0999", 999, 1);
        Assert.Equal((500L, 500L), Of(await client.GetCounterAsync("same")));
        var page = await (await client.GetAsync("/counters?prefix=n&limit=1000")).ReadPageAsync();
        Assert.Equal(500, page.Items.Count);
        Assert.All(page.Items, counter => Assert.Equal($"n{counter.Value:D4}", counter.Name));
    }

    [Theory]
    [InlineData("""{"ops": []}""")]
    [InlineData("""{"atomic": true, "ops": []}""")]
    [InlineData("""{}""")]
    [InlineData("""{"ops": {"op": "get", "name": "a"}}""")]
    [InlineData("""{"ops": null}""")]
    [InlineData("""[{"op": "get", "name": "a"}]""")]
    [InlineData("""{"atomic": "yes", "ops": [{"op": "increment", "name": "a"}]}""")]
    [InlineData("""{"atomic": 1, "ops": [{"op": "increment", "name": "a"}]}""")]
    public async Task ABatchWhoseBodyIsNotABatchIsInvalidBody(string body)
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();

        var response = await client.PostBatchAsync(body);

        await response.ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_body");
        await client.AssertMissingAsync("a");
    }

    [Fact]
    public async Task ABatchWithoutABodyIsInvalidBody()
    {
        await using var app = new TallyApplication();
        var response = await app.CreateClient().PostAsync("/batch", null);
        await response.ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_body");
    }

    [Theory]
    [InlineData("""{"ops": [{"op": "increment", "name": "a"}""")]
    [InlineData("""{"ops": [{"op": "increment", "name": "a"},]}""")]
    [InlineData("""{ops: [{"op": "increment", "name": "a"}]}""")]
    [InlineData("""{"ops": [{"op": "increment", "name": "a"}]} {}""")]
    [InlineData("""not json""")]
    public async Task ABatchThatIsNotJsonIsInvalidJsonAndAppliesNothing(string body)
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();

        var response = await client.PostBatchAsync(body);

        await response.ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_json");
        await client.AssertMissingAsync("a");
    }

    [Fact]
    public async Task ABatchSentAsTextIsUnsupportedMediaType()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        var body = new StringContent("""{"ops": [{"op": "increment", "name": "a"}]}""", System.Text.Encoding.UTF8, "text/plain");

        var response = await client.PostAsync("/batch", body);

        await response.ReadProblemAsync(HttpStatusCode.UnsupportedMediaType, "unsupported_media_type");
        await client.AssertMissingAsync("a");
    }

    /// <summary>A malformed operation at index 2 refuses the whole batch: the valid operations before and after it are not applied.</summary>
    [Theory]
    [InlineData("""{"op": "multiply", "name": "x"}""", "invalid_body")]
    [InlineData("""{"op": "INCREMENT", "name": "x"}""", "invalid_body")]
    [InlineData("""{"name": "x"}""", "invalid_body")]
    [InlineData("""{"op": 1, "name": "x"}""", "invalid_body")]
    [InlineData("""["increment", "x"]""", "invalid_body")]
    [InlineData("""null""", "invalid_body")]
    [InlineData("""{"op": "increment"}""", "invalid_name")]
    [InlineData("""{"op": "increment", "name": ""}""", "invalid_name")]
    [InlineData("""{"op": "increment", "name": "has space"}""", "invalid_name")]
    [InlineData("""{"op": "increment", "name": "-leading-dash"}""", "invalid_name")]
    [InlineData("""{"op": "get", "name": 42}""", "invalid_name")]
    [InlineData("""{"op": "increment", "name": "x", "by": 0}""", "invalid_amount")]
    [InlineData("""{"op": "decrement", "name": "x", "by": -1}""", "invalid_amount")]
    [InlineData("""{"op": "increment", "name": "x", "by": 1.5}""", "invalid_amount")]
    [InlineData("""{"op": "increment", "name": "x", "by": "2"}""", "invalid_amount")]
    [InlineData("""{"op": "increment", "name": "x", "by": 9223372036854775808}""", "invalid_amount")]
    [InlineData("""{"op": "increment", "name": "x", "by": null}""", "invalid_amount")]
    [InlineData("""{"op": "reset", "name": "x", "ifMatch": "1"}""", "invalid_precondition")]
    [InlineData("""{"op": "delete", "name": "x", "ifMatch": 1.5}""", "invalid_precondition")]
    [InlineData("""{"op": "delete", "name": "x", "ifMatch": -1}""", "invalid_precondition")]
    [InlineData("""{"op": "increment", "name": "x", "ifMatch": 0}""", "invalid_precondition")]
    [InlineData("""{"op": "set", "name": "x", "value": 2, "ifMatch": -9223372036854775808}""", "invalid_precondition")]
    [InlineData("""{"op": "set", "name": "x", "value": "5"}""", "invalid_value")]
    [InlineData("""{"op": "set", "name": "x", "value": 1.5}""", "invalid_value")]
    [InlineData("""{"op": "set", "name": "x", "max": "10"}""", "invalid_bounds")]
    [InlineData("""{"op": "set", "name": "x", "maximum": 10}""", "invalid_body")]
    [InlineData("""{"op": "set", "name": "x", "by": 2}""", "invalid_body")]
    public async Task AMalformedOperationRefusesTheWholeBatchWithItsIndex(string op, string code)
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        await client.SetUpCounterAsync("x", """{"value": 1}""");

        var response = await client.PostBatchAsync(atomic: false,
            """{"op": "increment", "name": "first"}""",
            """{"op": "increment", "name": "x"}""",
            op,
            """{"op": "increment", "name": "last"}""");

        var problem = await response.ReadProblemAsync(HttpStatusCode.BadRequest, code);
        Assert.True((int?)problem["index"] == 2, $"The problem names the operation's index 2: {problem.ToJsonString()}");
        await client.AssertMissingAsync("first");
        await client.AssertMissingAsync("last");
        Assert.Equal((1L, 1L), Of(await client.GetCounterAsync("x")));
    }

    [Fact]
    public async Task IfMatchAppliesEachOperationOnlyAtItsVersion()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        await client.SetUpCounterAsync("a", """{"value": 10, "initial": 10}""");

        var response = await client.PostBatchAsync(atomic: false,
            """{"op": "increment", "name": "a", "ifMatch": 1}""",
            """{"op": "increment", "name": "a", "ifMatch": 1}""",
            """{"op": "decrement", "name": "a", "by": 5, "ifMatch": 2}""",
            """{"op": "set", "name": "a", "max": 100, "ifMatch": 2}""",
            """{"op": "set", "name": "a", "max": 100, "ifMatch": 3}""",
            """{"op": "reset", "name": "a", "ifMatch": 3}""",
            """{"op": "reset", "name": "a", "ifMatch": 4}""",
            """{"op": "delete", "name": "a", "ifMatch": 4}""",
            """{"op": "delete", "name": "a", "ifMatch": 5}""",
            """{"op": "increment", "name": "a", "ifMatch": 5}""");

        var results = await response.ReadResultsAsync(10);
        BatchTesting.Counter(results[0], 200, "a", 11, 2);
        BatchTesting.Error(results[1], 412, "version_mismatch");
        BatchTesting.Counter(results[2], 200, "a", 6, 3);
        BatchTesting.Error(results[3], 412, "version_mismatch");
        BatchTesting.Counter(results[4], 200, "a", 6, 4);
        BatchTesting.Error(results[5], 412, "version_mismatch");
        BatchTesting.Counter(results[6], 200, "a", 10, 5);
        BatchTesting.Error(results[7], 412, "version_mismatch");
        Assert.Equal(204, (int?)results[8]!["status"]);
        BatchTesting.Error(results[9], 412, "version_mismatch"); // no counter, so no version matches
        await client.AssertMissingAsync("a");
    }

    [Fact]
    public async Task AnIfMatchFailureAbortsAnAtomicBatch()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        await client.SetUpCounterAsync("a", "{}");

        var response = await client.PostBatchAsync(atomic: true,
            """{"op": "increment", "name": "b"}""",
            """{"op": "increment", "name": "a", "ifMatch": 2}""");

        var problem = await response.ReadProblemAsync(HttpStatusCode.Conflict, "batch_failed");
        Assert.Equal((1, "version_mismatch", 412), ((int?)problem["index"], (string?)problem["error"]!["code"], (int?)problem["error"]!["status"]));
        await client.AssertMissingAsync("b");
        Assert.Equal((0L, 1L), Of(await client.GetCounterAsync("a")));
    }

    [Fact]
    public async Task AnAppliedBatchSurvivesARestart()
    {
        var app = new TallyApplication();
        await (await app.CreateClient().PostBatchAsync(atomic: true,
            """{"op": "set", "name": "a", "value": 3, "max": 5}""",
            """{"op": "increment", "name": "a"}""",
            """{"op": "increment", "name": "b", "by": 7}""")).ReadResultsAsync(3);

        await using var restarted = await app.RestartAsync();
        var client = restarted.CreateClient();
        var a = await client.GetCounterAsync("a");
        Assert.Equal((4L, 2L, (long?)5L), (a.Value, a.Version, a.Max));
        Assert.Equal((7L, 1L), Of(await client.GetCounterAsync("b")));
    }

    /// <summary>
    /// A batch is one commit: the batch-size histogram counts one more commit holding all its operations,
    /// and the SQLite store makes exactly one more write transaction. Nothing else commits in this Tally meanwhile.
    /// </summary>
    [Fact]
    public async Task ABatchIsOneCommit()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        await client.IncrementAsync("warm-up"); // so every series exists
        var before = await MetricsAsync(client);

        await (await client.PostBatchAsync(atomic: false,
            """{"op": "increment", "name": "a"}""",
            """{"op": "increment", "name": "b"}""",
            """{"op": "set", "name": "c", "value": 1}""",
            """{"op": "decrement", "name": "a"}""",
            """{"op": "get", "name": "warm-up"}""")).ReadResultsAsync(5);
        var after = await MetricsAsync(client);

        Assert.Equal(1, after["tally_commit_batch_size_count"] - before["tally_commit_batch_size_count"]);
        Assert.Equal(5, after["tally_commit_batch_size_sum"] - before["tally_commit_batch_size_sum"]);
        Assert.Equal(1, after["tally_store_writes_total"] - before["tally_store_writes_total"]);
    }

    private static async Task<Dictionary<string, double>> MetricsAsync(HttpClient client)
    {
        var text = await client.GetStringAsync("/metrics");
        var values = new Dictionary<string, double>();
        foreach (var line in text.Split('\n'))
        {
            var parts = line.Split(' ');
            if (parts.Length == 2 && parts[0] is "tally_commit_batch_size_count" or "tally_commit_batch_size_sum" or "tally_store_writes_total")
            {
                values[parts[0]] = double.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture);
            }
        }
        Assert.True(values.Count == 3, $"The metrics lack a series:\n{text}");
        return values;
    }

    private static (long Value, long Version) Of(CounterJson counter) => (counter.Value, counter.Version);
}
