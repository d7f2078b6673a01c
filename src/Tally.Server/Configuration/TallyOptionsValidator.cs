using Microsoft.Extensions.Options;

namespace Tally.Server.Configuration;

internal sealed class TallyOptionsValidator : IValidateOptions<TallyOptions>
{
    public ValidateOptionsResult Validate(string? name, TallyOptions options)
    {
        var errors = new List<string>();
        if (!Enum.IsDefined(options.Store))
        {
            errors.Add("Store must be one of: sqlite, memory, postgres, redis.");
        }
        if (options.Store == StoreKind.Postgres && string.IsNullOrWhiteSpace(options.Postgres))
        {
            errors.Add("Store=postgres needs a connection string: set Postgres (or ConnectionStrings:Postgres), e.g. Host=db;Database=tally;Username=tally;Password=….");
        }
        if (!string.IsNullOrWhiteSpace(options.PostgresListen) && !IsConnectionString(options.PostgresListen))
        {
            errors.Add("PostgresListen must be an Npgsql connection string (a direct one, not through PgBouncer), e.g. Host=db;Database=tally;Username=tally;Password=….");
        }
        if (options.Store == StoreKind.Postgres && options.Durability == DurabilityMode.Async)
        {
            // Acknowledging before PostgreSQL commits would lose changes when this instance dies, and other instances could not see them.
            errors.Add("Durability=async is not available with Store=postgres: a 2xx means PostgreSQL committed the change. Use Durability=sync, or tune synchronous_commit in PostgreSQL.");
        }
        if (options.Store == StoreKind.Redis && options.Durability == DurabilityMode.Async)
        {
            // Redis's own appendfsync decides when an applied change is on disk; Tally adds no window of its own.
            errors.Add("Durability=async is not available with Store=redis: a 2xx means Redis applied the change, and Redis's appendfsync decides when it is on disk. Use Durability=sync (with RedisAllowDataLoss=true for a Redis that fsyncs every second).");
        }
        if (options.Store == StoreKind.Redis && string.IsNullOrWhiteSpace(options.Redis))
        {
            errors.Add("Store=redis needs a configuration string: set Redis (or ConnectionStrings:Redis), e.g. 127.0.0.1:6379 or redis.internal:6379,password=….");
        }
        if (options.Store == StoreKind.Sqlite && string.IsNullOrWhiteSpace(options.DataDir))
        {
            errors.Add("DataDir must name a directory for the SQLite store.");
        }
        if (!Enum.IsDefined(options.Durability))
        {
            errors.Add("Durability must be sync or async.");
        }
        if (options.FlushIntervalMs is < 1 or > 1000)
        {
            errors.Add($"FlushIntervalMs must be from 1 to 1000 (got {options.FlushIntervalMs}).");
        }
        if (options.MaxBatchSize is < 1 or > 100_000)
        {
            errors.Add($"MaxBatchSize must be from 1 to 100000 (got {options.MaxBatchSize}).");
        }
        if (options.IdempotencyRetentionMinutes is < 1 or > 30 * 24 * 60)
        {
            errors.Add($"IdempotencyRetentionMinutes must be from 1 to 43200 (30 days) (got {options.IdempotencyRetentionMinutes}).");
        }
        if (options.ShutdownTimeoutSeconds is < 1 or > 600)
        {
            errors.Add($"ShutdownTimeoutSeconds must be from 1 to 600 (got {options.ShutdownTimeoutSeconds}).");
        }
        if (options.CounterLogFoldAfter is < 1 or > 10_000_000)
        {
            errors.Add($"CounterLogFoldAfter must be from 1 to 10000000 (got {options.CounterLogFoldAfter}).");
        }
        if (options.MaxBodyBytes is < 1024 or > 64 * 1024 * 1024)
        {
            errors.Add($"MaxBodyBytes must be from 1024 to 67108864 (got {options.MaxBodyBytes}).");
        }
        if (options.Auth is { } auth && !Enum.IsDefined(auth))
        {
            errors.Add("Auth must be on or off.");
        }
        if (!string.IsNullOrEmpty(options.AdminKey) && (options.AdminKey.Length is < 16 or > 256 || options.AdminKey.Any(c => c is <= ' ' or > '~')))
        {
            errors.Add("AdminKey must be 16 to 256 printable ASCII characters without spaces (the value is not shown here).");
        }
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    private static bool IsConnectionString(string value)
    {
        try
        {
            _ = new Npgsql.NpgsqlConnectionStringBuilder(value);
            return true;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }
}
