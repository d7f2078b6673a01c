using Npgsql;
using Tally.Server.Alerts;

namespace Tally.Server.Storage.Postgres;

/// <summary>
/// Alerts in PostgreSQL, shared by every instance. Definitions: each instance keeps them in memory and polls a
/// generation every change bumps in the same transaction (as <see cref="PostgresApiKeyStore"/> does), so a change made
/// on one instance applies to commits on every instance within <see cref="PollInterval"/> and a query. Outbox: a sender
/// leases due events with <c>FOR UPDATE SKIP LOCKED</c> (senders on other instances skip them rather than wait) and
/// marks them <c>leased_until</c> with its lease token; its attempt is recorded only while the token is still the
/// row's, and a crashed sender's events are taken over once the lease has run out.
/// </summary>
internal sealed class PostgresAlertStore(NpgsqlDataSource dataSource, AlertCatalog catalog, ILogger<PostgresAlertStore> logger)
    : AlertRegistry(catalog), IAlertOutbox
{
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(250);

    private const int PruneStep = 5000;

    private readonly CancellationTokenSource _stopping = new();
    private long _generation = -1;
    private long _localChanges;
    private Task? _poller;

    public async Task<IReadOnlyList<OutboxEvent>> LeaseAsync(int max, long now, TimeSpan lease, CancellationToken cancellationToken)
    {
        var token = Guid.NewGuid().ToString("N");
        await using var command = dataSource.CreateCommand("""
            WITH due AS (
                SELECT id FROM alert_outbox
                WHERE next_attempt_at <= $1 AND (leased_until IS NULL OR leased_until <= $1)
                ORDER BY next_attempt_at LIMIT $2
                FOR UPDATE SKIP LOCKED
            )
            UPDATE alert_outbox AS o SET leased_until = $1 + $3, leased_by = $4 FROM due WHERE o.id = due.id
            RETURNING o.id, o.alert_id, o.type, o.payload, o.created_at, o.attempts
            """);
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = now });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = max });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = (long)lease.TotalMilliseconds });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = token });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var leased = new List<OutboxEvent>();
        while (await reader.ReadAsync(cancellationToken))
        {
            leased.Add(new OutboxEvent(reader.GetString(0), reader.GetString(1), AlertEvent.ParseType(reader.GetString(2)), reader.GetString(3),
                reader.GetInt64(4), reader.GetInt32(5), token));
        }
        return leased;
    }

    public async Task FinishAsync(OutboxEvent leased, DeliveryAttempt? attempt, long? retryAt, CancellationToken cancellationToken)
    {
        await using var batch = dataSource.CreateBatch();
        if (attempt is not null)
        {
            var insert = new NpgsqlBatchCommand("""
                INSERT INTO alert_deliveries (alert_id, event_id, type, attempt, at, status, error, outcome) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                """);
            insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = attempt.AlertId });
            insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = attempt.EventId });
            insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = attempt.TypeName });
            insert.Parameters.Add(new NpgsqlParameter<int> { TypedValue = attempt.Attempt });
            insert.Parameters.Add(new NpgsqlParameter<long> { TypedValue = attempt.At });
            insert.Parameters.Add(new NpgsqlParameter { Value = (object?)attempt.Status ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Integer });
            insert.Parameters.Add(new NpgsqlParameter { Value = (object?)attempt.Error ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
            insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = DeliveryAttempt.OutcomeName(attempt.Outcome) });
            batch.BatchCommands.Add(insert);
        }
        // Only while this sender still holds the lease: if it ran out and another sender took the event, that one decides.
        var finish = retryAt is null
            ? new NpgsqlBatchCommand("DELETE FROM alert_outbox WHERE id = $1 AND leased_by = $2")
            : new NpgsqlBatchCommand("UPDATE alert_outbox SET attempts = $3, next_attempt_at = $4, leased_until = NULL, leased_by = NULL WHERE id = $1 AND leased_by = $2");
        finish.Parameters.Add(new NpgsqlParameter<string> { TypedValue = leased.Id });
        finish.Parameters.Add(new NpgsqlParameter<string> { TypedValue = leased.Lease });
        if (retryAt is { } due)
        {
            finish.Parameters.Add(new NpgsqlParameter<int> { TypedValue = attempt?.Attempt ?? leased.Attempts });
            finish.Parameters.Add(new NpgsqlParameter<long> { TypedValue = due });
        }
        batch.BatchCommands.Add(finish);
        // One implicit transaction: the attempt is listed exactly when the outbox says so.
        await batch.ExecuteNonQueryAsync(cancellationToken);
    }

    public async Task<IReadOnlyList<DeliveryAttempt>> ListDeliveriesAsync(string alertId, int limit, CancellationToken cancellationToken)
    {
        try
        {
            await using var command = dataSource.CreateCommand("""
                SELECT event_id, type, attempt, at, status, error, outcome FROM alert_deliveries WHERE alert_id = $1 ORDER BY seq DESC LIMIT $2
                """);
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = alertId });
            command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = limit });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            var attempts = new List<DeliveryAttempt>();
            while (await reader.ReadAsync(cancellationToken))
            {
                attempts.Add(new DeliveryAttempt(alertId, reader.GetString(0), AlertEvent.ParseType(reader.GetString(1)), reader.GetInt32(2), reader.GetInt64(3),
                    reader.IsDBNull(4) ? null : reader.GetInt32(4), reader.IsDBNull(5) ? null : reader.GetString(5), DeliveryAttempt.ParseOutcome(reader.GetString(6))));
            }
            return attempts;
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException && !cancellationToken.IsCancellationRequested)
        {
            throw new StoreUnavailableException($"PostgreSQL does not answer ({ex.Message}).", ex);
        }
    }

    public async Task<long> CountAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("SELECT count(*) FROM alert_outbox");
        return (long)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    public async Task PruneDeliveriesAsync(long before, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            DELETE FROM alert_deliveries WHERE seq IN (SELECT seq FROM alert_deliveries WHERE at < $1 ORDER BY at LIMIT $2)
            """);
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = before });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = PruneStep });
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    protected override async Task<IReadOnlyList<AlertDefinition>> LoadAsync(CancellationToken cancellationToken)
    {
        try
        {
            var (generation, alerts) = await ReadAsync(cancellationToken);
            _generation = generation;
            _poller ??= Task.Run(() => PollAsync(_stopping.Token), CancellationToken.None);
            return alerts;
        }
        catch (NpgsqlException ex)
        {
            throw new StoreStartupException($"The alerts in PostgreSQL cannot be read ({ex.Message}).", ex);
        }
    }

    protected override Task<bool> SaveAsync(AlertDefinition alert, AlertDefinition? expected, CancellationToken cancellationToken) =>
        ChangeAsync(async (connection, token) =>
        {
            await using var save = new NpgsqlCommand(expected is null
                ? "INSERT INTO alerts (id, definition) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET definition = excluded.definition"
                : "UPDATE alerts SET definition = $2 WHERE id = $1 AND definition = $3", connection);
            save.Parameters.Add(new NpgsqlParameter<string> { TypedValue = alert.Id });
            save.Parameters.Add(new NpgsqlParameter<string> { TypedValue = alert.ToDocument() });
            if (expected is not null)
            {
                save.Parameters.Add(new NpgsqlParameter<string> { TypedValue = expected.ToDocument() });
            }
            if (await save.ExecuteNonQueryAsync(token) == 0)
            {
                return false;
            }
            if (!alert.WebhookEnabled)
            {
                await ExecuteAsync(connection, "DELETE FROM alert_outbox WHERE alert_id = $1", alert.Id, token);
            }
            return true;
        }, cancellationToken);

    protected override Task<bool> DeleteAsync(string id, CancellationToken cancellationToken) =>
        ChangeAsync(async (connection, token) =>
        {
            var deleted = await ExecuteAsync(connection, "DELETE FROM alerts WHERE id = $1", id, token) > 0;
            // States a commit writes meanwhile (under definitions it read before this) are harmless: no alert reads them.
            await ExecuteAsync(connection, "DELETE FROM alert_states WHERE alert_id = $1", id, token);
            await ExecuteAsync(connection, "DELETE FROM alert_outbox WHERE alert_id = $1", id, token);
            await ExecuteAsync(connection, "DELETE FROM alert_deliveries WHERE alert_id = $1", id, token);
            return deleted;
        }, cancellationToken);

    protected override async ValueTask DisposeCoreAsync()
    {
        await _stopping.CancelAsync();
        if (_poller is not null)
        {
            await _poller.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
        _stopping.Dispose();
    }

    /// <summary>One transaction that also bumps the generation, so the other instances reload.</summary>
    private async Task<bool> ChangeAsync(Func<NpgsqlConnection, CancellationToken, Task<bool>> change, CancellationToken cancellationToken)
    {
        try
        {
            await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            var changed = await change(connection, cancellationToken);
            await PostgresSchema.ExecuteAsync(connection, "UPDATE alert_generation SET generation = generation + 1 WHERE id = 1", cancellationToken);
            await transaction.CommitAsync(cancellationToken);
            Interlocked.Increment(ref _localChanges);
            return changed;
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
        {
            throw new AlertStoreException($"The alert store could not write ({ex.Message}).", ex);
        }
    }

    private static async Task<int> ExecuteAsync(NpgsqlConnection connection, string sql, string id, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = id });
        return await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private async Task<(long Generation, IReadOnlyList<AlertDefinition> Alerts)> ReadAsync(CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        // One snapshot for both, so the alerts read belong to the generation read.
        await using var transaction = await connection.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, cancellationToken);
        await using var generation = new NpgsqlCommand("SELECT generation FROM alert_generation WHERE id = 1", connection);
        var current = (long)(await generation.ExecuteScalarAsync(cancellationToken))!;
        await using var select = new NpgsqlCommand("SELECT definition FROM alerts", connection);
        await using var reader = await select.ExecuteReaderAsync(cancellationToken);
        var alerts = new List<AlertDefinition>();
        while (await reader.ReadAsync(cancellationToken))
        {
            alerts.Add(AlertDefinition.FromDocument(reader.GetString(0)));
        }
        return (current, alerts);
    }

    private async Task PollAsync(CancellationToken stopping)
    {
        using var timer = new PeriodicTimer(PollInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(stopping))
            {
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
            await using var command = dataSource.CreateCommand("SELECT generation FROM alert_generation WHERE id = 1");
            var generation = (long)(await command.ExecuteScalarAsync(stopping))!;
            if (generation == Interlocked.Read(ref _generation))
            {
                return;
            }
            // A change made here while reading may be missing from what was read: then the next tick reads again.
            var localChanges = Interlocked.Read(ref _localChanges);
            var (read, alerts) = await ReadAsync(stopping);
            if (await ReplaceAllAsync(alerts, () => localChanges == Interlocked.Read(ref _localChanges), stopping))
            {
                Interlocked.Exchange(ref _generation, read);
            }
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException && !stopping.IsCancellationRequested)
        {
            // The alerts in memory stay as they were until PostgreSQL answers again; readiness reports the outage.
            logger.LogDebug(ex, "Reloading alerts failed; retrying");
        }
    }
}
