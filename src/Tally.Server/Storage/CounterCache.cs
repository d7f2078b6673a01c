using System.Collections.Concurrent;
using Tally.Server.Counters;

namespace Tally.Server.Storage;

/// <summary>
/// The committed counters held in memory: a dictionary for reads and a sorted index for listings.
/// Only the commit pipeline writes (one writer), after a batch is committed; any number of readers.
/// </summary>
internal sealed class CounterCache
{
    private ConcurrentDictionary<string, Counter> _counters = new(StringComparer.Ordinal);
    private readonly SortedNameIndex _names = new();

    public int Count => _counters.Count;

    /// <summary>Sizes the table for a load of <paramref name="capacity"/> counters, so that it is not resized again and again.</summary>
    public void Reserve(int capacity)
    {
        if (_counters.IsEmpty)
        {
            _counters = new ConcurrentDictionary<string, Counter>(Environment.ProcessorCount, capacity, StringComparer.Ordinal);
        }
    }

    public Counter? Get(string name) => _counters.GetValueOrDefault(name);

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
            }
        }
        else if (_counters.TryAdd(name, counter))
        {
            _names.Add(name);
        }
        else
        {
            _counters[name] = counter;
        }
    }
}
