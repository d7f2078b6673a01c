using Tally.Server.Pipeline;

namespace Tally.Server.Storage;

/// <summary>
/// How many live counters each API key has created, and the store's total, as the applier sees them in
/// the middle of a commit: the committed counts, this commit's changes, and an atomic batch's changes
/// that count only if the whole batch succeeds. Used by the commit loop alone, so not thread-safe.
/// </summary>
internal sealed class CounterOwnership
{
    private readonly Dictionary<string, long> _committed = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _commit = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _scratch = new(StringComparer.Ordinal);
    private long _commitTotal;
    private long _scratchTotal;
    private bool _inScratch;

    /// <summary>Counts the creators of the counters already stored.</summary>
    public void Load(CounterCache cache)
    {
        _committed.Clear();
        string? after = null;
        while (true)
        {
            var page = cache.List(string.Empty, after, 10_000);
            foreach (var counter in page)
            {
                if (counter.CreatedBy is { } owner)
                {
                    _committed[owner] = _committed.GetValueOrDefault(owner) + 1;
                }
            }
            if (page.Count < 10_000)
            {
                return;
            }
            after = page[^1].Name;
        }
    }

    public void BeginCommit()
    {
        _commit.Clear();
        _commitTotal = 0;
        DiscardScratch();
    }

    /// <summary>The commit is durable and published: its changes become the committed counts.</summary>
    public void EndCommit()
    {
        foreach (var (owner, change) in _commit)
        {
            var count = _committed.GetValueOrDefault(owner) + change;
            if (count > 0)
            {
                _committed[owner] = count;
            }
            else
            {
                _committed.Remove(owner);
            }
        }
        _commit.Clear();
        _commitTotal = 0;
    }

    public void BeginScratch() => _inScratch = true;

    public void KeepScratch()
    {
        foreach (var (owner, change) in _scratch)
        {
            _commit[owner] = _commit.GetValueOrDefault(owner) + change;
        }
        _commitTotal += _scratchTotal;
        DiscardScratch();
    }

    public void DiscardScratch()
    {
        _scratch.Clear();
        _scratchTotal = 0;
        _inScratch = false;
    }

    /// <summary>Why <paramref name="requester"/> may not create one more counter, or null when it may.</summary>
    /// <param name="publishedCount">The counters readers see now (before this commit).</param>
    public string? RefuseCreation(Requester requester, long publishedCount, long storeLimit)
    {
        if (publishedCount + _commitTotal + _scratchTotal >= storeLimit)
        {
            return $"The store holds its maximum of {storeLimit} counters (Quotas:MaxCounters); nothing was applied. Delete counters, or raise the limit.";
        }
        if (requester is { MaxCounters: { } limit, KeyId: { } key } && Owned(key) >= limit)
        {
            return $"This API key has created {limit} live counters, its limit (maxCounters); nothing was applied. Delete some of them, or use a key with a higher limit.";
        }
        return null;
    }

    /// <summary>Live counters created by <paramref name="key"/>, this commit included.</summary>
    public long Owned(string key) =>
        _committed.GetValueOrDefault(key) + _commit.GetValueOrDefault(key) + _scratch.GetValueOrDefault(key);

    public void Created(string? owner) => Change(owner, +1);

    public void Deleted(Counters.Counter counter) => Change(counter.CreatedBy, -1);

    private void Change(string? owner, int change)
    {
        var counts = _inScratch ? _scratch : _commit;
        if (_inScratch)
        {
            _scratchTotal += change;
        }
        else
        {
            _commitTotal += change;
        }
        if (owner is not null)
        {
            counts[owner] = counts.GetValueOrDefault(owner) + change;
        }
    }
}
