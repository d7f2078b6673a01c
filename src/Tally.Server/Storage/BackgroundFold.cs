namespace Tally.Server.Storage;

/// <summary>
/// The history-log fold an engine runs beside its commits (PostgreSQL, Redis): at most one at a time on an instance,
/// started under load every <see cref="EveryMs"/> (the first an interval after the first commit), or by idle upkeep.
/// </summary>
internal sealed class BackgroundFold(long everyMs)
{
    private long _nextAt;

    public long EveryMs { get; set; } = everyMs;

    /// <summary>The fold under way, or the last one (completed): closing waits for it.</summary>
    public Task Current { get; private set; } = Task.CompletedTask;

    public bool IsRunning => !Current.IsCompleted;

    /// <summary>After a commit, at <paramref name="now"/>: starts <paramref name="fold"/> on the thread pool if one is due and none runs.</summary>
    public void StartIfDue(long now, Func<Task> fold)
    {
        if (_nextAt == 0)
        {
            _nextAt = now + EveryMs;
        }
        if (now < _nextAt || IsRunning)
        {
            return;
        }
        _nextAt = now + EveryMs;
        Start(fold);
    }

    /// <summary>Starts <paramref name="fold"/> on the thread pool now (the caller checked that none runs).</summary>
    public void Start(Func<Task> fold) => Current = Task.Run(fold);

    /// <summary>Runs <paramref name="fold"/> on the caller's thread, as the current fold.</summary>
    public Task Run(Task fold) => Current = fold;
}
