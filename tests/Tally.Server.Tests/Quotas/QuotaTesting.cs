using Microsoft.Extensions.DependencyInjection;
using Tally.Server.Configuration;
using Tally.Server.Counters;
using Tally.Server.Idempotency;
using Tally.Server.Observability;
using Tally.Server.Pipeline;
using Tally.Server.Storage;
using Tally.Server.Storage.Memory;
using Tally.Server.Storage.Sqlite;
using Tally.Server.Tests.Storage;

namespace Tally.Server.Tests.Quotas;

internal static class QuotaTesting
{
    private static readonly IServiceProvider Shared = new ServiceCollection()
        .AddLogging()
        .AddMetrics()
        .AddSingleton<TallyMetrics>()
        .AddSingleton<Tally.Server.Alerts.AlertCatalog>()
        .AddSingleton<MemoryAlertStore>()
        .BuildServiceProvider();

    /// <summary>A store of the given kind (memory or sqlite) with these quotas, opened.</summary>
    public static async Task<ICounterStore> OpenAsync(string kind, string dataDir, TimeProvider clock, QuotaOptions quotas)
    {
        var options = StoreTesting.Options(dataDir);
        var wrapped = Microsoft.Extensions.Options.Options.Create(quotas);
        ICounterStore store = kind == "memory"
            ? ActivatorUtilities.CreateInstance<MemoryCounterStore>(Shared, clock, options, wrapped)
            : ActivatorUtilities.CreateInstance<SqliteCounterStore>(Shared, clock, options, wrapped);
        await store.OpenAsync(CancellationToken.None);
        return store;
    }

    /// <summary>Commits one request (a command sent by <paramref name="requester"/>, perhaps keyed) and returns its outcome.</summary>
    public static async Task<RequestOutcome> SendAsync(this ICounterStore store, CounterCommand command, Requester requester, string? idempotencyKey = null)
    {
        var key = idempotencyKey is null ? null : new IdempotencyKey(requester.KeyId ?? string.Empty, idempotencyKey,
            IdempotencyKey.FingerprintOf("POST", $"/counters/{command.Name}", string.Empty, System.Text.Encoding.UTF8.GetBytes(command.ToString())));
        var pending = PendingRequest.For(command, key, requester);
        return (await store.CommitAsync([pending], CancellationToken.None))[0];
    }
}
