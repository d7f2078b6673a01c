using StackExchange.Redis;

namespace Tally.Server.Storage.Redis;

/// <summary>
/// Keeps an instance's in-memory copy of a small shared set (API keys, alert definitions) in step with Redis. Every
/// change bumps a generation and publishes on a channel: the message wakes the reload at once, and the generation is
/// also read every <see cref="PollInterval"/>, because pub/sub is fire-and-forget (a message sent while this instance
/// reconnects is lost). A reload that raced a change made on this instance is done again at once.
/// </summary>
/// <param name="reload">
/// Reads the set and its generation and installs it unless the given check says a local change happened meanwhile;
/// returns the generation installed, or null when it was not installed.
/// </param>
internal sealed class RedisChangeWatch(
    IConnectionMultiplexer redis, RedisChannel channel, RedisKey generationKey, string what, ILogger logger,
    Func<Func<bool>, CancellationToken, Task<long?>> reload) : IAsyncDisposable
{
    private readonly CancellationTokenSource _stopping = new();
    private readonly SemaphoreSlim _changed = new(0, 1);
    private Action<RedisChannel, RedisValue>? _onChanged;
    private long _generation = -1;
    private long _localChanges;
    private Task? _poller;

    public TimeSpan PollInterval { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>Subscribes to the channel; call before the first read, so no change after that read goes unannounced.</summary>
    public async Task SubscribeAsync()
    {
        if (_onChanged is null)
        {
            _onChanged = (_, _) => Wake();
            await redis.GetSubscriber().SubscribeAsync(channel, _onChanged);
        }
    }

    /// <summary>The first read installed <paramref name="generation"/>: from now on, changes are watched.</summary>
    public void Start(long generation)
    {
        Interlocked.Exchange(ref _generation, generation);
        _poller ??= Task.Run(() => PollAsync(_stopping.Token), CancellationToken.None);
    }

    /// <summary>This instance changed the set in Redis: a reload already under way may have read it without the change.</summary>
    public void NoteLocalChange() => Interlocked.Increment(ref _localChanges);

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        if (_poller is not null)
        {
            await _poller.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
        if (_onChanged is not null)
        {
            try
            {
                await redis.GetSubscriber().UnsubscribeAsync(channel, _onChanged);
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException)
            {
                // The connection is going too; the subscription goes with it.
            }
        }
        _stopping.Dispose();
        _changed.Dispose();
    }

    private void Wake()
    {
        try
        {
            _changed.Release();
        }
        catch (SemaphoreFullException)
        {
            // A reload is due already.
        }
        catch (ObjectDisposedException)
        {
            // A message that arrived while the watch was being disposed.
        }
    }

    private async Task PollAsync(CancellationToken stopping)
    {
        try
        {
            while (!stopping.IsCancellationRequested)
            {
                await _changed.WaitAsync(PollInterval, stopping);
                await PollOnceAsync(stopping);
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
        }
    }

    private async Task PollOnceAsync(CancellationToken stopping)
    {
        try
        {
            var generation = (long?)await redis.GetDatabase().StringGetAsync(generationKey) ?? 0;
            if (generation == Interlocked.Read(ref _generation))
            {
                return;
            }
            var localChanges = Interlocked.Read(ref _localChanges);
            if (await reload(() => localChanges == Interlocked.Read(ref _localChanges), stopping) is { } installed)
            {
                Interlocked.Exchange(ref _generation, installed);
            }
            else
            {
                Wake(); // a change made here while reading may be missing from what was read: read again at once
            }
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException && !stopping.IsCancellationRequested)
        {
            // The copy in memory stays as it was until Redis answers again; readiness reports the outage.
            logger.LogDebug(ex, "Reloading {What} failed; retrying", what);
        }
    }
}
