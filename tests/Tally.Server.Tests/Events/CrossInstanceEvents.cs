using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Events;

/// <summary>What live events promise across instances sharing a store, checked the same way on PostgreSQL and on Redis.</summary>
internal static class CrossInstanceEvents
{
    /// <summary>
    /// Streams opened on B: a change committed on A reaches them; B's own change reaches them once; a deletion on A
    /// reaches them; and a commit on A that changes 200 counters with long names (more than one PostgreSQL
    /// notification holds) reaches a prefix stream whole.
    /// </summary>
    public static async Task ChangesOnAReachStreamsOnBOnceEachAsync(HttpClient a, HttpClient b)
    {
        await UntilBHearsAAsync(a, b);
        await using var counter = await EventStreamClient.OpenAsync(b, "/counters/live/events");
        await using var wide = await EventStreamClient.OpenAsync(b, "/events?prefix=wide:");

        Assert.Equal(HttpStatusCode.OK, (await a.PostAsync("/counters/live/increment?by=5", null)).StatusCode);
        var fromA = await counter.NextAsync();
        Assert.Equal(("counter", 5L, 1L), (fromA.Event, fromA.Counter.Value, fromA.Counter.Version));

        Assert.Equal(HttpStatusCode.OK, (await b.PostAsync("/counters/live/increment", null)).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await a.DeleteAsync("/counters/live")).StatusCode);
        var next = await counter.NextAsync(2);
        Assert.Equal(("counter", 6L), (next[0].Event, next[0].Counter.Value)); // once, not again by the store's message
        Assert.Equal("deleted", next[1].Event);
        Assert.Equal("live", (string?)JsonNode.Parse(next[1].Data)!["name"]);

        var names = Enumerable.Range(0, 200).Select(i => $"wide:{i:D3}-{new string('x', 118)}").ToList();
        var batch = JsonSerializer.Serialize(new { ops = names.Select(name => new { op = "increment", name }) });
        Assert.Equal(HttpStatusCode.OK, (await a.PostAsync("/batch", Api.JsonBody(batch))).StatusCode);
        var arrived = await wide.NextAsync(200);
        Assert.Equal(names.Order(StringComparer.Ordinal), arrived.Select(message => message.Counter.Name).Order(StringComparer.Ordinal));
        Assert.All(arrived, message => Assert.Equal(1, message.Counter.Value));

        await a.PostAsync("/counters/live/increment", null);
        var recreated = await counter.NextAsync();
        Assert.Equal((1L, 1L), (recreated.Counter.Value, recreated.Counter.Version)); // nothing stray in between
    }

    /// <summary>
    /// An alert's crossing in a commit on A reaches streams of its counter on A and on B, once each, as <c>event: alert</c>
    /// with the webhook's payload. The instances must allow 127.0.0.1 as a webhook host (nothing listens on its port 9).
    /// </summary>
    public static async Task AlertsOnAReachStreamsOnAAndBAsync(HttpClient a, HttpClient b)
    {
        await UntilBHearsAAsync(a, b);
        var alert = await a.PutAsync("/alerts/cross-quota", Api.JsonBody("""{"counter": "cross:quota", "above": 10, "webhook": "http://127.0.0.1:9/hook"}"""));
        Assert.True(alert.IsSuccessStatusCode, await alert.Content.ReadAsStringAsync());
        await using var onA = await EventStreamClient.OpenAsync(a, "/counters/cross:quota/events");
        await using var onB = await EventStreamClient.OpenAsync(b, "/counters/cross:quota/events");

        Assert.Equal(HttpStatusCode.OK, (await a.PostAsync("/counters/cross:quota/increment?by=11", null)).StatusCode);

        foreach (var stream in new[] { onA, onB })
        {
            var events = await stream.NextAsync(2);
            Assert.Equal(["alert", "counter"], events.Select(e => e.Event).Order(StringComparer.Ordinal));
            var data = JsonNode.Parse(events.Single(e => e.Event == "alert").Data)!;
            Assert.Equal(("alert.firing", "cross-quota", "cross:quota", 11L),
                ((string?)data["type"], (string?)data["data"]!["alert"], (string?)data["data"]!["counter"], (long?)data["data"]!["value"]));
            await stream.NothingWithinAsync(TimeSpan.FromMilliseconds(300));
        }
    }

    /// <summary>
    /// B listens to the store from its start, in the background; a stream opened in the moment before ends as B begins
    /// to hear (its client would reconnect). So first: a change on A seen on a stream on B.
    /// </summary>
    public static async Task UntilBHearsAAsync(HttpClient a, HttpClient b)
    {
        var deadline = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            await using var probe = await EventStreamClient.OpenAsync(b, "/counters/probe/events");
            Assert.Equal(HttpStatusCode.OK, (await a.PostAsync("/counters/probe/increment", null)).StatusCode);
            try
            {
                await probe.NextAsync(TimeSpan.FromSeconds(2));
                return;
            }
            catch (Exception ex) when (ex is TimeoutException or Xunit.Sdk.XunitException && deadline.Elapsed < TimeSpan.FromSeconds(15))
            {
                // Not yet: again, with a stream opened now.
            }
        }
    }
}
