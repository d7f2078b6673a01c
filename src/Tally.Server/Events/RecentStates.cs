using Tally.Server.Counters;

namespace Tally.Server.Events;

/// <summary>
/// The last state the hub published of recently changed counters, so that a state arriving late from another instance
/// never replaces a newer one on the streams: with many instances, two commits of one counter may be announced in
/// the other order than they committed (each instance publishes its own at once, the others' arrive by the store).
/// A state of the same incarnation (same <c>createdAt</c>) at a version already shown is stale and left out.
/// </summary>
/// <remarks>
/// Bounded: two generations of <c>capacity</c> names each; the older is forgotten when the newer fills. Lateness is a
/// matter of milliseconds, so the most recent names are all it needs. A deletion carries no version, so a deletion
/// and a re-creation of one counter on two instances in the same moment may still show in either order.
/// </remarks>
internal sealed class RecentStates(int capacity)
{
    private Dictionary<string, Seen> _current = new(StringComparer.Ordinal);
    private Dictionary<string, Seen> _previous = new(StringComparer.Ordinal);

    /// <summary>
    /// Remembers <paramref name="state"/> (null: deleted) as the last shown; with <paramref name="check"/>, first refuses it
    /// (returns false) when it is older than what was shown. Local commits are in commit order already and are not checked
    /// (an import may rightly move a counter back to an older version).
    /// </summary>
    public bool Admit(string name, Counter? state, bool check)
    {
        var known = _current.TryGetValue(name, out var seen) || _previous.TryGetValue(name, out seen);
        if (check && known && state is not null && seen.CreatedAt == state.CreatedAt && seen.Version >= state.Version)
        {
            return false;
        }
        var now = state is not null ? new Seen(state.CreatedAt, state.Version)
            : known ? seen // a deletion keeps the incarnation it ended, so that its late states stay out
            : new Seen(long.MinValue, long.MaxValue);
        if (_current.Count >= capacity && !_current.ContainsKey(name))
        {
            (_previous, _current) = (_current, _previous);
            _current.Clear();
        }
        _current[name] = now;
        return true;
    }

    private readonly record struct Seen(long CreatedAt, long Version);
}
