using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Options;
using Tally.Server.Auth;
using Tally.Server.Configuration;

namespace Tally.Server.Storage.Sqlite;

/// <summary>
/// Keys in the <c>api_keys</c> table of the SQLite data file, through a connection of their own:
/// key changes are rare and need nothing from the commit pipeline. The counter store has already
/// opened (and migrated) the file when <see cref="ApiKeyStartup"/> opens this.
/// </summary>
internal sealed class SqliteApiKeyStore(IOptions<TallyOptions> options, TimeProvider clock, string databasePath)
    : ApiKeyStore(options, clock)
{
    private SqliteConnection? _connection;

    protected override Task<IReadOnlyList<ApiKey>> LoadAsync(CancellationToken cancellationToken)
    {
        try
        {
            _connection = new SqliteConnection(SqliteSchema.ConnectionString(databasePath, readOnly: false));
            _connection.Open();
            // A key change waits for a commit of the counter store rather than failing; it is on disk when answered.
            SqliteSchema.Execute(_connection, "PRAGMA busy_timeout = 5000; PRAGMA synchronous = FULL;");
            if (SqliteSchema.Scalar(_connection, "SELECT count(*) FROM sqlite_master WHERE name = 'api_keys'") == 0)
            {
                throw new StoreStartupException($"{databasePath} has no api_keys table: the counter store must open (and migrate) the file before the key store.");
            }

            var keys = new List<ApiKey>();
            using var command = _connection.CreateCommand();
            command.CommandText = "SELECT id, name, scopes, prefix, hash, created_at, max_counters, max_amount FROM api_keys";
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                var scopes = reader.GetString(2).Split(' ', StringSplitOptions.RemoveEmptyEntries)
                    .Aggregate(ApiScopes.None, (all, name) => all | ApiKey.Parse(name));
                keys.Add(new ApiKey(reader.GetString(0), reader.GetString(1), scopes, reader.GetString(3),
                    DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(5)), (byte[])reader.GetValue(4),
                    reader.IsDBNull(6) ? null : reader.GetInt64(6), reader.IsDBNull(7) ? null : reader.GetInt64(7)));
            }
            return Task.FromResult<IReadOnlyList<ApiKey>>(keys);
        }
        catch (SqliteException ex)
        {
            throw new StoreStartupException($"The API keys in {databasePath} cannot be read ({ex.Message}).", ex);
        }
    }

    protected override Task InsertAsync(ApiKey key, CancellationToken cancellationToken) => Write(() =>
    {
        using var command = Connection.CreateCommand();
        command.CommandText = """
            INSERT INTO api_keys (id, name, scopes, prefix, hash, created_at, max_counters, max_amount)
            VALUES ($id, $name, $scopes, $prefix, $hash, $created, $maxCounters, $maxAmount)
            """;
        command.Parameters.AddWithValue("$id", key.Id);
        command.Parameters.AddWithValue("$name", key.Name);
        command.Parameters.AddWithValue("$scopes", string.Join(' ', ApiKey.Names(key.Scopes)));
        command.Parameters.AddWithValue("$prefix", key.Prefix);
        command.Parameters.AddWithValue("$hash", key.Hash);
        command.Parameters.AddWithValue("$created", key.CreatedAt.ToUnixTimeMilliseconds());
        command.Parameters.AddWithValue("$maxCounters", (object?)key.MaxCounters ?? DBNull.Value);
        command.Parameters.AddWithValue("$maxAmount", (object?)key.MaxAmount ?? DBNull.Value);
        command.ExecuteNonQuery();
    });

    protected override Task DeleteAsync(string id, CancellationToken cancellationToken) => Write(() =>
    {
        using var command = Connection.CreateCommand();
        command.CommandText = "DELETE FROM api_keys WHERE id = $id";
        command.Parameters.AddWithValue("$id", id);
        command.ExecuteNonQuery();
    });

    public override async ValueTask DisposeAsync()
    {
        _connection?.Dispose();
        _connection = null;
        await base.DisposeAsync();
    }

    private static Task Write(Action write)
    {
        try
        {
            write();
            return Task.CompletedTask;
        }
        catch (SqliteException ex)
        {
            throw new ApiKeyStoreException($"The key store could not write ({ex.Message}).", ex);
        }
    }

    private SqliteConnection Connection => _connection ?? throw new InvalidOperationException("The API key store is not open.");
}
