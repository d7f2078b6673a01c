using Tally.Server.History;

namespace Tally.Server.Storage.Memory;

/// <summary>
/// The memory engine's history: per counter and interval, its buckets in start order. Every bucket also waits in a
/// queue per interval, by start, so that pruning takes the oldest without looking at every counter. Written by the
/// commit loop, read by requests: one lock.
/// </summary>
internal sealed class MemoryHistory
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, List<HistoryBucket>[]> _series = new(StringComparer.Ordinal);
    private readonly PriorityQueue<string, long>[] _byStart = [.. HistoryIntervals.All.Select(_ => new PriorityQueue<string, long>())];

    public void Write(HistoryWrites writes)
    {
        lock (_lock)
        {
            foreach (var write in writes.Counters)
            {
                if (write.ClearsStored)
                {
                    // Its queue entries stay and find nothing when their time comes.
                    _series.Remove(write.Name);
                }
                foreach (var delta in write.Deltas)
                {
                    Add(write.Name, delta.Interval, delta.Bucket);
                }
            }
        }
    }

    public IReadOnlyList<HistoryBucket> Read(string name, HistoryInterval interval, long from, long to)
    {
        lock (_lock)
        {
            return _series.TryGetValue(name, out var series)
                ? [.. series[(int)interval].Where(bucket => bucket.Start >= from && bucket.Start < to)]
                : [];
        }
    }

    public int Prune(HistoryInterval interval, long before, int limit)
    {
        lock (_lock)
        {
            var queue = _byStart[(int)interval];
            var pruned = 0;
            while (pruned < limit && queue.TryPeek(out var name, out var start) && start < before)
            {
                queue.Dequeue();
                if (!_series.TryGetValue(name, out var series))
                {
                    continue;
                }
                var buckets = series[(int)interval];
                var at = buckets.FindIndex(bucket => bucket.Start == start);
                if (at < 0)
                {
                    continue;
                }
                buckets.RemoveAt(at);
                pruned++;
                if (series.All(list => list.Count == 0))
                {
                    _series.Remove(name);
                }
            }
            return pruned;
        }
    }

    private void Add(string name, HistoryInterval interval, in HistoryBucket delta)
    {
        if (!_series.TryGetValue(name, out var series))
        {
            series = [[], [], []];
            _series[name] = series;
        }
        var buckets = series[(int)interval];
        // Nearly always the newest bucket, or a new one after it.
        var at = buckets.Count - 1;
        while (at >= 0 && buckets[at].Start > delta.Start)
        {
            at--;
        }
        if (at >= 0 && buckets[at].Start == delta.Start)
        {
            buckets[at] = buckets[at].Then(delta);
            return;
        }
        buckets.Insert(at + 1, delta);
        _byStart[(int)interval].Enqueue(name, delta.Start);
    }
}
