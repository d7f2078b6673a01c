using Tally.Server.Counters;
using Tally.Server.History;
using Tally.Server.Storage;
using Tally.Server.Tests.Storage;

namespace Tally.Server.Tests.History;

/// <summary>
/// The history invariant across a crash of the server that holds the data: counters that only ever move by increment
/// and decrement, committed until the server is killed in the middle of it, then read back from the restarted server.
/// Whether the commit in flight at the kill made it or not, its history went with it: the buckets add up to the value.
/// </summary>
internal static class HistoryCrash
{
    public static readonly string[] Names = ["crash:a", "crash:b", "crash:hot"];

    /// <summary>
    /// Commits batches of random increments and decrements (the clock 7 s further each time, so they spread over minutes)
    /// until one fails; <paramref name="kill"/> runs, alongside the commits, once <paramref name="killAfter"/> have succeeded.
    /// Returns the number of commits that succeeded.
    /// </summary>
    public static async Task<int> CommitUntilKilledAsync(ICounterStore store, ManualClock clock, int killAfter, Func<Task> kill)
    {
        var random = new Random(42);
        Task? killing = null;
        var committed = 0;
        try
        {
            for (; committed < killAfter * 100; committed++)
            {
                if (committed == killAfter)
                {
                    killing = Task.Run(kill);
                }
                clock.NowMs += 7_000;
                var commands = Enumerable.Range(0, random.Next(1, 6)).Select(_ =>
                {
                    var name = Names[random.Next(Names.Length)];
                    return random.Next(3) == 0 ? CounterCommand.Decrement(name, random.Next(1, 50)) : CounterCommand.Increment(name, random.Next(1, 100));
                }).ToArray();
                await store.CommitAsync(commands);
            }
        }
        catch (Exception) when (killing is not null)
        {
            // The server is gone (store_unavailable, or the driver's own error, as the pipeline would see it).
        }
        Assert.True(killing is not null, $"A commit failed before the kill, after {committed} commits.");
        await killing;
        return committed;
    }

    /// <summary>Each counter's buckets, in every interval, add up to its value (it started at 0), and the last one ends at it.</summary>
    public static async Task AssertAddsUpAsync(ICounterStore store, string where)
    {
        foreach (var name in Names)
        {
            var value = (await store.GetAsync(name))?.Value ?? 0;
            foreach (var interval in HistoryIntervals.All)
            {
                var buckets = await store.ReadHistoryAsync(name, interval, 0, long.MaxValue, CancellationToken.None);
                var net = buckets.Sum(bucket => bucket.Increments - bucket.Decrements);
                Assert.True(net == value, $"{where}: the {interval} buckets of {name} add up to {net}, its value is {value}");
                Assert.True(buckets.Count > 0 && buckets[^1].Value == value, $"{where}: the last {interval} bucket of {name} does not end at {value}");
            }
        }
    }
}
