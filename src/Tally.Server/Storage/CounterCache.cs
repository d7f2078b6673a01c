using System.Collections.Concurrent;
using Tally.Server.Counters;

namespace Tally.Server.Storage;

/// <summary>
/// The committed counters held in memory: a dictionary for reads and a sorted index for listings.
/// Only the commit pipeline writes (one writer), after a batch is committed; any number of readers.
/// <para>
/// A <see cref="ConcurrentDictionary{TKey, TValue}"/> never shrinks its table: after many deletions the
/// writer copies the live counters into a right-sized one and swaps it in. A reader holding the old
/// table sees the same committed state; the writer changes only the new one, which every later read uses.
/// </para>
/// </summary>
internal sealed class CounterCache
{
    // Tables for fewer counters than this are not worth copying.
    private const int ShrinkFloor = 4096;

    private volatile ConcurrentDictionary<string, Counter> _counters = new(StringComparer.Ordinal);
    private readonly SortedNameIndex _names = new();
    // The most counters the current table has held (or was sized for): its size, which deletions do not reduce.
    private int _sizedFor;

    public int Count => _counters.Count;

    /// <summary>
    /// Fills an empty cache with the stored counters, distinct names, usually in ordinal order already (the counters
    /// table read along its key): the table sized once, the name index built without a search per name.
    /// </summary>
    public void Load(IReadOnlyList<Counter> sortedByName)
    {
        if (!_counters.IsEmpty)
        {
            throw new InvalidOperationException("Load fills an empty cache only.");
        }
        var capacity = sortedByName.Count + sortedByName.Count / 4 + 16;
        var table = new ConcurrentDictionary<string, Counter>(Environment.ProcessorCount, capacity, StringComparer.Ordinal);
        var names = new string[sortedByName.Count];
        for (var i = 0; i < names.Length; i++)
        {
            var counter = sortedByName[i];
            names[i] = counter.Name;
            table[counter.Name] = counter;
        }
        for (var i = 1; i < names.Length; i++)
        {
            if (string.CompareOrdinal(names[i - 1], names[i]) >= 0)
            {
                // Not in ordinal order after all (a collation that differs from it): sorted here, once.
                Array.Sort(names, StringComparer.Ordinal);
                break;
            }
        }
        _names.Load(names);
        _counters = table;
        _sizedFor = capacity;
    }

    /// <summary>The number of counters the table is sized for; it falls back towards <see cref="Count"/> after deletions.</summary>
    internal int SizedFor => _sizedFor;

    internal SortedNameIndex Names => _names;

    public Counter? Get(string name) => _counters.GetValueOrDefault(name);

    /// <summary>Every counter, in no particular order (a moment's view: changes made meanwhile may or may not show).</summary>
    public IEnumerable<Counter> All => _counters.Select(entry => entry.Value);

    public IReadOnlyList<Counter> List(string prefix, string? after, int limit)
    {
        var page = new List<Counter>(Math.Min(limit, 1024));
        var cursor = after;
        while (page.Count < limit)
        {
            var wanted = limit - page.Count;
            var names = _names.Page(prefix, cursor, wanted);
            foreach (var name in names)
            {
                // A name deleted between the two reads is left out, and the page is filled from further on.
                if (_counters.TryGetValue(name, out var counter))
                {
                    page.Add(counter);
                }
            }
            if (names.Count < wanted)
            {
                break;
            }
            cursor = names[^1];
        }
        return page;
    }

    /// <summary>The counters under <paramref name="prefix"/> with the highest values: reads every one of them.</summary>
    public IReadOnlyList<Counter> Top(string prefix, int limit)
    {
        var top = new TopCounters(limit);
        string? cursor = null;
        while (true)
        {
            var names = _names.Page(prefix, cursor, 4096);
            foreach (var name in names)
            {
                if (_counters.TryGetValue(name, out var counter))
                {
                    top.Offer(counter);
                }
            }
            if (names.Count < 4096)
            {
                return top.Result();
            }
            cursor = names[^1];
        }
    }

    /// <summary>Makes committed changes visible. A null counter means deleted.</summary>
    public void Publish(IEnumerable<KeyValuePair<string, Counter?>> changes)
    {
        foreach (var (name, counter) in changes)
        {
            Set(name, counter);
        }
    }

    public void Set(string name, Counter? counter)
    {
        if (counter is null)
        {
            if (_counters.TryRemove(name, out _))
            {
                _names.Remove(name);
                if (_sizedFor > ShrinkFloor && _counters.Count < _sizedFor / 4)
                {
                    Shrink();
                }
            }
        }
        else if (_counters.TryAdd(name, counter))
        {
            _names.Add(name);
            _sizedFor = Math.Max(_sizedFor, _counters.Count);
        }
        else
        {
            _counters[name] = counter;
        }
    }

    /// <summary>A copy of the live counters in a table of their size (the single writer only; readers go on meanwhile).</summary>
    private void Shrink()
    {
        var old = _counters;
        var copy = new ConcurrentDictionary<string, Counter>(Environment.ProcessorCount, Math.Max(31, old.Count * 2), StringComparer.Ordinal);
        foreach (var (name, counter) in old)
        {
            copy[name] = counter;
        }
        _counters = copy;
        _sizedFor = Math.Max(copy.Count, 31);
    }
}
