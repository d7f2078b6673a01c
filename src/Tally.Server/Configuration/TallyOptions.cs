namespace Tally.Server.Configuration;

internal enum StoreKind
{
    Sqlite,
    Memory,
    Postgres,
    Redis,
}

internal enum DurabilityMode
{
    /// <summary>A 2xx means the change is on disk.</summary>
    Sync,
    /// <summary>Acknowledged after the in-memory apply; flushed within <see cref="TallyOptions.FlushIntervalMs"/>.</summary>
    Async,
}

internal enum AuthMode
{
    /// <summary>Every request but the open ones needs an API key.</summary>
    On,
    /// <summary>For local use: every request acts as an admin, without a key.</summary>
    Off,
}

/// <summary>
/// Service settings, bound from the configuration root (appsettings.json, <c>TALLY_</c> environment
/// variables, command line). Checked at start-up by <see cref="TallyOptionsValidator"/>.
/// </summary>
internal sealed class TallyOptions
{
    public StoreKind Store { get; set; } = StoreKind.Sqlite;

    public string DataDir { get; set; } = "./data";

    public string? Postgres { get; set; }

    /// <summary>
    /// With <c>Store=postgres</c>: a direct connection string for the one connection that LISTENs for other instances'
    /// changes (live events), for when <see cref="Postgres"/> goes through PgBouncer in transaction mode. Unset: <see cref="Postgres"/>.
    /// </summary>
    public string? PostgresListen { get; set; }

    /// <summary>The StackExchange.Redis configuration string for <c>Store=redis</c> (e.g. <c>127.0.0.1:6379,password=…</c>).</summary>
    public string? Redis { get; set; }

    /// <summary>
    /// With <c>Store=redis</c>: start even when Redis's persistence settings would lose acknowledged changes
    /// (a loud warning says so). Off by default: Tally refuses to start on such a Redis.
    /// </summary>
    public bool RedisAllowDataLoss { get; set; }

    public DurabilityMode Durability { get; set; } = DurabilityMode.Sync;

    /// <summary>With <c>Durability=async</c>: the longest a change waits in memory before it is flushed.</summary>
    public int FlushIntervalMs { get; set; } = 10;

    /// <summary>The most commands the pipeline puts into one commit.</summary>
    public int MaxBatchSize { get; set; } = 4096;

    /// <summary>How long an Idempotency-Key is remembered (and a retry recognised).</summary>
    public int IdempotencyRetentionMinutes { get; set; } = 24 * 60;

    public TimeSpan IdempotencyRetention => TimeSpan.FromMinutes(IdempotencyRetentionMinutes);

    /// <summary>On SIGTERM: how long in-flight requests may take before the store is flushed and closed anyway.</summary>
    public int ShutdownTimeoutSeconds { get; set; } = 10;

    /// <summary>
    /// SQLite store: commits append changed counters to a log, folded into the counters table once it
    /// holds this many distinct counters (or ten times as many rows), and on a clean stop.
    /// </summary>
    public int CounterLogFoldAfter { get; set; } = 20_000;

    /// <summary>Request bodies larger than this are refused with 413.</summary>
    public int MaxBodyBytes { get; set; } = 1024 * 1024;

    /// <summary>
    /// <c>off</c> turns API keys off (every request is an admin); a loud warning at start says so. Unset: on.
    /// Nullable because <c>Auth</c> is also the section above <c>Auth:Jwt</c>, whose empty header must bind.
    /// </summary>
    public AuthMode? Auth { get; set; }

    /// <summary>A secret that is always an admin key (empty: none). Never logged.</summary>
    public string? AdminKey { get; set; }
}
