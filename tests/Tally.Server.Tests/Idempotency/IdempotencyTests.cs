using System.Net;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Tally.Server.Auth;
using Tally.Server.Idempotency;
using Tally.Server.Tests.Auth;
using Tally.Server.Tests.Batch;
using Tally.Server.Tests.Infrastructure;
using static Tally.Server.Tests.Idempotency.IdempotencyTesting;

namespace Tally.Server.Tests.Idempotency;

/// <summary><c>Idempotency-Key</c> (docs/api.md, "Idempotency"): each test on its own Tally and data directory.</summary>
public class IdempotencyTests
{
    [Theory]
    [InlineData("sqlite", "sync")]
    [InlineData("sqlite", "async")]
    [InlineData("memory", "sync")]
    public async Task ARepeatedKeyedIncrementReplaysTheFirstResponseAndChangesNothing(string store, string durability)
    {
        await using var app = new TallyApplication(store, durability);
        var client = app.CreateClient();

        var first = await client.SendKeyedAsync(HttpMethod.Post, "/counters/a/increment", "order-1", """{"by": 5}""");
        AssertStatus(first, HttpStatusCode.OK);
        Assert.Null(first.Replayed);
        Assert.Equal("\"1\"", first.ETag);

        for (var retry = 0; retry < 3; retry++)
        {
            var replay = await client.SendKeyedAsync(HttpMethod.Post, "/counters/a/increment", "order-1", """{"by": 5}""");
            AssertReplayOf(first, replay);
        }

        var counter = await client.GetCounterAsync("a");
        Assert.Equal((5L, 1L), (counter.Value, counter.Version));
    }

    [Fact]
    public async Task AReplayIsTheFirstResponseEvenAfterTheCounterMovedOn()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        var first = await client.SendKeyedAsync(HttpMethod.Post, "/counters/a/increment", "k");
        await client.IncrementAsync("a", """{"by": 10}""");

        var replay = await client.SendKeyedAsync(HttpMethod.Post, "/counters/a/increment", "k");

        AssertReplayOf(first, replay);
        Assert.Equal(1L, (long)JsonNode.Parse(replay.Body)!["value"]!);
        Assert.Equal((11L, 2L), ((await client.GetCounterAsync("a")).Value, (await client.GetCounterAsync("a")).Version));
    }

    public static TheoryData<string, string, string?> DifferentRequests() => new()
    {
        { "POST", "/counters/a/increment", """{"by": 3}""" },
        { "POST", "/counters/a/increment", null },
        { "POST", "/counters/a/increment?by=2", null },
        { "POST", "/counters/b/increment", """{"by": 2}""" },
        { "POST", "/counters/a/decrement", """{"by": 2}""" },
        { "POST", "/counters/a/reset", null },
        { "PUT", "/counters/a", """{"value": 2}""" },
        { "DELETE", "/counters/a", null },
        { "POST", "/batch", """{"ops": [{"op": "increment", "name": "a", "by": 2}]}""" },
    };

    [Theory]
    [MemberData(nameof(DifferentRequests))]
    public async Task TheSameKeyOnADifferentRequestIsIdempotencyKeyReused(string method, string path, string? body)
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        var first = await client.SendKeyedAsync(HttpMethod.Post, "/counters/a/increment", "k", """{"by": 2}""");
        AssertStatus(first, HttpStatusCode.OK);

        var other = await client.SendKeyedAsync(new HttpMethod(method), path, "k", body);

        AssertProblem(other, HttpStatusCode.UnprocessableEntity, "idempotency_key_reused");
        var counter = await client.GetCounterAsync("a");
        Assert.Equal((2L, 1L), (counter.Value, counter.Version));
        await client.AssertMissingAsync("b");

        // The refusal was not recorded in the key's place: the first request still replays.
        AssertReplayOf(first, await client.SendKeyedAsync(HttpMethod.Post, "/counters/a/increment", "k", """{"by": 2}"""));
    }

    [Theory]
    [InlineData("tab\tinside")]
    [InlineData("ключ")]
    [InlineData("caf\u00e9")]
    [InlineData("delete\u007f")]
    public async Task AKeyThatIsNotOneToTwoHundredFiftyFivePrintableAsciiCharactersIsRefused(string key)
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();

        var response = await client.SendKeyedAsync(HttpMethod.Post, "/counters/a/increment", key);

        AssertProblem(response, HttpStatusCode.BadRequest, "invalid_idempotency_key");
        await client.AssertMissingAsync("a");
    }

    [Fact]
    public async Task AnEmptyKeyIsRefused()
    {
        await using var app = new TallyApplication();
        // HttpClient leaves out a header without a value; Kestrel passes "Idempotency-Key:" on as an empty value.
        var context = await app.Server.SendAsync(http =>
        {
            http.Request.Method = "POST";
            http.Request.Path = "/counters/a/increment";
            http.Request.Headers.Authorization = $"Bearer {TallyApplication.AdminKey}";
            http.Request.Headers[Header] = "";
        });

        Assert.Equal(400, context.Response.StatusCode);
        var problem = await JsonNode.ParseAsync(context.Response.Body);
        Assert.Equal("invalid_idempotency_key", (string?)problem!["code"]);
        await app.CreateClient().AssertMissingAsync("a");
    }

    [Fact]
    public async Task AKeyOfTwoHundredFiftySixCharactersIsRefusedAndOneOfTwoHundredFiftyFiveIsAccepted()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();

        AssertProblem(await client.SendKeyedAsync(HttpMethod.Post, "/counters/a/increment", new string('k', 256)),
            HttpStatusCode.BadRequest, "invalid_idempotency_key");
        await client.AssertMissingAsync("a");

        var longest = new string('k', 254) + "~";
        var first = await client.SendKeyedAsync(HttpMethod.Post, "/counters/a/increment", longest);
        AssertStatus(first, HttpStatusCode.OK);
        AssertReplayOf(first, await client.SendKeyedAsync(HttpMethod.Post, "/counters/a/increment", longest));
        Assert.Equal(1L, (await client.GetCounterAsync("a")).Value);
    }

    [Fact]
    public async Task AKeyOfPrintableAsciiWithSpacesAndPunctuationIsAccepted()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        const string key = "order 42/retry: \"a\" {b} ~!";

        var first = await client.SendKeyedAsync(HttpMethod.Post, "/counters/a/increment", key);
        AssertStatus(first, HttpStatusCode.OK);
        AssertReplayOf(first, await client.SendKeyedAsync(HttpMethod.Post, "/counters/a/increment", key));
        Assert.Equal(1L, (await client.GetCounterAsync("a")).Value);
    }

    [Theory]
    [InlineData("big1", "\"big1\"")]
    [InlineData("\"big1\"", "big1")]
    [InlineData("a\"b\\c", "\"a\\\"b\\\\c\"")]
    public async Task TheQuotedFormOfAKeyNamesTheSameKeyAsTheBareForm(string first, string then)
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();

        var sent = await client.SendKeyedAsync(HttpMethod.Post, "/counters/a/increment", first, """{"by": 3}""");
        AssertStatus(sent, HttpStatusCode.OK);
        AssertReplayOf(sent, await client.SendKeyedAsync(HttpMethod.Post, "/counters/a/increment", then, """{"by": 3}"""));

        Assert.Equal(3L, (await client.GetCounterAsync("a")).Value);
    }

    [Fact]
    public async Task AQuotedKeyOfTwoHundredFiftyFiveCharactersIsAcceptedAndTheSameAsItsBareForm()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        var longest = new string('k', 255);

        var first = await client.SendKeyedAsync(HttpMethod.Post, "/counters/a/increment", $"\"{longest}\"");
        AssertStatus(first, HttpStatusCode.OK);
        AssertReplayOf(first, await client.SendKeyedAsync(HttpMethod.Post, "/counters/a/increment", longest));
        AssertProblem(await client.SendKeyedAsync(HttpMethod.Post, "/counters/a/increment", $"\"{longest}k\""),
            HttpStatusCode.BadRequest, "invalid_idempotency_key");
    }

    [Theory]
    [InlineData("\"big1")]
    [InlineData("\"big1\\\"")]
    [InlineData("\"a\\x\"")]
    [InlineData("\"a\"b\"")]
    [InlineData("\"big1\"x")]
    [InlineData("\"\"")]
    [InlineData("\"")]
    public async Task AnUnterminatedOrBadlyEscapedQuotedKeyIsRefused(string key)
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();

        var response = await client.SendKeyedAsync(HttpMethod.Post, "/counters/a/increment", key);

        AssertProblem(response, HttpStatusCode.BadRequest, "invalid_idempotency_key");
        await client.AssertMissingAsync("a");
    }

    [Fact]
    public async Task TwoIdempotencyKeyHeadersAreRefused()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        var request = new HttpRequestMessage(HttpMethod.Post, "/counters/a/increment");
        request.Headers.TryAddWithoutValidation(Header, ["one", "two"]);

        var response = await RecordAsync(await client.SendAsync(request));

        AssertProblem(response, HttpStatusCode.BadRequest, "invalid_idempotency_key");
        await client.AssertMissingAsync("a");
    }

    [Fact]
    public async Task AFailedFirstRequestIsReplayedAsTheSameFailureEvenOnceTheCounterHasRoom()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        await client.SetUpCounterAsync("stock", """{"value": 1, "max": 1}""");

        var first = await client.SendKeyedAsync(HttpMethod.Post, "/counters/stock/increment", "buy-1");
        AssertProblem(first, HttpStatusCode.Conflict, "out_of_range");
        Assert.Null(JsonNode.Parse(first.Body)!["traceId"]); // else a replay could not be byte for byte the same

        await client.SetUpCounterAsync("stock", """{"max": null}""");
        var replay = await client.SendKeyedAsync(HttpMethod.Post, "/counters/stock/increment", "buy-1");

        AssertReplayOf(first, replay);
        var stock = await client.GetCounterAsync("stock");
        Assert.Equal((1L, 2L), (stock.Value, stock.Version));
        Assert.Equal(2L, (await (await client.IncrementAsync("stock")).ReadCounterAsync()).Value); // without the key it applies
    }

    [Fact]
    public async Task AFailedConditionalRequestIsRecordedLikeASuccess()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();

        var first = await client.SendKeyedAsync(HttpMethod.Post, "/counters/missing/reset", "r");
        AssertProblem(first, HttpStatusCode.NotFound, "counter_not_found");
        await client.SetUpCounterAsync("missing", """{"value": 5}""");

        AssertReplayOf(first, await client.SendKeyedAsync(HttpMethod.Post, "/counters/missing/reset", "r"));
        var counter = await client.GetCounterAsync("missing");
        Assert.Equal((5L, 1L), (counter.Value, counter.Version));
    }

    [Fact]
    public async Task ARequestRefusedBeforeItReachesTheStoreDoesNotUseTheKey()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();

        AssertProblem(await client.SendKeyedAsync(HttpMethod.Post, "/counters/a/increment", "k", """{"by": 0}"""),
            HttpStatusCode.BadRequest, "invalid_amount");
        AssertProblem(await client.SendKeyedAsync(HttpMethod.Post, "/counters/a/increment", "k", """{"by": 1"""),
            HttpStatusCode.BadRequest, "invalid_json");

        // Not a reuse: neither refusal was recorded, so the corrected request applies.
        var corrected = await client.SendKeyedAsync(HttpMethod.Post, "/counters/a/increment", "k", """{"by": 1}""");
        AssertStatus(corrected, HttpStatusCode.OK);
        Assert.Null(corrected.Replayed);
        Assert.Equal(1L, (await client.GetCounterAsync("a")).Value);
    }

    [Fact]
    public async Task KeysAreScopedToTheApiKeyThatSentThem()
    {
        await using var app = new TallyApplication();
        var admin = app.CreateClient();
        var other = app.CreateClientWithKey((await admin.CreateKeyAsync("other", ["write"])).Key);
        var batch = BatchTesting.Body(false, """{"op": "increment", "name": "a"}""");

        var byAdmin = await admin.SendKeyedAsync(HttpMethod.Post, "/batch", "shared", batch);
        var byOther = await other.SendKeyedAsync(HttpMethod.Post, "/batch", "shared", batch);
        // A different request under the same key is no reuse either: the key is another caller's.
        var differentByOther = await app.CreateClientWithKey((await admin.CreateKeyAsync("third", ["write"])).Key)
            .SendKeyedAsync(HttpMethod.Post, "/counters/a/increment", "shared", """{"by": 10}""");

        foreach (var response in new[] { byAdmin, byOther, differentByOther })
        {
            AssertStatus(response, HttpStatusCode.OK);
            Assert.Null(response.Replayed);
        }
        Assert.Equal(12L, (await admin.GetCounterAsync("a")).Value);
        AssertReplayOf(byOther, await other.SendKeyedAsync(HttpMethod.Post, "/batch", "shared", batch));
        AssertReplayOf(byAdmin, await admin.SendKeyedAsync(HttpMethod.Post, "/batch", "shared", batch));
        Assert.Equal(12L, (await admin.GetCounterAsync("a")).Value);
    }

    [Fact]
    public async Task AKeyedBatchIsReplayedWhole()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        await client.SetUpCounterAsync("gone", """{"value": 3}""");
        var batch = BatchTesting.Body(false,
            """{"op": "increment", "name": "a", "by": 2}""",
            """{"op": "set", "name": "b", "value": 7}""",
            """{"op": "delete", "name": "gone"}""",
            """{"op": "increment", "name": "b", "ifMatch": 9}""");

        var first = await client.SendKeyedAsync(HttpMethod.Post, "/batch", "batch-1", batch);
        AssertStatus(first, HttpStatusCode.OK);
        Assert.Equal([200, 201, 204, 412], JsonNode.Parse(first.Body)!["results"]!.AsArray().Select(result => (int)result!["status"]!));

        await client.SetUpCounterAsync("gone", """{"value": 30}""");
        var replay = await client.SendKeyedAsync(HttpMethod.Post, "/batch", "batch-1", batch);

        AssertReplayOf(first, replay);
        Assert.Equal((2L, 1L), ((await client.GetCounterAsync("a")).Value, (await client.GetCounterAsync("a")).Version));
        Assert.Equal((7L, 1L), ((await client.GetCounterAsync("b")).Value, (await client.GetCounterAsync("b")).Version));
        Assert.Equal(30L, (await client.GetCounterAsync("gone")).Value); // not deleted again
    }

    [Fact]
    public async Task AKeyedAtomicBatchThatFailedIsReplayedAsTheSameFailure()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        await client.SetUpCounterAsync("full", """{"value": 1, "max": 1}""");
        // An operation after the one that fails never runs: its result is not kept, and the replay is still the same.
        var batch = BatchTesting.Body(true, """{"op": "increment", "name": "a"}""", """{"op": "increment", "name": "full"}""", """{"op": "increment", "name": "b"}""");

        var first = await client.SendKeyedAsync(HttpMethod.Post, "/batch", "atomic-1", batch);
        AssertProblem(first, HttpStatusCode.Conflict, "batch_failed");
        await client.SetUpCounterAsync("full", """{"max": null}""");

        AssertReplayOf(first, await client.SendKeyedAsync(HttpMethod.Post, "/batch", "atomic-1", batch));
        await client.AssertMissingAsync("a");
        await client.AssertMissingAsync("b");
        Assert.Equal(1L, (await client.GetCounterAsync("full")).Value);
    }

    [Fact]
    public async Task AKeyedPutThatCreatedIsReplayedAs201WithLocationAndETag()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();

        var first = await client.SendKeyedAsync(HttpMethod.Put, "/counters/a", "create-a", """{"value": 4, "max": 10}""");
        AssertStatus(first, HttpStatusCode.Created);
        Assert.Equal(("/counters/a", "\"1\""), (first.Location, first.ETag));
        await client.IncrementAsync("a");

        var replay = await client.SendKeyedAsync(HttpMethod.Put, "/counters/a", "create-a", """{"value": 4, "max": 10}""");

        AssertReplayOf(first, replay);
        var counter = await client.GetCounterAsync("a");
        Assert.Equal((5L, 2L), (counter.Value, counter.Version));
    }

    [Fact]
    public async Task AKeyedPutThatUpdatedIsReplayedAs200WithoutLocation()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        await client.SetUpCounterAsync("a", "{}");

        var first = await client.SendKeyedAsync(HttpMethod.Put, "/counters/a", "update-a", """{"value": 4}""");
        AssertStatus(first, HttpStatusCode.OK);
        Assert.Null(first.Location);

        AssertReplayOf(first, await client.SendKeyedAsync(HttpMethod.Put, "/counters/a", "update-a", """{"value": 4}"""));
        Assert.Equal(2L, (await client.GetCounterAsync("a")).Version);
    }

    [Fact]
    public async Task AKeyedDeleteIsReplayedAs204AndDoesNotDeleteAgain()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        await client.SetUpCounterAsync("a", """{"value": 1}""");

        var first = await client.SendKeyedAsync(HttpMethod.Delete, "/counters/a", "delete-a");
        AssertStatus(first, HttpStatusCode.NoContent);
        Assert.Empty(first.Body);
        await client.SetUpCounterAsync("a", """{"value": 2}""");

        var replay = await client.SendKeyedAsync(HttpMethod.Delete, "/counters/a", "delete-a");

        AssertReplayOf(first, replay);
        Assert.Equal(2L, (await client.GetCounterAsync("a")).Value);
    }

    [Fact]
    public async Task AKeyedResetIsReplayedAndDoesNotResetAgain()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        await client.SetUpCounterAsync("a", """{"value": 9, "initial": 1}""");

        var first = await client.SendKeyedAsync(HttpMethod.Post, "/counters/a/reset", "reset-a");
        AssertStatus(first, HttpStatusCode.OK);
        await client.IncrementAsync("a", """{"by": 5}""");

        AssertReplayOf(first, await client.SendKeyedAsync(HttpMethod.Post, "/counters/a/reset", "reset-a"));
        var counter = await client.GetCounterAsync("a");
        Assert.Equal((6L, 3L), (counter.Value, counter.Version));
    }

    [Theory]
    [InlineData("sync")]
    [InlineData("async")]
    public async Task AKeyIsStillRecognisedAfterARestart(string durability)
    {
        var app = new TallyApplication("sqlite", durability);
        var client = app.CreateClient();
        var increment = await client.SendKeyedAsync(HttpMethod.Post, "/counters/a/increment", "inc", """{"by": 3}""");
        var batch = BatchTesting.Body(false, """{"op": "set", "name": "b", "value": 1}""");
        var batched = await client.SendKeyedAsync(HttpMethod.Post, "/batch", "batch", batch);
        var failed = await client.SendKeyedAsync(HttpMethod.Post, "/counters/missing/reset", "fail");

        await using var restarted = await app.RestartAsync();
        client = restarted.CreateClient();

        AssertReplayOf(increment, await client.SendKeyedAsync(HttpMethod.Post, "/counters/a/increment", "inc", """{"by": 3}"""));
        AssertReplayOf(batched, await client.SendKeyedAsync(HttpMethod.Post, "/batch", "batch", batch));
        AssertReplayOf(failed, await client.SendKeyedAsync(HttpMethod.Post, "/counters/missing/reset", "fail"));
        AssertProblem(await client.SendKeyedAsync(HttpMethod.Post, "/counters/a/increment", "inc"), HttpStatusCode.UnprocessableEntity, "idempotency_key_reused");
        Assert.Equal((3L, 1L), ((await client.GetCounterAsync("a")).Value, (await client.GetCounterAsync("a")).Version));
        Assert.Equal(1L, (await client.GetCounterAsync("b")).Version);
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("memory")]
    public async Task AKeyIsForgottenOnceTheRetentionWindowHasPassed(string store)
    {
        var clock = new ManualClock(DateTimeOffset.UtcNow);
        await using var app = new TallyApplication(store, settings: new Dictionary<string, string?> { ["IdempotencyRetentionMinutes"] = "1" });
        await using var timed = app.WithWebHostBuilder(builder => builder.ConfigureTestServices(services => services.AddSingleton<TimeProvider>(clock)));
        var client = timed.CreateClient();

        var first = await client.SendKeyedAsync(HttpMethod.Post, "/counters/a/increment", "k");
        AssertStatus(first, HttpStatusCode.OK);
        clock.Advance(TimeSpan.FromSeconds(50));
        AssertReplayOf(first, await client.SendKeyedAsync(HttpMethod.Post, "/counters/a/increment", "k"));
        AssertProblem(await client.SendKeyedAsync(HttpMethod.Post, "/counters/a/increment", "k", """{"by": 2}"""), HttpStatusCode.UnprocessableEntity, "idempotency_key_reused");

        clock.Advance(TimeSpan.FromMinutes(2));
        var again = await client.SendKeyedAsync(HttpMethod.Post, "/counters/a/increment", "k");

        AssertStatus(again, HttpStatusCode.OK);
        Assert.Null(again.Replayed);
        Assert.Equal((2L, 2L), ((await client.GetCounterAsync("a")).Value, (await client.GetCounterAsync("a")).Version));
        // The key now guards the new request, for a new window.
        clock.Advance(TimeSpan.FromSeconds(50));
        AssertReplayOf(again, await client.SendKeyedAsync(HttpMethod.Post, "/counters/a/increment", "k"));

        // Once forgotten, a key may also guard a different request.
        clock.Advance(TimeSpan.FromMinutes(2));
        AssertStatus(await client.SendKeyedAsync(HttpMethod.Post, "/counters/a/increment", "k", """{"by": 10}"""), HttpStatusCode.OK);
        Assert.Equal(12L, (await client.GetCounterAsync("a")).Value);
    }

    [Fact]
    public async Task ARequestWhoseKeyIsStillInFlightIsRefusedAndChangesNothing()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        var inFlight = app.GetService<InFlightKeys>();
        // The first request with this key, as the server holds it while the request is being processed.
        var held = new IdempotencyKey(ApiKey.ConfiguredAdminId, "busy", []);
        Assert.True(inFlight.TryEnter(held));

        var second = await client.SendKeyedAsync(HttpMethod.Post, "/counters/a/increment", "busy");

        AssertProblem(second, HttpStatusCode.Conflict, "idempotency_key_in_flight");
        await client.AssertMissingAsync("a");
        // Another caller's key of the same name is not in flight.
        var other = app.CreateClientWithKey((await client.CreateKeyAsync("other", ["write"])).Key);
        AssertStatus(await other.SendKeyedAsync(HttpMethod.Post, "/counters/b/increment", "busy"), HttpStatusCode.OK);

        inFlight.Exit(held);
        var retry = await client.SendKeyedAsync(HttpMethod.Post, "/counters/a/increment", "busy");
        AssertStatus(retry, HttpStatusCode.OK);
        Assert.Null(retry.Replayed);
        Assert.Equal(1L, (await client.GetCounterAsync("a")).Value);
    }

    [Theory]
    [InlineData("sqlite", "sync")]
    [InlineData("sqlite", "async")]
    [InlineData("memory", "sync")]
    public async Task ConcurrentRequestsWithOneKeyApplyItOnce(string store, string durability)
    {
        await using var app = new TallyApplication(store, durability);
        var client = app.CreateClient();

        for (var round = 0; round < 5; round++)
        {
            var name = $"c{round}";
            var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var sending = Enumerable.Range(0, 12).Select(async _ =>
            {
                await start.Task;
                return await client.SendKeyedAsync(HttpMethod.Post, $"/counters/{name}/increment", $"key-{round}", """{"by": 7}""");
            }).ToList();
            start.SetResult();
            var responses = await Task.WhenAll(sending);

            var applied = responses.Where(response => response.Status == HttpStatusCode.OK && !response.IsReplay).ToList();
            Assert.Single(applied);
            foreach (var response in responses.Except(applied))
            {
                if (response.Status == HttpStatusCode.OK)
                {
                    AssertReplayOf(applied[0], response);
                }
                else
                {
                    AssertProblem(response, HttpStatusCode.Conflict, "idempotency_key_in_flight");
                }
            }
            var counter = await client.GetCounterAsync(name);
            Assert.Equal((7L, 1L), (counter.Value, counter.Version));
        }
    }
}
