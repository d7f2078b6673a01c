namespace Tally.Server.Storage;

/// <summary>
/// Counter names in ordinal order, for listing pages without scanning every name.
/// A list of sorted chunks (a flat B-tree): insert, remove and seek cost O(log n + chunk),
/// and a page of k names costs O(log n + k), even with millions of names. Chunks that deletions
/// leave nearly empty are merged with a neighbour and trimmed, so memory follows the live names.
/// </summary>
internal sealed class SortedNameIndex
{
    private const int ChunkCapacity = 512;
    private readonly List<List<string>> _chunks = [[]];
    private readonly Lock _lock = new();

    public int Count { get; private set; }

    public void Add(string name)
    {
        lock (_lock)
        {
            var chunkIndex = FindChunk(name);
            var chunk = _chunks[chunkIndex];
            var at = chunk.BinarySearch(name, StringComparer.Ordinal);
            if (at >= 0)
            {
                return;
            }
            chunk.Insert(~at, name);
            Count++;
            if (chunk.Count >= ChunkCapacity && chunkIndex == _chunks.Count - 1 && ~at == chunk.Count - 1)
            {
                // A name after every other (a load in name order): a new last chunk, so that the full one stays full.
                chunk.RemoveAt(chunk.Count - 1);
                _chunks.Add(new List<string>(ChunkCapacity) { name });
            }
            else if (chunk.Count >= ChunkCapacity)
            {
                var half = chunk.GetRange(chunk.Count / 2, chunk.Count - chunk.Count / 2);
                chunk.RemoveRange(chunk.Count / 2, half.Count);
                _chunks.Insert(chunkIndex + 1, half);
            }
        }
    }

    /// <summary>
    /// Fills an empty index from names already in ordinal order (a load at start-up), in chunks three quarters full:
    /// no search per name, and room for names added later without a split at once.
    /// </summary>
    public void Load(IReadOnlyList<string> sortedNames)
    {
        lock (_lock)
        {
            if (Count > 0)
            {
                throw new InvalidOperationException("Load fills an empty index only.");
            }
            const int fill = ChunkCapacity * 3 / 4;
            _chunks.Clear();
            _chunks.Capacity = Math.Max(1, (sortedNames.Count + fill - 1) / fill);
            for (var start = 0; start < sortedNames.Count; start += fill)
            {
                var chunk = new List<string>(ChunkCapacity);
                for (var i = start; i < Math.Min(start + fill, sortedNames.Count); i++)
                {
                    chunk.Add(sortedNames[i]);
                }
                _chunks.Add(chunk);
            }
            if (_chunks.Count == 0)
            {
                _chunks.Add([]);
            }
            Count = sortedNames.Count;
        }
    }

    public void Remove(string name)
    {
        lock (_lock)
        {
            var chunkIndex = FindChunk(name);
            var chunk = _chunks[chunkIndex];
            var at = chunk.BinarySearch(name, StringComparer.Ordinal);
            if (at < 0)
            {
                return;
            }
            chunk.RemoveAt(at);
            Count--;
            if (chunk.Count == 0 && _chunks.Count > 1)
            {
                _chunks.RemoveAt(chunkIndex);
            }
            else if (chunk.Count < ChunkCapacity / 8 && _chunks.Count > 1)
            {
                MergeWithNeighbour(chunkIndex);
            }
            if (_chunks.Capacity > 64 && _chunks.Count < _chunks.Capacity / 4)
            {
                _chunks.TrimExcess();
            }
        }
    }

    /// <summary>How many chunks hold the names, and how many names their arrays have room for (memory in use).</summary>
    internal (int Chunks, long Slots) Footprint()
    {
        lock (_lock)
        {
            return (_chunks.Count, _chunks.Sum(chunk => (long)chunk.Capacity) + _chunks.Capacity);
        }
    }

    /// <summary>Moves a nearly empty chunk's names into its smaller neighbour when they fit in half a chunk.</summary>
    private void MergeWithNeighbour(int chunkIndex)
    {
        var chunk = _chunks[chunkIndex];
        var into = chunkIndex == 0 ? 1
            : chunkIndex + 1 == _chunks.Count ? chunkIndex - 1
            : _chunks[chunkIndex - 1].Count <= _chunks[chunkIndex + 1].Count ? chunkIndex - 1 : chunkIndex + 1;
        var neighbour = _chunks[into];
        if (neighbour.Count + chunk.Count > ChunkCapacity / 2)
        {
            if (chunk.Capacity > ChunkCapacity / 2)
            {
                chunk.TrimExcess();
            }
            return;
        }
        // The lower chunk's names come first: merging keeps the order.
        if (into > chunkIndex)
        {
            neighbour.InsertRange(0, chunk);
        }
        else
        {
            neighbour.AddRange(chunk);
        }
        if (neighbour.Capacity > ChunkCapacity && neighbour.Count < neighbour.Capacity / 4)
        {
            neighbour.TrimExcess();
        }
        _chunks.RemoveAt(chunkIndex);
    }

    /// <summary>Up to <paramref name="limit"/> names that start with <paramref name="prefix"/> and sort after <paramref name="after"/>.</summary>
    public List<string> Page(string prefix, string? after, int limit)
    {
        var start = after is not null && string.CompareOrdinal(after, prefix) >= 0 ? after : prefix;
        var page = new List<string>(Math.Min(limit, 1024));
        lock (_lock)
        {
            for (var c = FindChunk(start); c < _chunks.Count; c++)
            {
                var chunk = _chunks[c];
                var i = chunk.BinarySearch(start, StringComparer.Ordinal);
                i = i < 0 ? ~i : i;
                for (; i < chunk.Count; i++)
                {
                    var name = chunk[i];
                    if (!name.StartsWith(prefix, StringComparison.Ordinal))
                    {
                        return page;
                    }
                    if (name == after)
                    {
                        continue;
                    }
                    page.Add(name);
                    if (page.Count == limit)
                    {
                        return page;
                    }
                }
                start = string.Empty;
            }
        }
        return page;
    }

    /// <summary>The last chunk whose first name is ≤ name (chunk 0 if none).</summary>
    private int FindChunk(string name)
    {
        int lo = 0, hi = _chunks.Count - 1;
        while (lo < hi)
        {
            var mid = (lo + hi + 1) / 2;
            var chunk = _chunks[mid];
            if (chunk.Count > 0 && string.CompareOrdinal(chunk[0], name) <= 0)
            {
                lo = mid;
            }
            else
            {
                hi = mid - 1;
            }
        }
        return lo;
    }
}
