using StackExchange.Redis;
using Tally.Server.Events;
using Tally.Server.Pipeline;

namespace Tally.Server.Storage.Redis;

/// <summary>
/// Live events across instances on Redis. Out: after each commit (the FCALL has answered), one PUBLISH of the states
/// it left on <see cref="ChannelName"/>, fire-and-forget on the shared connection. In: a subscription on the same
/// connection hands the other instances' states to the <see cref="EventHub"/>, in the order Redis delivers them; its
/// own it skips (published already, at commit).
/// </summary>
/// <remarks>
/// Pub/sub is fire-and-forget: while this instance is disconnected from Redis it misses the other instances' changes.
/// Ids from before cannot be resumed then, and once the connection is restored the open streams end, so their clients
/// reconnect and start from the current state. Two instances' messages about one counter may cross (each publishes
/// after its own FCALL); the hub keeps the newer state (<see cref="RecentStates"/>).
/// </remarks>
internal sealed class RedisEventRelay(IConnectionMultiplexer redis, EventHub hub, ILogger<RedisEventRelay> logger) : ICommitObserver, IHostedService
{
    public const string ChannelName = "tally:events";

    private const int MaxMessageBytes = 64 * 1024;

    private static readonly RedisChannel Channel = RedisChannel.Literal(ChannelName);

    private readonly CancellationTokenSource _stopping = new();
    private ChannelMessageQueue? _queue;
    private Task? _subscribing;

    public void Committed(IReadOnlyList<PendingRequest> batch, IReadOnlyList<RequestOutcome> outcomes)
    {
        var states = CommitStates.Of(batch, outcomes);
        if (states.Count == 0)
        {
            return;
        }
        try
        {
            // Split as PostgreSQL's notifications are: one huge message could pass Redis's pub/sub output buffer limit
            // (32 MB by default), which disconnects every subscriber.
            foreach (var payload in ChangeMessage.Encode(hub.InstanceId, states, MaxMessageBytes))
            {
                redis.GetSubscriber().Publish(Channel, payload, CommandFlags.FireAndForget);
            }
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            logger.LogDebug("The changes of a commit could not be published to the other instances: {Reason}", ex.Message);
        }
    }

    /// <summary>A commit's alert events (tally.lua evaluates them inside the commit), for the other instances' streams.</summary>
    public void PublishAlerts(IReadOnlyList<RemoteAlert> alerts)
    {
        try
        {
            foreach (var payload in ChangeMessage.Encode(hub.InstanceId, [], MaxMessageBytes, alerts))
            {
                redis.GetSubscriber().Publish(Channel, payload, CommandFlags.FireAndForget);
            }
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            logger.LogDebug("The alert events of a commit could not be published to the other instances: {Reason}", ex.Message);
        }
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        redis.ConnectionFailed += OnConnectionFailed;
        redis.ConnectionRestored += OnConnectionRestored;
        // In the background: a Redis that does not answer at start is the store's to report, not this relay's.
        _subscribing = Task.Run(() => SubscribeAsync(_stopping.Token), CancellationToken.None);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync();
        redis.ConnectionFailed -= OnConnectionFailed;
        redis.ConnectionRestored -= OnConnectionRestored;
        if (_subscribing is not null)
        {
            await _subscribing.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
        if (_queue is not null)
        {
            try
            {
                await _queue.UnsubscribeAsync();
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException)
            {
                // The connection is going too; the subscription goes with it.
            }
        }
    }

    private async Task SubscribeAsync(CancellationToken stopping)
    {
        for (var attempt = 1; !stopping.IsCancellationRequested; attempt++)
        {
            try
            {
                _queue = await redis.GetSubscriber().SubscribeAsync(Channel);
                // One message at a time, in order (a handler on the channel itself could run them concurrently).
                _queue.OnMessage(message => Receive(message.Message));
                // Streams opened before this (at start, or while Redis did not answer) may have missed other instances' changes.
                hub.Interrupted("the messages of other instances were not heard until now", endStreams: true);
                return;
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException)
            {
                if (attempt == 1)
                {
                    logger.LogWarning("Not hearing other instances' changes (live events) until Redis answers: {Reason}; retrying", ex.Message);
                }
                try
                {
                    await Task.Delay(TimeSpan.FromSeconds(1), stopping);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    private void Receive(RedisValue message)
    {
        try
        {
            Publish(message);
        }
        catch (Exception ex)
        {
            logger.LogError(ex, "A message on {Channel} could not be turned into events", ChannelName);
        }
    }

    private void Publish(RedisValue message)
    {
        if (!hub.IsRecording || message.IsNullOrEmpty)
        {
            return;
        }
        if (!ChangeMessage.TryDecode(message.ToString(), out var instance, out var states, out var alerts))
        {
            logger.LogDebug("Ignored a message on {Channel} that is not Tally's", ChannelName);
            return;
        }
        if (instance != hub.InstanceId)
        {
            hub.PublishRemote(states);
            foreach (var alert in alerts)
            {
                hub.PublishAlert(alert.Counter, alert.Payload, remote: true);
            }
        }
    }

    private void OnConnectionFailed(object? sender, ConnectionFailedEventArgs e) =>
        hub.Interrupted("the connection to Redis failed", endStreams: false);

    // StackExchange.Redis subscribes again by itself; what was published meanwhile is lost to this instance.
    private void OnConnectionRestored(object? sender, ConnectionFailedEventArgs e) =>
        hub.Interrupted("the messages of other instances may have been missed while Redis was unreachable", endStreams: true);
}
