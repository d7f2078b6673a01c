using System.Collections;
using System.Reflection;
using Tally.Server.Counters;
using Tally.Server.Storage;

namespace Tally.Server.Tests.Storage;

/// <summary>The in-memory copy of the counters gives memory back after deletions, and readers go on meanwhile.</summary>
public class CounterCacheTests
{
    [Fact]
    public void DeletingMostCountersShrinksTheTableAndTheNameIndex()
    {
        var cache = new CounterCache();
        const int created = 20_000;
        for (var i = 0; i < created; i++)
        {
            cache.Set($"n{i:D6}", Counter($"n{i:D6}", i));
        }
        var fullBuckets = BucketCount(cache);
        Assert.True(fullBuckets >= created / 4, $"Only {fullBuckets} buckets for {created} counters: the measurement does not see the table.");

        for (var i = 0; i < created; i++)
        {
            if (i % 200 != 0)
            {
                cache.Set($"n{i:D6}", null);
            }
        }

        Assert.Equal(100, cache.Count);
        // Tables for fewer than a few thousand counters are not worth copying: some thousands of buckets may stay.
        Assert.True(BucketCount(cache) <= 8192, $"{BucketCount(cache)} buckets remain for 100 counters (there were {fullBuckets}).");
        var (chunks, slots) = cache.Names.Footprint();
        Assert.True(chunks <= 2 && slots <= 1024, $"The name index keeps {chunks} chunks with room for {slots} names, for 100 names.");
        // Everything left is still there, in order.
        Assert.Equal(Enumerable.Range(0, 100).Select(i => $"n{i * 200:D6}"), cache.List("", null, 1000).Select(counter => counter.Name));
        Assert.Equal(5000, cache.Get("n005000")?.Value);
        Assert.Null(cache.Get("n005001"));
    }

    [Fact]
    public void ALoadInNameOrderFillsTheNameIndexAndLaterChangesKeepItsOrder()
    {
        var cache = new CounterCache();
        const int loaded = 10_000;
        cache.Load([.. Enumerable.Range(0, loaded).Select(i => Counter($"n{i * 2:D6}", i))]);

        Assert.Equal(loaded, cache.Count);
        Assert.Equal(loaded, cache.Names.Count);
        // Chunks three quarters full (384 names), not half: about 27 of them, each with room for 512.
        var (chunks, slots) = cache.Names.Footprint();
        Assert.True(chunks <= loaded / 384 + 1 && slots <= (loaded / 384 + 1) * 512 + 64, $"{chunks} chunks with room for {slots} names hold {loaded} loaded names.");

        // Names between, before and after the loaded ones, and deletions, keep one ordinal order.
        cache.Set("n000003", Counter("n000003", -1));
        cache.Set("a", Counter("a", -2));
        cache.Set("z", Counter("z", -3));
        cache.Set("n000004", null);
        var expected = Enumerable.Range(0, loaded).Select(i => $"n{i * 2:D6}").Where(name => name != "n000004")
            .Append("n000003").Append("a").Append("z").Order(StringComparer.Ordinal).ToList();
        Assert.Equal(expected, cache.List("", null, 100_000).Select(counter => counter.Name));
        Assert.Equal(expected.Count, cache.All.Count());
        Assert.Equal(-1, cache.Get("n000003")?.Value);
        Assert.Equal(4999, cache.Get("n009998")?.Value);
    }

    [Fact]
    public void NamesAddedInOrderFillTheirChunks()
    {
        var cache = new CounterCache();
        for (var i = 0; i < 10_000; i++)
        {
            cache.Set($"n{i:D6}", Counter($"n{i:D6}", i));
        }
        // An ascending load fills each chunk (511 names) rather than leaving every one half full.
        var (chunks, _) = cache.Names.Footprint();
        Assert.True(chunks <= 10_000 / 511 + 1, $"{chunks} chunks for 10,000 names added in order.");
        Assert.Equal(Enumerable.Range(0, 10_000).Select(i => $"n{i:D6}"), cache.List("", null, 100_000).Select(counter => counter.Name));
    }

    [Fact]
    public async Task ReadersSeeEveryLiveCounterWhileTheTableShrinks()
    {
        var cache = new CounterCache();
        for (var i = 0; i < 20_000; i++)
        {
            cache.Set($"n{i:D6}", Counter($"n{i:D6}", i));
        }
        string[] kept = ["n000007", "n010000", "n019999"];
        using var stop = new CancellationTokenSource();
        var misses = 0;
        var reader = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                foreach (var name in kept)
                {
                    if (cache.Get(name) is null)
                    {
                        Interlocked.Increment(ref misses);
                    }
                }
            }
        });

        for (var i = 0; i < 20_000; i++)
        {
            if (!kept.Contains($"n{i:D6}"))
            {
                cache.Set($"n{i:D6}", null);
            }
        }
        await stop.CancelAsync();
        await reader;

        Assert.Equal(0, misses);
        Assert.Equal(kept, cache.List("", null, 10).Select(counter => counter.Name));
    }

    private static Counter Counter(string name, long value) => new(name, value, 0, null, null, 1, 0, 0, null);

    /// <summary>The bucket array of the cache's ConcurrentDictionary: the memory that deletions alone never give back.</summary>
    private static int BucketCount(CounterCache cache)
    {
        const BindingFlags Private = BindingFlags.NonPublic | BindingFlags.Instance;
        var dictionary = typeof(CounterCache).GetField("_counters", Private)?.GetValue(cache)
            ?? throw new InvalidOperationException("CounterCache._counters not found");
        var tables = dictionary.GetType().GetField("_tables", Private)?.GetValue(dictionary)
            ?? throw new InvalidOperationException("ConcurrentDictionary._tables not found (runtime changed?)");
        var buckets = tables.GetType().GetField("_buckets", BindingFlags.NonPublic | BindingFlags.Public | BindingFlags.Instance)?.GetValue(tables) as ICollection
            ?? throw new InvalidOperationException("ConcurrentDictionary.Tables._buckets not found (runtime changed?)");
        return buckets.Count;
    }
}
