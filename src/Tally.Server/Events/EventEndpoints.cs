using System.Net.ServerSentEvents;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Tally.Server.Auth;
using Tally.Server.Counters;
using Tally.Server.Http;
using Tally.Server.Storage;

namespace Tally.Server.Events;

/// <summary>Live events: <c>GET /counters/{name}/events</c> and <c>GET /events?prefix=</c>, as Server-Sent Events.</summary>
internal static class EventEndpoints
{
    /// <summary>The most counters a prefix stream's initial state shows: the first ones in name order.</summary>
    public const int MaxInitialCounters = 1000;

    public static IEndpointRouteBuilder MapEvents(this IEndpointRouteBuilder routes)
    {
        routes.MapGet("/counters/{name}/events", CounterEvents).WithTags("Events").WithName("CounterEvents")
            .WithSummary("Watch a counter: its state, then its committed changes (Server-Sent Events)")
            .RequireAuthorization(AuthPolicies.Read).RefuseUnknownQuery()
            .ProducesProblem(StatusCodes.Status400BadRequest).ProducesProblem(StatusCodes.Status429TooManyRequests);
        routes.MapGet("/events", PrefixEvents).WithTags("Events").WithName("PrefixEvents")
            .WithSummary("Watch every counter under a prefix: their state, then their committed changes (Server-Sent Events)")
            .RequireAuthorization(AuthPolicies.Read).RefuseUnknownQuery().AllowQuery("prefix")
            .ProducesProblem(StatusCodes.Status400BadRequest).ProducesProblem(StatusCodes.Status429TooManyRequests);
        return routes;
    }

    private static async Task<Results<ServerSentEventsResult<string>, ProblemHttpResult>> CounterEvents(
        string name, HttpContext context, EventHub hub, ICounterStore store, IOptions<EventOptions> options, TimeProvider clock) =>
        CounterName.IsValid(name)
            ? await OpenAsync(context, EventFilter.ForCounter(name), hub, store, options.Value, clock)
            : CounterEndpoints.InvalidName(name);

    private static async Task<Results<ServerSentEventsResult<string>, ProblemHttpResult>> PrefixEvents(
        string? prefix, HttpContext context, EventHub hub, ICounterStore store, IOptions<EventOptions> options, TimeProvider clock)
    {
        prefix = string.IsNullOrEmpty(prefix) ? Caller.PrefixOf(context.User) : prefix; // a key watches inside its prefix
        if (!CounterName.IsValidPrefix(prefix))
        {
            return Problems.Create(Problems.InvalidQuery, "'prefix' must be the beginning of a valid counter name.");
        }
        return await OpenAsync(context, EventFilter.ForPrefix(prefix), hub, store, options.Value, clock);
    }

    private static async Task<Results<ServerSentEventsResult<string>, ProblemHttpResult>> OpenAsync(
        HttpContext context, EventFilter filter, EventHub hub, ICounterStore store, EventOptions options, TimeProvider clock)
    {
        if (HeadRequests.IsHead(context))
        {
            return Stream(context, NoEvents()); // the headers of a stream, and no stream
        }
        var keyId = Caller.From(context.User)?.KeyId ?? ApiKey.AnonymousId;
        var opening = hub.Open(keyId, filter, context.Request.Headers["Last-Event-ID"].ToString());
        if (opening.Subscription is not { } subscription)
        {
            return Problems.Create(Problems.TooManyStreams, opening.Refusal!);
        }
        context.Response.RegisterForDispose(subscription);
        subscription.Abort = context.Abort;
        IReadOnlyList<byte[]> first;
        InitialState? shown = null;
        try
        {
            if (opening.Replay is { } missed)
            {
                first = missed.ConvertAll(e => e.Frame);
            }
            else
            {
                var counters = await CurrentStateAsync(store, filter, context.RequestAborted);
                (first, shown) = Initial(counters, hub, subscription.StartSequence);
            }
        }
        catch
        {
            subscription.Dispose();
            throw;
        }
        var stream = new EventStream(subscription, first, shown, context.Response,
            TimeSpan.FromMilliseconds(options.HeartbeatIntervalMs), clock);
        return Stream(context, stream.ReadAllAsync(context.RequestAborted));
    }

    private static ServerSentEventsResult<string> Stream(HttpContext context, IAsyncEnumerable<SseItem<string>> events)
    {
        // Every event must reach the client at once: no buffering in nginx (X-Accel-Buffering) or here. The result
        // itself sets Content-Type: text/event-stream and Cache-Control: no-cache,no-store.
        context.Response.Headers["X-Accel-Buffering"] = "no";
        context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpResponseBodyFeature>()?.DisableBuffering();
        return TypedResults.ServerSentEvents(events);
    }

    /// <summary>The counter (none if it does not exist), or the first <see cref="MaxInitialCounters"/> under the prefix, read a page at a time.</summary>
    private static async Task<List<Counter>> CurrentStateAsync(ICounterStore store, EventFilter filter, CancellationToken cancellationToken)
    {
        if (filter.Name is { } name)
        {
            return await store.GetAsync(name, cancellationToken) is { } counter ? [counter] : [];
        }
        var counters = new List<Counter>();
        string? after = null;
        while (counters.Count < MaxInitialCounters)
        {
            var page = await store.ListAsync(filter.Prefix, after, Math.Min(CounterEndpoints.MaxPageSize, MaxInitialCounters - counters.Count), cancellationToken);
            counters.AddRange(page);
            if (page.Count == 0 || counters.Count >= MaxInitialCounters)
            {
                break;
            }
            after = page[^1].Name;
        }
        return counters;
    }

    /// <summary>
    /// The initial state as events, numbered by the sequence the stream opened at: the last one carries it plainly
    /// (a client that got the whole state may resume from it), the others as parts of it.
    /// </summary>
    private static (List<byte[]> Frames, InitialState Shown) Initial(List<Counter> counters, EventHub hub, long opened)
    {
        var items = new List<byte[]>(counters.Count);
        var seen = new Dictionary<string, (long, long)>(counters.Count, StringComparer.Ordinal);
        for (var i = 0; i < counters.Count; i++)
        {
            var id = i == counters.Count - 1 ? EventIds.Format(hub.InstanceId, opened) : EventIds.Format(hub.InstanceId, opened, i + 1);
            items.Add(EventFrames.Of(HubEvent.TypeOf(EventKind.Counter), id, EventJson.Counter(counters[i])));
            seen[counters[i].Name] = (counters[i].CreatedAt, counters[i].Version);
        }
        // Events published up to now may already be in what was read.
        return (items, new InitialState(seen, hub.Sequence));
    }

    private static async IAsyncEnumerable<SseItem<string>> NoEvents()
    {
        await Task.CompletedTask;
        yield break;
    }
}
