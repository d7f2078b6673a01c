using Microsoft.Extensions.Options;
using Npgsql;
using Tally.Server.Auth;
using Tally.Server.Configuration;

namespace Tally.Server.Storage.Postgres;

/// <summary>
/// API keys in PostgreSQL, shared by every instance. Each instance keeps them in memory (authenticating a
/// request needs no query) and polls a generation number that every key change bumps in the same
/// transaction; when it moves, the keys are reloaded. A key created or revoked on one instance holds
/// on every instance within <see cref="PollInterval"/> plus one query.
/// </summary>
/// <remarks>
/// Polling one row four times a second costs next to nothing and needs no session connection, so it also
/// works through PgBouncer in transaction mode, where LISTEN/NOTIFY would not.
/// </remarks>
internal sealed class PostgresApiKeyStore(NpgsqlDataSource dataSource, IOptions<TallyOptions> options, TimeProvider clock, ILogger<PostgresApiKeyStore> logger)
    : ApiKeyStore(options, clock)
{
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(250);

    /// <summary>Serializes key changes across instances: the first-admin and last-admin decisions read, then write.</summary>
    private const long KeyChangeLock = 0x54414C59_00000002; // "TALY", 2

    private readonly CancellationTokenSource _stopping = new();
    private long _generation = -1;
    private long _localChanges;
    private Task? _poller;

    protected override async Task<IReadOnlyList<ApiKey>> LoadAsync(CancellationToken cancellationToken)
    {
        var (generation, keys) = await ReadAsync(cancellationToken);
        _generation = generation;
        _poller ??= Task.Run(() => PollAsync(_stopping.Token), CancellationToken.None);
        return keys;
    }

    protected override Task InsertAsync(ApiKey key, CancellationToken cancellationToken) =>
        ChangeAsync(async (connection, token) =>
        {
            await InsertRowAsync(connection, key, token);
            return true;
        }, cancellationToken);

    protected override Task DeleteAsync(string id, CancellationToken cancellationToken) =>
        ChangeAsync(async (connection, token) =>
        {
            await using var delete = new NpgsqlCommand("DELETE FROM api_keys WHERE id = $1", connection);
            delete.Parameters.Add(new NpgsqlParameter<string> { TypedValue = id });
            await delete.ExecuteNonQueryAsync(token);
            return true;
        }, cancellationToken);

    protected override Task<bool> InsertIfNoneStoredAsync(ApiKey key, CancellationToken cancellationToken) =>
        ChangeAsync(async (connection, token) =>
        {
            await using var count = new NpgsqlCommand("SELECT count(*) FROM api_keys", connection);
            if ((long)(await count.ExecuteScalarAsync(token))! > 0)
            {
                return false;
            }
            await InsertRowAsync(connection, key, token);
            return true;
        }, cancellationToken);

    protected override Task<bool> DeleteUnlessLastAdminAsync(string id, CancellationToken cancellationToken) =>
        ChangeAsync(async (connection, token) =>
        {
            await using var delete = new NpgsqlCommand("""
                DELETE FROM api_keys WHERE id = $1
                    AND (SELECT count(*) FROM api_keys WHERE ' ' || scopes || ' ' LIKE '% admin %' AND id <> $1) > 0
                """, connection);
            delete.Parameters.Add(new NpgsqlParameter<string> { TypedValue = id });
            return await delete.ExecuteNonQueryAsync(token) > 0;
        }, cancellationToken);

    public override async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        if (_poller is not null)
        {
            await _poller.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
        _stopping.Dispose();
        await base.DisposeAsync();
    }

    /// <summary>One transaction under the key-change lock; the generation moves with every change that was made.</summary>
    private async Task<bool> ChangeAsync(Func<NpgsqlConnection, CancellationToken, Task<bool>> change, CancellationToken cancellationToken)
    {
        try
        {
            await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            await PostgresSchema.ExecuteAsync(connection, $"SELECT pg_advisory_xact_lock({KeyChangeLock})", cancellationToken);
            var changed = await change(connection, cancellationToken);
            if (changed)
            {
                await PostgresSchema.ExecuteAsync(connection, "UPDATE api_key_generation SET generation = generation + 1 WHERE id = 1", cancellationToken);
            }
            await transaction.CommitAsync(cancellationToken);
            Interlocked.Increment(ref _localChanges);
            return changed;
        }
        catch (NpgsqlException ex)
        {
            throw new ApiKeyStoreException($"The key store could not write ({ex.Message}).", ex);
        }
    }

    private static async Task InsertRowAsync(NpgsqlConnection connection, ApiKey key, CancellationToken cancellationToken)
    {
        await using var insert = new NpgsqlCommand("""
            INSERT INTO api_keys (id, name, scopes, prefix, hash, created_at, max_counters, max_amount)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            """, connection);
        insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = key.Id });
        insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = key.Name });
        insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = string.Join(' ', ApiKey.Names(key.Scopes)) });
        insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = key.Prefix });
        insert.Parameters.Add(new NpgsqlParameter<byte[]> { TypedValue = key.Hash });
        insert.Parameters.Add(new NpgsqlParameter<long> { TypedValue = key.CreatedAt.ToUnixTimeMilliseconds() });
        insert.Parameters.Add(new NpgsqlParameter { Value = (object?)key.MaxCounters ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Bigint });
        insert.Parameters.Add(new NpgsqlParameter { Value = (object?)key.MaxAmount ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Bigint });
        await insert.ExecuteNonQueryAsync(cancellationToken);
    }

    private async Task<(long Generation, IReadOnlyList<ApiKey> Keys)> ReadAsync(CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        // One snapshot for both, so the keys read belong to the generation read.
        await using var transaction = await connection.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, cancellationToken);
        await using var generation = new NpgsqlCommand("SELECT generation FROM api_key_generation WHERE id = 1", connection);
        var current = (long)(await generation.ExecuteScalarAsync(cancellationToken))!;
        await using var select = new NpgsqlCommand("SELECT id, name, scopes, prefix, hash, created_at, max_counters, max_amount FROM api_keys", connection);
        await using var reader = await select.ExecuteReaderAsync(cancellationToken);
        var keys = new List<ApiKey>();
        while (await reader.ReadAsync(cancellationToken))
        {
            var scopes = reader.GetString(2).Split(' ', StringSplitOptions.RemoveEmptyEntries)
                .Aggregate(ApiScopes.None, (all, name) => all | ApiKey.Parse(name));
            keys.Add(new ApiKey(reader.GetString(0), reader.GetString(1), scopes, reader.GetString(3),
                DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(5)), (byte[])reader[4],
                reader.IsDBNull(6) ? null : reader.GetInt64(6), reader.IsDBNull(7) ? null : reader.GetInt64(7)));
        }
        return (current, keys);
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
            await using var command = dataSource.CreateCommand("SELECT generation FROM api_key_generation WHERE id = 1");
            var generation = (long)(await command.ExecuteScalarAsync(stopping))!;
            if (generation == Interlocked.Read(ref _generation))
            {
                return;
            }
            // A change made here while reading may be missing from what was read: then the next tick reads again.
            var localChanges = Interlocked.Read(ref _localChanges);
            var (read, keys) = await ReadAsync(stopping);
            if (await ReplaceAllAsync(keys, () => localChanges == Interlocked.Read(ref _localChanges), stopping))
            {
                Interlocked.Exchange(ref _generation, read);
            }
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException && !stopping.IsCancellationRequested)
        {
            // The keys in memory stay as they were until PostgreSQL answers again; readiness reports the outage.
            logger.LogDebug(ex, "Reloading API keys failed; retrying");
        }
    }
}
