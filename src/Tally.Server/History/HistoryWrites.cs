using System.Runtime.InteropServices;
using Tally.Server.Counters;

namespace Tally.Server.History;

/// <summary>
/// The history one commit writes (with <c>Durability=async</c>, every commit since the last flush), per counter:
/// whether its stored history goes first (the counter was deleted), then the bucket deltas to add to what is stored.
/// <see cref="Record"/> is the one place where a commit's changes (<see cref="CounterChanges.Of"/>) become buckets;
/// the C# engines all call it, and tally.lua's history part does the same for Redis (the model tests hold them to it).
/// Not thread-safe: the commit loop owns an instance.
/// </summary>
internal sealed class HistoryWrites
{
    private const int TrimAbove = 100_000;

    private Dictionary<string, CommitTotals> _totals = new(StringComparer.Ordinal);
    private Dictionary<string, CounterHistoryWrite> _counters = new(StringComparer.Ordinal);

    /// <summary>Per counter, what to write; in no particular order.</summary>
    public IReadOnlyCollection<CounterHistoryWrite> Counters => _counters.Values;

    public bool IsEmpty => _counters.Count == 0;

    /// <summary>The write of one counter, or null when nothing is to be written for it.</summary>
    public CounterHistoryWrite? Find(string name) => _counters.GetValueOrDefault(name);

    /// <summary>
    /// Adds one commit's changes, in commit order, all at <paramref name="now"/>: a commit has one time, so its changes
    /// of one counter fall in one bucket per interval, whose sums they add to and whose value the last one sets. A
    /// deletion drops the counter's history, stored and pending, and what follows it in the commit starts afresh.
    /// With <paramref name="record"/> false (<c>History:Enabled=false</c>) only deletions are kept: a deleted counter
    /// never leaves history behind for a later one of the same name.
    /// </summary>
    public void Record(IReadOnlyList<CounterChange> changes, long now, bool record)
    {
        if (changes.Count == 0)
        {
            return;
        }
        if (_totals.Count > TrimAbove)
        {
            _totals = new Dictionary<string, CommitTotals>(StringComparer.Ordinal);
        }
        _totals.Clear();
        foreach (var change in changes)
        {
            if (!record && change.Kind != ChangeKind.Delete)
            {
                continue;
            }
            ref var totals = ref CollectionsMarshal.GetValueRefOrAddDefault(_totals, change.Name, out _);
            switch (change.Kind)
            {
                case ChangeKind.Delete:
                    totals = new CommitTotals { Clears = true };
                    break;
                case ChangeKind.Increment:
                    totals.Increments = HistoryBucket.SaturatingAdd(totals.Increments, change.Amount);
                    totals.Change(change.After!.Value);
                    break;
                case ChangeKind.Decrement:
                    totals.Decrements = HistoryBucket.SaturatingAdd(totals.Decrements, change.Amount);
                    totals.Change(change.After!.Value);
                    break;
                default:
                    totals.Sets = HistoryBucket.SaturatingAdd(totals.Sets, 1);
                    totals.Change(change.After!.Value);
                    break;
            }
        }

        foreach (var (name, totals) in _totals)
        {
            if (!_counters.TryGetValue(name, out var write))
            {
                write = new CounterHistoryWrite(name);
                _counters[name] = write;
            }
            if (totals.Clears)
            {
                write.ClearsStored = true;
                write.Deltas.Clear();
            }
            if (totals.Changed)
            {
                foreach (var interval in HistoryIntervals.All)
                {
                    write.Add(interval, new HistoryBucket(
                        HistoryIntervals.StartOf(interval, now), totals.Increments, totals.Decrements, totals.Sets, totals.Value));
                }
            }
        }
    }

    /// <summary>
    /// Adds one entry of a history log (SQLite's <c>history_log</c>): the counter's history cleared (<paramref name="minute"/>
    /// null), or one minute bucket to add, and with it the same sums to its hour and day. Entries added in log order
    /// give the same buckets as the commits that wrote them.
    /// </summary>
    public void Add(string name, in HistoryBucket? minute)
    {
        if (!_counters.TryGetValue(name, out var write))
        {
            write = new CounterHistoryWrite(name);
            _counters[name] = write;
        }
        if (minute is not { } bucket)
        {
            write.ClearsStored = true;
            write.Deltas.Clear();
            return;
        }
        foreach (var interval in HistoryIntervals.All)
        {
            write.Add(interval, bucket with { Start = HistoryIntervals.StartOf(interval, bucket.Start) });
        }
    }

    /// <summary>Drops the buckets of <paramref name="interval"/> starting before <paramref name="before"/> (past their retention).</summary>
    public void DropBefore(HistoryInterval interval, long before)
    {
        foreach (var write in _counters.Values)
        {
            write.Deltas.RemoveAll(delta => delta.Interval == interval && delta.Bucket.Start < before);
        }
    }

    /// <summary>Forgets one counter's write (once it was written).</summary>
    public void Remove(string name) => _counters.Remove(name);

    /// <summary>The counters with something to write.</summary>
    public int Count => _counters.Count;

    /// <summary>Forgets everything (after it was written, or when its commit failed).</summary>
    public void Clear()
    {
        if (_counters.Count > TrimAbove)
        {
            _counters = new Dictionary<string, CounterHistoryWrite>(StringComparer.Ordinal);
        }
        _counters.Clear();
    }

    /// <summary>Bucket deltas in all, for sizing the arrays of a database write.</summary>
    public int DeltaCount => _counters.Values.Sum(write => write.Deltas.Count);

    private struct CommitTotals
    {
        public bool Clears;
        public bool Changed;
        public long Increments;
        public long Decrements;
        public long Sets;
        public long Value;

        public void Change(long value)
        {
            Changed = true;
            Value = value;
        }
    }
}

/// <summary>One bucket to add to a counter's stored history.</summary>
internal readonly record struct HistoryDelta(HistoryInterval Interval, HistoryBucket Bucket);

/// <summary>What to write of one counter's history: delete what is stored (if <see cref="ClearsStored"/>), then add <see cref="Deltas"/>.</summary>
internal sealed class CounterHistoryWrite(string name)
{
    public string Name { get; } = name;

    public bool ClearsStored { get; set; }

    /// <summary>At most one per interval and bucket start.</summary>
    public List<HistoryDelta> Deltas { get; } = new(3);

    public void Add(HistoryInterval interval, in HistoryBucket bucket)
    {
        for (var i = 0; i < Deltas.Count; i++)
        {
            if (Deltas[i].Interval == interval && Deltas[i].Bucket.Start == bucket.Start)
            {
                Deltas[i] = new HistoryDelta(interval, Deltas[i].Bucket.Then(bucket));
                return;
            }
        }
        Deltas.Add(new HistoryDelta(interval, bucket));
    }

    public CounterHistoryWrite Copy()
    {
        var copy = new CounterHistoryWrite(Name) { ClearsStored = ClearsStored };
        copy.Deltas.AddRange(Deltas);
        return copy;
    }

    /// <summary>
    /// The buckets of <paramref name="interval"/> starting in [<paramref name="from"/>, <paramref name="to"/>) as they
    /// will be once this is written over <paramref name="stored"/> (the stored ones in that range, oldest first).
    /// </summary>
    public List<HistoryBucket> Over(HistoryInterval interval, IReadOnlyList<HistoryBucket> stored, long from, long to)
    {
        List<HistoryBucket> buckets = ClearsStored ? [] : [.. stored];
        foreach (var delta in Deltas)
        {
            var bucket = delta.Bucket;
            if (delta.Interval != interval || bucket.Start < from || bucket.Start >= to)
            {
                continue;
            }
            var at = buckets.FindIndex(existing => existing.Start >= bucket.Start);
            if (at < 0)
            {
                buckets.Add(bucket);
            }
            else if (buckets[at].Start == bucket.Start)
            {
                buckets[at] = buckets[at].Then(bucket);
            }
            else
            {
                buckets.Insert(at, bucket);
            }
        }
        return buckets;
    }
}
