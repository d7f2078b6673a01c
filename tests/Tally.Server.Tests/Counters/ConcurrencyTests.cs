using System.Collections.Concurrent;
using System.Net;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Counters;

/// <summary>Many clients at once: no lost update, no value handed out twice, versions count every change.</summary>
public class ConcurrencyTests
{
    private const int Requests = 2_000;
    private const int Workers = 32;

    [Theory]
    [InlineData("sqlite", "sync")]
    [InlineData("sqlite", "async")]
    [InlineData("memory", "sync")]
    public async Task ParallelIncrementsAddUpExactly(string store, string durability)
    {
        await using var app = new TallyApplication(store, durability);
        var client = app.CreateClient();

        // Half the requests hit one hot counter, the rest spread over eight others.
        var random = new Random(7);
        var plan = Enumerable.Range(0, Requests).Select(i => i % 2 == 0 ? "hot" : $"c{random.Next(8)}").ToArray();
        var seen = new ConcurrentDictionary<string, ConcurrentBag<long>>();
        var next = -1;

        await Task.WhenAll(Enumerable.Range(0, Workers).Select(_ => Task.Run(async () =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < Requests)
            {
                var response = await client.IncrementAsync(plan[i]);
                var counter = await response.ReadCounterAsync();
                seen.GetOrAdd(plan[i], _ => []).Add(counter.Value);
            }
        })));

        foreach (var group in plan.GroupBy(name => name))
        {
            var count = group.Count();
            var counter = await client.GetCounterAsync(group.Key);
            Assert.Equal((count, count), (counter.Value, counter.Version));
            // Every answer saw its own increment applied: each value from 1 to count exactly once.
            Assert.Equal(Enumerable.Range(1, count).Select(v => (long)v), seen[group.Key].Order());
        }
    }

    [Fact]
    public async Task ParallelIncrementsNeverPassTheMaximum()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        await client.SetUpCounterAsync("seats", """{"value": 0, "max": 100}""");

        var responses = await Task.WhenAll(Enumerable.Range(0, 300).Select(_ => Task.Run(() => client.IncrementAsync("seats"))));

        Assert.Equal(100, responses.Count(response => response.StatusCode == HttpStatusCode.OK));
        Assert.Equal(200, responses.Count(response => response.StatusCode == HttpStatusCode.Conflict));
        var counter = await client.GetCounterAsync("seats");
        Assert.Equal((100L, 101L), (counter.Value, counter.Version));
    }
}
