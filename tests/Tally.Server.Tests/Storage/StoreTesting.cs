using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Tally.Server.Configuration;
using Tally.Server.Counters;
using Tally.Server.History;
using Tally.Server.Observability;
using Tally.Server.Pipeline;
using Tally.Server.Storage;
using Tally.Server.Storage.Memory;
using Tally.Server.Storage.Sqlite;

namespace Tally.Server.Tests.Storage;

/// <summary>A clock the test moves by hand, so timestamps are predictable.</summary>
internal sealed class ManualClock(long nowMs) : TimeProvider
{
    public long NowMs { get; set; } = nowMs;

    public override DateTimeOffset GetUtcNow() => DateTimeOffset.FromUnixTimeMilliseconds(NowMs);
}

internal static class StoreTesting
{
    /// <summary>A count read straight from the SQLite file in <paramref name="dataDir"/> (read-only, its own connection): what is on disk.</summary>
    internal static long CountInDataFile(string dataDir, string sql)
    {
        using var connection = new Microsoft.Data.Sqlite.SqliteConnection(new Microsoft.Data.Sqlite.SqliteConnectionStringBuilder
        {
            DataSource = Path.Combine(dataDir, "tally.db"),
            Mode = Microsoft.Data.Sqlite.SqliteOpenMode.ReadOnly,
            Pooling = false,
        }.ToString());
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return command.ExecuteScalar() is long value ? value : 0;
    }

    // Shared services the stores and the pipeline take (metrics, logging); built once, never holding test data.
    internal static readonly IServiceProvider Shared = new ServiceCollection()
        .AddLogging()
        .AddMetrics()
        .AddSingleton<TallyMetrics>()
        .AddSingleton<Tally.Server.Alerts.AlertCatalog>()
        .AddSingleton<MemoryAlertStore>()
        .BuildServiceProvider();

    /// <summary>
    /// A store of the given kind, not yet opened. Built like the app builds it, so new dependencies come along.
    /// <paramref name="history"/>: history settings other than the defaults.
    /// </summary>
    public static ICounterStore Create(
        string kind, string dataDir, TimeProvider clock, DurabilityMode durability = DurabilityMode.Sync, HistoryOptions? history = null)
    {
        object[] arguments = history is null
            ? [clock, Options(dataDir, durability, foldAfter: kind == "sqlite-fold5" ? 5 : 20_000)]
            : [clock, Options(dataDir, durability, foldAfter: kind == "sqlite-fold5" ? 5 : 20_000), Microsoft.Extensions.Options.Options.Create(history)];
        return kind switch
        {
            "memory" => ActivatorUtilities.CreateInstance<MemoryCounterStore>(Shared, arguments),
            // sqlite-fold5: the counter log folded every few names, so folds happen in the middle of a run, not only on close.
            "sqlite" or "sqlite-fold5" => ActivatorUtilities.CreateInstance<SqliteCounterStore>(Shared, arguments),
            _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
        };
    }

    /// <summary>A SQLite store whose counter log starts a fold cycle at <paramref name="foldAfter"/> names, not yet opened.</summary>
    public static SqliteCounterStore CreateSqlite(string dataDir, TimeProvider clock, int foldAfter, DurabilityMode durability = DurabilityMode.Sync) =>
        ActivatorUtilities.CreateInstance<SqliteCounterStore>(Shared, clock, Options(dataDir, durability, foldAfter: foldAfter));

    /// <summary>A commit pipeline over the store, not yet started.</summary>
    public static CommitPipeline CreatePipeline(ICounterStore store, IOptions<TallyOptions> options) =>
        ActivatorUtilities.CreateInstance<CommitPipeline>(Shared, store, options);

    public static IOptions<TallyOptions> Options(string dataDir, DurabilityMode durability = DurabilityMode.Sync, int maxBatchSize = 4096, int foldAfter = 20_000) =>
        Microsoft.Extensions.Options.Options.Create(new TallyOptions
        {
            Store = StoreKind.Sqlite,
            DataDir = dataDir,
            Durability = durability,
            MaxBatchSize = maxBatchSize,
            CounterLogFoldAfter = foldAfter,
        });

    /// <summary>Commits the commands as one batch and returns each one's result.</summary>
    public static async Task<CommandResult[]> CommitAsync(this ICounterStore store, params CounterCommand[] commands)
    {
        var batch = commands.Select(command => PendingRequest.For(command)).ToList();
        var outcomes = await store.CommitAsync(batch, CancellationToken.None);
        return [.. outcomes.Select(outcome => outcome.Result)];
    }

    /// <summary>Durability=async: writes what was acknowledged (the pipeline does this on its interval).</summary>
    public static ValueTask FlushAsync(this ICounterStore store, CancellationToken cancellationToken) =>
        ((IDeferredDurability)store).FlushAsync(cancellationToken);

    /// <summary>One step of idle upkeep (the pipeline does this when no request waits).</summary>
    public static ValueTask MaintainAsync(this ICounterStore store, CancellationToken cancellationToken) =>
        ((IStoreUpkeep)store).MaintainAsync(cancellationToken);

    public static long? UnflushedSince(this ICounterStore store) => ((IDeferredDurability)store).UnflushedSince;

    public static async Task<Counter?> GetAsync(this ICounterStore store, string name) =>
        await store.GetAsync(name, CancellationToken.None);

    public static async Task<List<string>> ListNamesAsync(this ICounterStore store, string prefix = "", string? after = null, int limit = 1000) =>
        [.. (await store.ListAsync(prefix, after, limit, CancellationToken.None)).Select(counter => counter.Name)];

    public static CounterFields Fields(long? value = null, long? initial = null, long? min = null, long? max = null) => new(
        value is { } v ? Optional<long>.Of(v) : default,
        initial is { } i ? Optional<long>.Of(i) : default,
        min is { } lo ? Optional<long?>.Of(lo) : default,
        max is { } hi ? Optional<long?>.Of(hi) : default);
}
