using Microsoft.Extensions.Options;
using Npgsql;
using Tally.Server.Alerts;
using Tally.Server.Configuration;
using Tally.Server.Counters;
using Tally.Server.Events;

namespace Tally.Server.Storage.Postgres;

/// <summary>
/// Live events across instances on PostgreSQL. Out: every commit that changed counters sends their states (and its
/// alert events) with
/// <c>pg_notify</c> inside its own transaction (<see cref="AddNotifications"/>), so other instances hear of it exactly
/// when it commits, in commit order, and never of one rolled back. In: a dedicated connection LISTENs and hands the
/// other instances' states to the <see cref="EventHub"/>; its own it skips (published already, at commit).
/// </summary>
/// <remarks>
/// NOTIFY takes a database-wide lock when the transaction commits, so it is one notification per commit, never one per
/// change. A payload must stay under 8000 bytes: the states of a commit that changes many counters are split over
/// several notifications of the same transaction (the lock is taken once per transaction, not per notification).
/// If the listening connection breaks, the changes meanwhile are lost to this instance: ids from before cannot be
/// resumed, and once it listens again the open streams end, so their clients reconnect and start from the current state.
/// </remarks>
/// <param name="dataSource">Commits' connections, and the listening one unless <c>PostgresListen</c> names a direct connection.</param>
internal sealed class PostgresEventRelay(
    NpgsqlDataSource dataSource, IOptions<TallyOptions> options, EventHub hub, ILogger<PostgresEventRelay> logger) : BackgroundService
{
    public const string Channel = "tally_events";

    /// <summary>PostgreSQL refuses a payload of 8000 bytes or more (the states are ASCII: characters are bytes).</summary>
    public const int MaxPayloadBytes = 7999;

    /// <summary>An idle listening connection is checked this often, so a dead one is noticed and replaced.</summary>
    private static readonly TimeSpan CheckIdleEvery = TimeSpan.FromSeconds(10);

    /// <summary>The commit's notification(s) of its states and alert events, added to its write batch (its transaction).</summary>
    public void AddNotifications(NpgsqlBatch batch, IReadOnlyDictionary<string, Counter?> changes, AlertOutcome? alerts)
    {
        var alertEvents = alerts?.Events.Select(e => AlertPayload.CounterOf(e.Payload) is { } counter ? new RemoteAlert(counter, e.Payload) : null)
            .OfType<RemoteAlert>().ToList();
        if (changes.Count == 0 && alertEvents is not { Count: > 0 })
        {
            return;
        }
        foreach (var payload in ChangeMessage.Encode(hub.InstanceId, changes, MaxPayloadBytes, alertEvents))
        {
            var notify = new NpgsqlBatchCommand("SELECT pg_notify($1, $2)");
            notify.Parameters.Add(new NpgsqlParameter<string> { TypedValue = Channel });
            notify.Parameters.Add(new NpgsqlParameter<string> { TypedValue = payload });
            batch.BatchCommands.Add(notify);
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // LISTEN needs a session: through PgBouncer in transaction mode it needs a direct connection of its own.
        await using var direct = options.Value.PostgresListen is { Length: > 0 } directly ? NpgsqlDataSource.Create(directly) : null;
        var source = direct ?? dataSource;
        var listenedBefore = false;
        var failures = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var connection = await source.OpenConnectionAsync(stoppingToken);
                var received = new Queue<string>();
                connection.Notification += (_, notification) => received.Enqueue(notification.Payload);
                await using (var listen = new NpgsqlCommand($"LISTEN {Channel}", connection))
                {
                    await listen.ExecuteNonQueryAsync(stoppingToken);
                }
                if (listenedBefore)
                {
                    logger.LogInformation("Listening for other instances' changes again");
                }
                // Streams opened before this (at start, or during the outage) may have missed other instances' changes.
                hub.Interrupted("the notifications of other instances were not heard until now", endStreams: true);
                listenedBefore = true;
                failures = 0;
                while (true)
                {
                    if (!await connection.WaitAsync(CheckIdleEvery, stoppingToken))
                    {
                        await using var check = new NpgsqlCommand("SELECT 1", connection);
                        await check.ExecuteScalarAsync(stoppingToken);
                    }
                    while (received.TryDequeue(out var payload))
                    {
                        Receive(payload);
                    }
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                // Whatever broke, the instance goes on serving: only its live events from other instances wait.
                hub.Interrupted("the notifications of other instances were interrupted", endStreams: false);
                if (failures++ == 0)
                {
                    logger.LogWarning("Not hearing other instances' changes (live events): listening on PostgreSQL failed ({Reason}); retrying", ex.Message);
                }
                try
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(5000, 250 * failures)), stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }
    }

    private void Receive(string payload)
    {
        try
        {
            Publish(payload);
        }
        catch (Exception ex)
        {
            logger.LogError(ex, "A notification on {Channel} could not be turned into events", Channel);
        }
    }

    private void Publish(string payload)
    {
        if (!hub.IsRecording)
        {
            return; // nobody listens here: not even worth reading
        }
        if (!ChangeMessage.TryDecode(payload, out var instance, out var states, out var alerts))
        {
            logger.LogDebug("Ignored a notification on {Channel} that is not Tally's", Channel);
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
}
