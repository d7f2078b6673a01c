using Tally.Client.Tests.Infrastructure;

namespace Tally.Client.Tests;

/// <summary>Live events as IAsyncEnumerable from a real stream.</summary>
public sealed class EventClientTests : IDisposable
{
    private readonly TallyServer _server = new();

    public void Dispose() => _server.Dispose();

    [Fact]
    public async Task WatchingACounterYieldsItsStateThenEveryChangeThenItsDeletion()
    {
        var client = _server.CreateTallyClient();
        await client.IncrementAsync("live", 3);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var events = client.WatchAsync("live", cancellationToken: timeout.Token).GetAsyncEnumerator(timeout.Token);

        Assert.True(await events.MoveNextAsync());
        Assert.Equal((TallyEventKind.Counter, 3L), (events.Current.Kind, events.Current.Counter!.Value));
        Assert.False(string.IsNullOrEmpty(events.Current.Id));

        await client.IncrementAsync("live", 4);
        Assert.True(await events.MoveNextAsync());
        Assert.Equal((TallyEventKind.Counter, "live", 7L, 2L), (events.Current.Kind, events.Current.Name, events.Current.Counter!.Value, events.Current.Counter.Version));

        await client.DeleteAsync("live");
        Assert.True(await events.MoveNextAsync());
        Assert.Equal((TallyEventKind.Deleted, "live", (Counter?)null), (events.Current.Kind, events.Current.Name, events.Current.Counter));
    }

    [Fact]
    public async Task WatchingAPrefixYieldsOnlyItsCounters()
    {
        var client = _server.CreateTallyClient();
        await client.IncrementAsync("w:a");
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var seen = new List<(string?, long)>();

        await foreach (var item in client.WatchPrefixAsync("w:", cancellationToken: timeout.Token))
        {
            seen.Add((item.Name, item.Counter!.Value));
            if (seen.Count == 1)
            {
                await client.IncrementAsync("other", 9);
                await client.IncrementAsync("w:b", 2);
            }
            if (seen.Count == 2)
            {
                break;
            }
        }

        Assert.Equal([("w:a", 1L), ("w:b", 2L)], seen);
    }
}
