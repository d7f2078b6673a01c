using System.Net;
using System.Text.Json.Nodes;
using Tally.Server.Events;
using Tally.Server.Tests.Auth;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Events;

/// <summary>
/// Live events in-process: <c>GET /counters/{name}/events</c> and <c>GET /events?prefix=</c> as a client reads them.
/// Every read of a stream has a deadline (<see cref="EventStreamClient"/>).
/// </summary>
public class EventStreamTests
{
    private static TallyApplication App(string store = "memory", params (string Key, string Value)[] settings) =>
        new(store, settings: settings.ToDictionary(setting => setting.Key, setting => (string?)setting.Value));

    [Theory]
    [InlineData("memory", "sync")]
    [InlineData("sqlite", "sync")]
    [InlineData("sqlite", "async")]
    public async Task ACounterStreamStartsWithItsStateThenShowsEveryCommittedChangeWithAnId(string store, string durability)
    {
        await using var app = new TallyApplication(store, durability);
        var client = app.CreateClient();
        await client.SetUpCounterAsync("visits", """{"value": 5}""");

        await using var stream = await EventStreamClient.OpenAsync(client, "/counters/visits/events");
        Assert.True(stream.Response.Headers.CacheControl is { NoCache: true, NoStore: true }, $"Cache-Control: {stream.Response.Headers.CacheControl}");
        Assert.Equal("no", Assert.Single(stream.Response.Headers.GetValues("X-Accel-Buffering")));
        var first = await stream.NextAsync();
        Assert.Equal("counter", first.Event);
        Assert.Equal(await client.GetStringAsync("/counters/visits"), first.Data); // the JSON of GET, exactly

        await client.IncrementAsync("visits");
        await client.IncrementAsync("visits", """{"by": 3}""");
        // Both changes, or only the last when the second came within Events:CoalesceMs of the first (conflated).
        var changes = await UntilAsync(stream, message => message.Counter.Version == 3);
        Assert.All(changes, change => Assert.Equal("counter", change.Event));
        var shown = changes.Select(change => (change.Counter.Value, change.Counter.Version)).ToList();
        Assert.True(shown.SequenceEqual([(6L, 2L), (9L, 3L)]) || shown.SequenceEqual([(9L, 3L)]), string.Join(' ', shown));
        Assert.Equal(await client.GetStringAsync("/counters/visits"), changes[^1].Data);
        var ids = changes.Select(change => change.Id).Prepend(first.Id).ToList();
        Assert.All(ids, id => Assert.False(string.IsNullOrEmpty(id)));
        Assert.Equal(ids.Count, ids.Distinct().Count());
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1000)]
    public async Task QuickChangesAreConflatedToTheLatestStateUnlessCoalesceMsIsZero(int coalesceMs)
    {
        await using var app = App(settings: ("Events:CoalesceMs", coalesceMs.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        var client = app.CreateClient();
        await using var stream = await EventStreamClient.OpenAsync(client, "/counters/quick/events");

        // With conflation the stream writes at most once a second, however many changes come meanwhile.
        var changing = System.Diagnostics.Stopwatch.StartNew();
        for (var i = 0; i < 50; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await client.IncrementAsync("quick")).StatusCode);
        }
        changing.Stop();
        var shown = await UntilAsync(stream, message => message.Counter.Value == 50);
        var values = shown.Select(message => message.Counter.Value).ToList();
        if (coalesceMs == 0)
        {
            Assert.Equal(Enumerable.Range(1, 50).Select(i => (long)i), values); // every event
        }
        else
        {
            AssertConflated(values.Count, changing.Elapsed, coalesceMs, values);
        }
        Assert.Equal(50L, values[^1]);
        Assert.Equal(values.Order(), values); // never an older state after a newer one
        AssertIncreasing(shown);
        await stream.NothingWithinAsync(TimeSpan.FromMilliseconds(coalesceMs + 300)); // and nothing more: the last was the latest
    }

    [Fact]
    public async Task DeletedAndAlertEventsAreNeverConflatedAwayNorReorderedAgainstTheStates()
    {
        await using var app = App(settings: ("Events:CoalesceMs", "1000"));
        var client = app.CreateClient();
        var hub = app.GetService<EventHub>();
        await using var stream = await EventStreamClient.OpenAsync(client, "/counters/flip/events");
        await client.IncrementAsync("flip");
        Assert.Equal(1, (await stream.NextAsync()).Counter.Value); // written on a tick; the next is a second away

        for (var i = 0; i < 5; i++)
        {
            await client.IncrementAsync("flip");
        }
        hub.PublishAlert("flip", """{"alert":"flip-high","value":6}""");
        for (var i = 0; i < 3; i++)
        {
            await client.IncrementAsync("flip");
        }
        Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync("/counters/flip")).StatusCode);
        await client.IncrementAsync("flip");
        await client.IncrementAsync("flip", """{"by": 4}""");

        var shown = await UntilAsync(stream, message => message.Event == "counter" && message.Counter.Version == 2 && message.Counter.Value == 5);
        AssertIncreasing(shown);
        var kinds = shown.Select(message => message.Event).ToList();
        Assert.Equal(1, kinds.Count(kind => kind == "alert"));
        Assert.Equal(1, kinds.Count(kind => kind == "deleted"));
        var alert = kinds.IndexOf("alert");
        var deleted = kinds.IndexOf("deleted");
        Assert.True(alert < deleted, string.Join(' ', shown));
        Assert.Equal("""{"alert":"flip-high","value":6}""", shown[alert].Data);
        // States shown before the alert are from before it, those between it and the deletion from after it.
        Assert.All(shown.Take(alert), message => Assert.InRange(message.Counter.Value, 2, 6));
        Assert.All(shown.Skip(alert + 1).Take(deleted - alert - 1), message => Assert.InRange(message.Counter.Value, 7, 9));
        Assert.All(shown.Skip(deleted + 1), message => Assert.InRange(message.Counter.Version, 1, 2));
        await stream.NothingWithinAsync(TimeSpan.FromMilliseconds(1300));
    }

    [Fact]
    public async Task AStateAndTheDeletionAfterItInOneTickAreSentInThatOrder()
    {
        await using var app = App(settings: ("Events:CoalesceMs", "1000"));
        var client = app.CreateClient();
        await client.SetUpCounterAsync("brief", """{"value": 1}""");
        await using var stream = await EventStreamClient.OpenAsync(client, "/counters/brief/events");
        Assert.Equal(1, (await stream.NextAsync()).Counter.Value);

        await client.IncrementAsync("brief"); // staged: the tick is a second away, and the deletion joins it
        Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync("/counters/brief")).StatusCode);
        var shown = await stream.NextAsync(2);
        Assert.Equal([("counter", "2"), ("deleted", "brief")], shown.Select(message =>
            (message.Event, message.Event == "counter" ? message.Counter.Value.ToString(System.Globalization.CultureInfo.InvariantCulture)
                : (string?)JsonNode.Parse(message.Data)!["name"])));
        AssertIncreasing(shown);
    }

    [Fact]
    public async Task AStreamResumedWhileAChangeWaitsForTheTickGetsThatChangeOnce()
    {
        // A commit's events wait for the next tick; a stream that opens meanwhile must not get them again at the tick
        // when its opening already carried them (here: the events missed since Last-Event-ID).
        await using var app = App(settings: ("Events:CoalesceMs", "1000"));
        var client = app.CreateClient();
        await client.IncrementAsync("waiting");
        await using var watching = await EventStreamClient.OpenAsync(client, "/counters/waiting/events");
        var first = await watching.NextAsync();
        Assert.Equal(1, first.Counter.Value);

        await client.IncrementAsync("waiting"); // staged: the tick is a second away
        await using var resumed = await EventStreamClient.OpenAsync(client, "/counters/waiting/events", lastEventId: first.Id);
        var missed = await resumed.NextAsync();
        Assert.Equal((2L, 2L), (missed.Counter.Value, missed.Counter.Version));
        var ticked = await watching.NextAsync();
        Assert.Equal((2L, missed.Id), (ticked.Counter.Value, ticked.Id));
        await resumed.NothingWithinAsync(TimeSpan.FromMilliseconds(1300));
    }

    [Fact]
    public async Task AStreamOpenedWhileADeletionWaitsForTheTickStartsFromTheStateAfterIt()
    {
        await using var app = App(settings: ("Events:CoalesceMs", "1000"));
        var client = app.CreateClient();
        await client.SetUpCounterAsync("phoenix", """{"value": 5}""");
        await using var watching = await EventStreamClient.OpenAsync(client, "/counters/phoenix/events");
        Assert.Equal(5, (await watching.NextAsync()).Counter.Value);

        // Deleted and created again before the tick: a stream opened now starts with the new counter, and the deletion
        // from before it opened never follows (it would say the counter is gone while it exists).
        Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync("/counters/phoenix")).StatusCode);
        await client.IncrementAsync("phoenix");
        await using var late = await EventStreamClient.OpenAsync(client, "/counters/phoenix/events");
        var initial = await late.NextAsync();
        Assert.Equal(("counter", 1L, 1L), (initial.Event, initial.Counter.Value, initial.Counter.Version));

        var seen = await watching.NextAsync(2);
        Assert.Equal(["deleted", "counter"], seen.Select(message => message.Event));
        Assert.Equal(1, seen[1].Counter.Value);
        await late.NothingWithinAsync(TimeSpan.FromMilliseconds(1300));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(50)]
    public async Task ManyStreamsOnOneCounterAllGetItsEvents(int coalesceMs)
    {
        // The hub serializes an event once and writes the same frame to every stream on its tick: each stream (counter
        // and prefix streams alike) shows increasing ids and ends with the last state, under the same id.
        await using var app = App(settings: [("Events:CoalesceMs", coalesceMs.ToString(System.Globalization.CultureInfo.InvariantCulture))]);
        var client = app.CreateClient();
        await client.SetUpCounterAsync("shared", """{"value": 0}""");
        var streams = new List<EventStreamClient>();
        try
        {
            for (var i = 0; i < 20; i++)
            {
                streams.Add(await EventStreamClient.OpenAsync(app.CreateClient(), i % 5 == 0 ? "/events?prefix=shar" : "/counters/shared/events"));
            }
            foreach (var stream in streams)
            {
                Assert.Equal(0, (await stream.NextAsync()).Counter.Value);
            }
            await Task.WhenAll(Enumerable.Range(0, 4).Select(async _ =>
            {
                for (var i = 0; i < 10; i++)
                {
                    await client.IncrementAsync("shared");
                }
            }));
            var seen = new List<List<SseMessage>>();
            foreach (var stream in streams)
            {
                var shown = await UntilAsync(stream, message => message.Counter.Value == 40);
                AssertIncreasing(shown);
                seen.Add(shown);
            }
            // Without conflation every stream shows every commit, all alike; with it, each shows the last state (a
            // stream whose write was still under way at a tick may skip a state the others showed).
            if (coalesceMs == 0)
            {
                Assert.All(seen, shown => Assert.Equal(seen[0].Select(message => (message.Id, message.Data)), shown.Select(message => (message.Id, message.Data))));
            }
            Assert.Single(seen.Select(shown => (shown[^1].Id, shown[^1].Data)).Distinct());
        }
        finally
        {
            foreach (var stream in streams)
            {
                await stream.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task AResumeFromAConflatedEventGetsEveryChangeAfterIt()
    {
        await using var app = App(settings: ("Events:CoalesceMs", "1000"));
        var client = app.CreateClient();
        string lastId;
        await using (var stream = await EventStreamClient.OpenAsync(client, "/counters/skipped/events"))
        {
            for (var i = 0; i < 20; i++)
            {
                await client.IncrementAsync("skipped");
            }
            var shown = await UntilAsync(stream, message => message.Counter.Value == 20);
            Assert.True(shown.Count < 20, $"{shown.Count} events for 20 quick changes");
            lastId = shown[^1].Id!;
        }
        await client.IncrementAsync("skipped");
        await client.IncrementAsync("other");
        await client.IncrementAsync("skipped", """{"by": 2}""");

        await using var resumed = await EventStreamClient.OpenAsync(client, "/counters/skipped/events", lastEventId: lastId);
        var missed = await resumed.NextAsync(2);
        Assert.Equal([(21L, 21L), (23L, 22L)], missed.Select(message => (message.Counter.Value, message.Counter.Version)));
        AssertIncreasing([.. missed.Prepend(new SseMessage("counter", "{}", lastId))]);
    }

    [Fact]
    public async Task AStreamOnAMissingCounterStartsEmptyThenShowsItsCreationDeletionAndRecreation()
    {
        await using var app = App();
        var client = app.CreateClient();
        await using var stream = await EventStreamClient.OpenAsync(client, "/counters/ghost/events");

        await client.IncrementAsync("ghost");
        var created = await stream.NextAsync();
        Assert.Equal(("counter", 1L, 1L), (created.Event, created.Counter.Value, created.Counter.Version));
        Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync("/counters/ghost")).StatusCode);
        var deleted = await stream.NextAsync();
        Assert.Equal("deleted", deleted.Event);
        Assert.Equal("ghost", (string?)JsonNode.Parse(deleted.Data)!["name"]);
        Assert.False(string.IsNullOrEmpty(deleted.Id));
        await client.SetUpCounterAsync("ghost", """{"value": 7}""");
        var again = await stream.NextAsync();
        Assert.Equal(("counter", 7L, 1L), (again.Event, again.Counter.Value, again.Counter.Version));
    }

    [Fact]
    public async Task LastEventIdResumesWithTheChangesMissedAndAnIdItCannotResumeFromStartsWithTheCurrentState()
    {
        await using var app = App();
        var client = app.CreateClient();
        await client.IncrementAsync("resumed");
        string lastId;
        await using (var stream = await EventStreamClient.OpenAsync(client, "/counters/resumed/events"))
        {
            Assert.Equal(1, (await stream.NextAsync()).Counter.Value);
            await client.IncrementAsync("resumed");
            lastId = (await stream.NextAsync()).Id!;
        }
        await client.IncrementAsync("resumed");
        await client.IncrementAsync("other"); // not this stream's
        await client.IncrementAsync("resumed");

        await using (var resumed = await EventStreamClient.OpenAsync(client, "/counters/resumed/events", lastEventId: lastId))
        {
            var missed = await resumed.NextAsync(2);
            Assert.Equal([3L, 4L], missed.Select(message => message.Counter.Value));
            await client.IncrementAsync("resumed");
            Assert.Equal(5, (await resumed.NextAsync()).Counter.Value);
        }

        // Another instance's id, an id from before a restart, a made-up one: the current state, then on.
        var instance = lastId[..lastId.IndexOf('-', StringComparison.Ordinal)];
        foreach (var unknown in new[] { "0123456789abcdef-3", $"{instance}-999999", $"{instance}-1-1", "nonsense", "" })
        {
            await using var fresh = await EventStreamClient.OpenAsync(client, "/counters/resumed/events", lastEventId: unknown);
            var state = await fresh.NextAsync();
            Assert.True(state.Counter.Value == 5, $"Last-Event-ID '{unknown}': {state}");
        }
    }

    [Fact]
    public async Task AResumeFromTheLastEventOfTheInitialStateMissesNothingAndOneFromTheMiddleStartsOver()
    {
        await using var app = App();
        var client = app.CreateClient();
        foreach (var name in new[] { "wall:a", "wall:b", "wall:c" })
        {
            await client.IncrementAsync(name);
        }
        List<SseMessage> initial;
        await using (var stream = await EventStreamClient.OpenAsync(client, "/events?prefix=wall:"))
        {
            initial = await stream.NextAsync(3);
        }
        Assert.Equal(["wall:a", "wall:b", "wall:c"], initial.Select(message => message.Counter.Name));
        await client.IncrementAsync("wall:b");

        await using (var resumed = await EventStreamClient.OpenAsync(client, "/events?prefix=wall:", lastEventId: initial[^1].Id))
        {
            var next = await resumed.NextAsync();
            Assert.Equal(("wall:b", 2L), (next.Counter.Name, next.Counter.Value));
        }
        await using (var cut = await EventStreamClient.OpenAsync(client, "/events?prefix=wall:", lastEventId: initial[0].Id))
        {
            Assert.Equal(["wall:a", "wall:b", "wall:c"], (await cut.NextAsync(3)).Select(message => message.Counter.Name));
        }
    }

    [Fact]
    public async Task AnIdleStreamGetsAHeartbeatCommentAtTheConfiguredInterval()
    {
        await using var app = App(settings: ("Events:HeartbeatIntervalMs", "200"));
        await using var stream = await EventStreamClient.OpenAsync(app.CreateClient(), "/counters/quiet/events");

        Assert.Equal("heartbeat", await stream.NextCommentAsync(TimeSpan.FromSeconds(5)));
        Assert.Equal("heartbeat", await stream.NextCommentAsync(TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public async Task APrefixStreamStartsWithTheCountersUnderItInNameOrderAndShowsOnlyTheirChanges()
    {
        await using var app = App();
        var client = app.CreateClient();
        await client.SetUpCounterAsync("shop:b", """{"value": 2}""");
        await client.SetUpCounterAsync("shop:a", """{"value": 1}""");
        await client.SetUpCounterAsync("shopping", """{"value": 9}""");

        await using var stream = await EventStreamClient.OpenAsync(client, "/events?prefix=shop:");
        var initial = await stream.NextAsync(2);
        Assert.Equal([("shop:a", 1L), ("shop:b", 2L)], initial.Select(message => (message.Counter.Name, message.Counter.Value)));
        Assert.NotEqual(initial[0].Id, initial[1].Id);

        await client.IncrementAsync("shopping");
        await client.IncrementAsync("other");
        await client.IncrementAsync("shop:c");
        var next = await stream.NextAsync();
        Assert.Equal(("shop:c", 1L), (next.Counter.Name, next.Counter.Value));
    }

    [Fact]
    public async Task ACommitShowsEachCounterOnceInItsFinalState()
    {
        await using var app = App();
        var client = app.CreateClient();
        await client.IncrementAsync("batch:gone");
        await using var stream = await EventStreamClient.OpenAsync(client, "/events?prefix=batch:");
        Assert.Equal("batch:gone", (await stream.NextAsync()).Counter.Name);

        var response = await client.PostAsync("/batch", Api.JsonBody("""
            {"atomic": true, "ops": [
              {"op": "increment", "name": "batch:a"}, {"op": "delete", "name": "batch:gone"},
              {"op": "increment", "name": "batch:a", "by": 2}, {"op": "increment", "name": "batch:b"}]}
            """));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var events = await stream.NextAsync(3);
        Assert.Equal(["deleted", "counter", "counter"], events.Select(message => message.Event));
        Assert.Equal("batch:gone", (string?)JsonNode.Parse(events[0].Data)!["name"]);
        Assert.Equal([("batch:a", 3L, 2L), ("batch:b", 1L, 1L)], events.Skip(1).Select(m => (m.Counter.Name, m.Counter.Value, m.Counter.Version)));
        await client.IncrementAsync("batch:b");
        Assert.Equal(2, (await stream.NextAsync()).Counter.Value); // and nothing in between
    }

    [Fact]
    public async Task StreamsNeedTheReadScopeAndStayInsideTheKeysPrefix()
    {
        await using var app = App();
        var admin = app.CreateClient();
        await admin.IncrementAsync("shop:orders");
        await admin.IncrementAsync("blog:views");
        var shop = app.CreateClientWithKey((await admin.CreateKeyAsync("shop reader", ["read"], prefix: "shop:")).Key);
        var pusher = app.CreateClientWithKey((await admin.CreateKeyAsync("pusher", ["increment"])).Key);

        await using (var all = await EventStreamClient.OpenAsync(shop, "/events"))
        {
            Assert.Equal("shop:orders", (await all.NextAsync()).Counter.Name); // narrowed to the key's prefix, as listing is
            await admin.IncrementAsync("blog:views");
            await admin.IncrementAsync("shop:orders");
            var next = (await all.NextAsync()).Counter;
            Assert.Equal(("shop:orders", 2L), (next.Name, next.Value));
        }
        await using (var inside = await EventStreamClient.OpenAsync(shop, "/counters/shop:orders/events"))
        {
            Assert.Equal(2, (await inside.NextAsync()).Counter.Value);
        }
        await (await EventStreamClient.RefusedAsync(shop, "/counters/blog:views/events")).ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");
        await (await EventStreamClient.RefusedAsync(shop, "/events?prefix=blog:")).ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");
        await (await EventStreamClient.RefusedAsync(shop, "/events?prefix=sh")).ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");
        await (await EventStreamClient.RefusedAsync(pusher, "/counters/shop:orders/events")).ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");
        await (await EventStreamClient.RefusedAsync(app.CreateClientWithKey(null), "/events")).ReadProblemAsync(HttpStatusCode.Unauthorized, "unauthorized");
    }

    [Fact]
    public async Task BadNamesPrefixesAndQueryParametersAreRefused()
    {
        await using var app = App();
        var client = app.CreateClient();
        await (await EventStreamClient.RefusedAsync(client, "/counters/-bad/events")).ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_name");
        await (await EventStreamClient.RefusedAsync(client, "/events?prefix=-bad")).ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_query");
        await (await EventStreamClient.RefusedAsync(client, "/events?prefx=a")).ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_query");
        await (await EventStreamClient.RefusedAsync(client, "/counters/a/events?since=1")).ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_query");
    }

    [Fact]
    public async Task StreamsPastAKeysLimitOrTheInstancesAre429UntilOneCloses()
    {
        await using var app = App(settings: [("Events:MaxStreamsPerKey", "2"), ("Events:MaxStreams", "3")]);
        var admin = app.CreateClient();
        var watcher = app.CreateClientWithKey((await admin.CreateKeyAsync("watcher", ["read"])).Key);

        var first = await EventStreamClient.OpenAsync(watcher, "/counters/a/events");
        await using var second = await EventStreamClient.OpenAsync(watcher, "/events");
        var refused = await (await EventStreamClient.RefusedAsync(watcher, "/counters/b/events")).ReadProblemAsync(HttpStatusCode.TooManyRequests, "too_many_streams");
        Assert.Contains("Events:MaxStreamsPerKey", (string?)refused["detail"], StringComparison.Ordinal);

        await using var third = await EventStreamClient.OpenAsync(admin, "/counters/a/events"); // another key may
        var full = await (await EventStreamClient.RefusedAsync(admin, "/counters/b/events")).ReadProblemAsync(HttpStatusCode.TooManyRequests, "too_many_streams");
        Assert.Contains("Events:MaxStreams", (string?)full["detail"], StringComparison.Ordinal);

        await first.DisposeAsync(); // the server sees the client go, and the place is free again
        await Eventually(async () =>
        {
            var request = new HttpRequestMessage(HttpMethod.Get, "/counters/b/events");
            using var response = await watcher.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            return response.StatusCode == HttpStatusCode.OK;
        }, "a stream of the key closed, so it may open another");
    }

    [Fact]
    public async Task ASlowConsumerIsDroppedWithoutSlowingCommits()
    {
        await using var app = App(settings: ("Events:StreamBuffer", "16"));
        var client = app.CreateClient();
        var hub = app.GetService<EventHub>();
        // A client that opens a stream on everything and never reads it.
        await using var stalled = await EventStreamClient.OpenAsync(app.CreateClient(), "/events?prefix=load:");

        var clock = System.Diagnostics.Stopwatch.StartNew();
        var failures = 0;
        await Task.WhenAll(Enumerable.Range(0, 8).Select(worker => Task.Run(async () =>
        {
            using var http = app.CreateClient();
            for (var i = 0; i < 250; i++)
            {
                if ((await http.IncrementAsync($"load:{worker}-{i}")).StatusCode != HttpStatusCode.OK)
                {
                    Interlocked.Increment(ref failures);
                }
            }
        }))).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(0, failures);

        // The stream was dropped: what reached the client before ends, far short of the 2,000 changes.
        var received = await stalled.ReadToEndAsync(TimeSpan.FromSeconds(10));
        Assert.True(received.Count < 2000, $"{received.Count} events reached the stalled client; it should have been dropped.");
        await Eventually(() => Task.FromResult(hub.OpenStreams == 0), "the dropped stream closed");
        Assert.Contains("tally_events_streams_dropped_total 1\n", await client.GetStringAsync("/metrics"), StringComparison.Ordinal);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60));
    }

    [Fact]
    public async Task AClientThatStopsTakingWritesIsDroppedWithoutSlowingCommits()
    {
        // One counter: conflation keeps one event pending however far behind the client is, so what drops it is a write
        // the client has not taken for Events:WriteTimeoutMs (here the test server's response buffer, full).
        await using var app = App(settings: [("Events:CoalesceMs", "1"), ("Events:WriteTimeoutMs", "200")]);
        var client = app.CreateClient();
        var hub = app.GetService<EventHub>();
        await client.SetUpCounterAsync("stuck", """{"value": 0}""");
        await using var stalled = await EventStreamClient.OpenAsync(app.CreateClient(), "/counters/stuck/events");

        var failures = 0;
        var commits = 0;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (hub.OpenStreams > 0 && clock.Elapsed < TimeSpan.FromSeconds(30))
        {
            await Task.WhenAll(Enumerable.Range(0, 4).Select(async _ =>
            {
                if ((await client.IncrementAsync("stuck", """{"by": 1}""")).StatusCode != HttpStatusCode.OK)
                {
                    Interlocked.Increment(ref failures);
                }
                Interlocked.Increment(ref commits);
            }));
        }
        Assert.True(hub.OpenStreams == 0, $"The stalled stream is still open after {commits} commits in {clock.Elapsed.TotalSeconds:0.#} s.");
        Assert.Equal(0, failures);
        Assert.Contains("tally_events_streams_dropped_total 1\n", await client.GetStringAsync("/metrics"), StringComparison.Ordinal);
        // Cut off: the client reads what was buffered, then the end (an aborted response, or its end).
        try
        {
            await stalled.ReadToEndAsync(TimeSpan.FromSeconds(10));
        }
        catch (IOException)
        {
        }
        catch (HttpRequestException)
        {
        }
    }

    [Fact]
    public async Task TheAlertHookReachesTheStreamsOfItsCounter()
    {
        await using var app = App();
        var client = app.CreateClient();
        await using var watched = await EventStreamClient.OpenAsync(client, "/counters/quota/events");
        await using var other = await EventStreamClient.OpenAsync(client, "/counters/unrelated/events");

        app.GetService<EventHub>().PublishAlert("quota", """{"alert":"free-quota","state":"firing"}""");
        var alert = await watched.NextAsync();
        Assert.Equal(("alert", """{"alert":"free-quota","state":"firing"}"""), (alert.Event, alert.Data));
        Assert.False(string.IsNullOrEmpty(alert.Id));
        await other.NothingWithinAsync(TimeSpan.FromMilliseconds(300));
    }

    [Theory]
    [InlineData("memory")]
    [InlineData("sqlite")]
    public async Task AnAlertCrossingIsAnAlertEventOnItsCountersStream(string store)
    {
        // The webhook never answers (nothing listens on port 9 of loopback): the stream does not wait for delivery.
        await using var app = App(store, ("Alerts:AllowedHosts", "127.0.0.1"));
        var client = app.CreateClient();
        Assert.Equal(HttpStatusCode.Created, (await client.PutAsync("/alerts/quota-high",
            Api.JsonBody("""{"counter": "quota", "above": 2, "webhook": "http://127.0.0.1:9/hook"}"""))).StatusCode);
        await using var stream = await EventStreamClient.OpenAsync(client, "/counters/quota/events");

        await client.IncrementAsync("quota", """{"by": 3}""");
        // The engine reports the alert as it commits, the pipeline the counter once the commit is acknowledged: both come.
        var received = await stream.NextAsync(2);
        Assert.Equal(["alert", "counter"], received.Select(e => e.Event).Order());
        var alert = received.Single(e => e.Event == "alert");
        var data = JsonNode.Parse(alert.Data)!;
        Assert.Equal("alert.firing", (string?)data["type"]);
        Assert.Equal(("quota-high", 3L), ((string?)data["data"]!["alert"], (long)data["data"]!["value"]!));
    }

    [Fact]
    public async Task HeadAnswersWithAStreamsHeadersAndNoStream()
    {
        await using var app = App();
        using var response = await app.CreateClient().SendAsync(new HttpRequestMessage(HttpMethod.Head, "/counters/a/events"))
            .WaitAsync(EventStreamClient.DefaultTimeout);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        Assert.Empty(await response.Content.ReadAsByteArrayAsync());
        Assert.Equal(0, app.GetService<EventHub>().OpenStreams);
    }

    [Fact]
    public async Task StoppingTheInstanceEndsItsStreams()
    {
        var app = App();
        await using var stream = await EventStreamClient.OpenAsync(app.CreateClient(), "/counters/a/events");
        var stopping = app.DisposeAsync().AsTask();
        await stream.ReadToEndAsync(TimeSpan.FromSeconds(5));
        await stopping.WaitAsync(TimeSpan.FromSeconds(5));
    }

    /// <summary>
    /// At most one write per CoalesceMs while the changes came (<paramref name="changing"/>), give or take a tick at
    /// either end, and the last state after them: a bound that holds however slowly the machine ran the changes.
    /// </summary>
    private static void AssertConflated(int events, TimeSpan changing, int coalesceMs, IEnumerable<long> values)
    {
        var bound = 2 + (int)Math.Ceiling(changing.TotalMilliseconds / coalesceMs) + 1;
        Assert.True(events <= bound,
            $"{events} events for changes over {changing.TotalMilliseconds:F0} ms with CoalesceMs {coalesceMs} (at most {bound}): {string.Join(' ', values)}");
    }

    /// <summary>Events up to and with the first that <paramref name="last"/> matches.</summary>
    private static async Task<List<SseMessage>> UntilAsync(EventStreamClient stream, Func<SseMessage, bool> last)
    {
        var messages = new List<SseMessage>();
        while (messages.Count == 0 || !last(messages[^1]))
        {
            Assert.True(messages.Count < 1000, $"No end among 1000 events: {stream.Describe()}");
            messages.Add(await stream.NextAsync());
        }
        return messages;
    }

    /// <summary>Ids name increasing points of the instance's sequence, so that any of them is a place to resume from.</summary>
    private static void AssertIncreasing(List<SseMessage> messages)
    {
        var sequences = messages.Select(message => long.Parse(message.Id![(message.Id!.IndexOf('-', StringComparison.Ordinal) + 1)..],
            System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Assert.True(sequences.Zip(sequences.Skip(1)).All(pair => pair.First < pair.Second), $"Ids not increasing: {string.Join(' ', messages.Select(m => m.Id))}");
    }

    private static async Task Eventually(Func<Task<bool>> condition, string what)
    {
        var deadline = System.Diagnostics.Stopwatch.StartNew();
        while (!await condition())
        {
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(5), $"Not within 5 s: {what}");
            await Task.Delay(20);
        }
    }
}
