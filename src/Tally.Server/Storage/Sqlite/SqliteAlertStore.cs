using Microsoft.Data.Sqlite;
using Tally.Server.Alerts;

namespace Tally.Server.Storage.Sqlite;

/// <summary>
/// Alert definitions, the outbox's life after the commit, and delivery attempts, in the SQLite data file, through a
/// connection of their own (as the API keys): none of it needs the commit pipeline. The counter store writes the
/// states and outbox rows inside its commits (<see cref="SqliteCounterStore"/>). One process owns the file and runs
/// one sender, which takes a batch and records every attempt before it takes the next: a lease needs no column here,
/// and after a crash every undelivered event is due again at its time.
/// </summary>
internal sealed class SqliteAlertStore(AlertCatalog catalog, string databasePath) : AlertRegistry(catalog), IAlertOutbox
{
    private const int PruneStep = 5000;

    private readonly Lock _lock = new();
    private SqliteConnection? _connection;

    public Task<IReadOnlyList<OutboxEvent>> LeaseAsync(int max, long now, TimeSpan lease, CancellationToken cancellationToken) => Read(connection =>
    {
        using var command = connection.CreateCommand();
        command.CommandText = """
            SELECT id, alert_id, type, payload, created_at, attempts FROM alert_outbox
            WHERE next_attempt_at <= $now ORDER BY next_attempt_at LIMIT $max
            """;
        command.Parameters.AddWithValue("$now", now);
        command.Parameters.AddWithValue("$max", max);
        using var reader = command.ExecuteReader();
        var due = new List<OutboxEvent>();
        while (reader.Read())
        {
            due.Add(new OutboxEvent(reader.GetString(0), reader.GetString(1), AlertEvent.ParseType(reader.GetString(2)), reader.GetString(3),
                reader.GetInt64(4), reader.GetInt32(5)));
        }
        return (IReadOnlyList<OutboxEvent>)due;
    });

    public Task FinishAsync(OutboxEvent leased, DeliveryAttempt? attempt, long? retryAt, CancellationToken cancellationToken) => Write(connection =>
    {
        using var transaction = connection.BeginTransaction();
        if (attempt is not null)
        {
            InsertAttempt(connection, attempt);
        }
        using var command = connection.CreateCommand();
        command.CommandText = retryAt is null
            ? "DELETE FROM alert_outbox WHERE id = $id"
            : "UPDATE alert_outbox SET attempts = $attempts, next_attempt_at = $due WHERE id = $id";
        command.Parameters.AddWithValue("$id", leased.Id);
        if (retryAt is { } due)
        {
            command.Parameters.AddWithValue("$attempts", attempt?.Attempt ?? leased.Attempts);
            command.Parameters.AddWithValue("$due", due);
        }
        command.ExecuteNonQuery();
        transaction.Commit();
        return true;
    });

    public Task<IReadOnlyList<DeliveryAttempt>> ListDeliveriesAsync(string alertId, int limit, CancellationToken cancellationToken) => Read(connection =>
    {
        using var command = connection.CreateCommand();
        command.CommandText = """
            SELECT event_id, type, attempt, at, status, error, outcome FROM alert_deliveries
            WHERE alert_id = $alert ORDER BY seq DESC LIMIT $limit
            """;
        command.Parameters.AddWithValue("$alert", alertId);
        command.Parameters.AddWithValue("$limit", limit);
        using var reader = command.ExecuteReader();
        var attempts = new List<DeliveryAttempt>();
        while (reader.Read())
        {
            attempts.Add(new DeliveryAttempt(alertId, reader.GetString(0), AlertEvent.ParseType(reader.GetString(1)), reader.GetInt32(2), reader.GetInt64(3),
                reader.IsDBNull(4) ? null : reader.GetInt32(4), reader.IsDBNull(5) ? null : reader.GetString(5), DeliveryAttempt.ParseOutcome(reader.GetString(6))));
        }
        return (IReadOnlyList<DeliveryAttempt>)attempts;
    });

    public Task<long> CountAsync(CancellationToken cancellationToken) =>
        Read(connection => SqliteSchema.Scalar(connection, "SELECT count(*) FROM alert_outbox"));

    public Task PruneDeliveriesAsync(long before, CancellationToken cancellationToken) => Write(connection =>
    {
        using var command = connection.CreateCommand();
        command.CommandText = "DELETE FROM alert_deliveries WHERE seq IN (SELECT seq FROM alert_deliveries WHERE at < $before ORDER BY at LIMIT $step)";
        command.Parameters.AddWithValue("$before", before);
        command.Parameters.AddWithValue("$step", PruneStep);
        command.ExecuteNonQuery();
        return true;
    });

    protected override Task<IReadOnlyList<AlertDefinition>> LoadAsync(CancellationToken cancellationToken)
    {
        try
        {
            lock (_lock)
            {
                _connection = new SqliteConnection(SqliteSchema.ConnectionString(databasePath, readOnly: false));
                _connection.Open();
                // A write waits for a commit of the counter store rather than failing; it is on disk when answered.
                SqliteSchema.Execute(_connection, "PRAGMA busy_timeout = 5000; PRAGMA synchronous = FULL;");
                var alerts = new List<AlertDefinition>();
                using var command = _connection.CreateCommand();
                command.CommandText = "SELECT definition FROM alerts";
                using var reader = command.ExecuteReader();
                while (reader.Read())
                {
                    alerts.Add(AlertDefinition.FromDocument(reader.GetString(0)));
                }
                return Task.FromResult<IReadOnlyList<AlertDefinition>>(alerts);
            }
        }
        catch (SqliteException ex)
        {
            throw new StoreStartupException($"The alerts in {databasePath} cannot be read ({ex.Message}).", ex);
        }
    }

    protected override async Task<bool> SaveAsync(AlertDefinition alert, AlertDefinition? expected, CancellationToken cancellationToken)
    {
        try
        {
            return await Write(connection =>
            {
                using var transaction = connection.BeginTransaction();
                using var command = connection.CreateCommand();
                command.CommandText = expected is null
                    ? "INSERT INTO alerts (id, definition) VALUES ($id, $definition) ON CONFLICT (id) DO UPDATE SET definition = excluded.definition"
                    : "UPDATE alerts SET definition = $definition WHERE id = $id AND definition = $expected";
                command.Parameters.AddWithValue("$id", alert.Id);
                command.Parameters.AddWithValue("$definition", alert.ToDocument());
                if (expected is not null)
                {
                    command.Parameters.AddWithValue("$expected", expected.ToDocument());
                }
                if (command.ExecuteNonQuery() == 0)
                {
                    return false;
                }
                if (!alert.WebhookEnabled)
                {
                    Execute(connection, "DELETE FROM alert_outbox WHERE alert_id = $id", alert.Id);
                }
                transaction.Commit();
                return true;
            });
        }
        catch (SqliteException ex)
        {
            throw new AlertStoreException($"The alert could not be stored ({ex.Message}).", ex);
        }
    }

    protected override async Task<bool> DeleteAsync(string id, CancellationToken cancellationToken)
    {
        try
        {
            return await Write(connection =>
            {
                using var transaction = connection.BeginTransaction();
                var deleted = Execute(connection, "DELETE FROM alerts WHERE id = $id", id) > 0;
                Execute(connection, "DELETE FROM alert_states WHERE alert_id = $id", id);
                Execute(connection, "DELETE FROM alert_outbox WHERE alert_id = $id", id);
                Execute(connection, "DELETE FROM alert_deliveries WHERE alert_id = $id", id);
                transaction.Commit();
                return deleted;
            });
        }
        catch (SqliteException ex)
        {
            throw new AlertStoreException($"The alert could not be deleted ({ex.Message}).", ex);
        }
    }

    protected override ValueTask DisposeCoreAsync()
    {
        lock (_lock)
        {
            _connection?.Dispose();
            _connection = null;
        }
        return ValueTask.CompletedTask;
    }

    private static void InsertAttempt(SqliteConnection connection, DeliveryAttempt attempt)
    {
        using var command = connection.CreateCommand();
        command.CommandText = """
            INSERT INTO alert_deliveries (alert_id, event_id, type, attempt, at, status, error, outcome)
            VALUES ($alert, $event, $type, $attempt, $at, $status, $error, $outcome)
            """;
        command.Parameters.AddWithValue("$alert", attempt.AlertId);
        command.Parameters.AddWithValue("$event", attempt.EventId);
        command.Parameters.AddWithValue("$type", attempt.TypeName);
        command.Parameters.AddWithValue("$attempt", attempt.Attempt);
        command.Parameters.AddWithValue("$at", attempt.At);
        command.Parameters.AddWithValue("$status", (object?)attempt.Status ?? DBNull.Value);
        command.Parameters.AddWithValue("$error", (object?)attempt.Error ?? DBNull.Value);
        command.Parameters.AddWithValue("$outcome", DeliveryAttempt.OutcomeName(attempt.Outcome));
        command.ExecuteNonQuery();
    }

    private static int Execute(SqliteConnection connection, string sql, string id)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.Parameters.AddWithValue("$id", id);
        return command.ExecuteNonQuery();
    }

    /// <summary>Runs on the store's connection, one caller at a time (the sender and the alert endpoints share it).</summary>
    private Task<T> Read<T>(Func<SqliteConnection, T> read)
    {
        lock (_lock)
        {
            var connection = _connection ?? throw new InvalidOperationException("The SQLite alert store is not open.");
            return Task.FromResult(read(connection));
        }
    }

    private Task<T> Write<T>(Func<SqliteConnection, T> write) => Read(write);
}
