using Tally.Server.Counters;
using Tally.Server.Pipeline;

namespace Tally.Server.Events;

/// <summary>
/// What live events show of a commit: the state each counter it changed was left in (null: deleted), once per
/// counter, in the order of each counter's last change. A commit is the unit readers see (no read observes a state
/// in the middle of one), so several changes of one counter in one commit — group commit, a batch — make one event.
/// </summary>
internal static class CommitStates
{
    public static List<KeyValuePair<string, Counter?>> Of(IReadOnlyList<PendingRequest> batch, IReadOnlyList<RequestOutcome> outcomes) =>
        Of(CounterChanges.Of(batch, outcomes));

    public static List<KeyValuePair<string, Counter?>> Of(List<CounterChange> changes)
    {
        var states = new List<KeyValuePair<string, Counter?>>(changes.Count);
        if (changes.Count == 1)
        {
            states.Add(new(changes[0].Name, changes[0].After));
            return states;
        }
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var i = changes.Count - 1; i >= 0; i--)
        {
            if (seen.Add(changes[i].Name))
            {
                states.Add(new(changes[i].Name, changes[i].After));
            }
        }
        states.Reverse();
        return states;
    }
}
