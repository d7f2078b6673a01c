using Tally.Server.Counters;

namespace Tally.Server.Storage;

/// <summary>
/// The <c>limit</c> counters with the highest values among those offered, highest first, ties in ordinal name
/// order (the order of <c>GET /counters?order=value_desc</c> on every engine). Keeps only <c>limit</c> of them.
/// </summary>
internal sealed class TopCounters(int limit)
{
    /// <summary>Orders the lesser first: a lower value, or at the same value the later name.</summary>
    public static readonly Comparer<Counter> Worse = Comparer<Counter>.Create((a, b) =>
        a.Value != b.Value ? a.Value.CompareTo(b.Value) : string.CompareOrdinal(b.Name, a.Name));

    private readonly PriorityQueue<Counter, Counter> _kept = new(Worse);

    public void Offer(Counter counter)
    {
        if (_kept.Count < limit)
        {
            _kept.Enqueue(counter, counter);
        }
        else if (Worse.Compare(counter, _kept.Peek()) > 0)
        {
            _kept.DequeueEnqueue(counter, counter);
        }
    }

    /// <summary>The kept counters, highest first.</summary>
    public List<Counter> Result()
    {
        var result = _kept.UnorderedItems.Select(item => item.Element).ToList();
        result.Sort((a, b) => Worse.Compare(b, a));
        return result;
    }
}
