using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using Tally.Server.Auth;
using Tally.Server.Configuration;
using Tally.Server.Storage.Redis;
using Tally.Server.Tests.Storage;

namespace Tally.Server.Tests.Redis;

/// <summary>
/// The Redis parts of Tally instances on one Redis, built as the app builds them, each with its own connection (as
/// separate processes would have). Disposing this disposes the parts, then their connections.
/// </summary>
internal sealed class RedisInstances(string configuration) : IAsyncDisposable
{
    private readonly Stack<object> _owned = new();

    public string Configuration { get; } = configuration;

    /// <summary>Store=redis on this Redis, with no <c>AdminKey</c> setting (so the last admin key is kept).</summary>
    public IOptions<TallyOptions> Options { get; } =
        Microsoft.Extensions.Options.Options.Create(new TallyOptions { Store = StoreKind.Redis, Redis = configuration, AdminKey = null });

    /// <summary>A new connection as the app makes it (<see cref="RedisStoreRegistration.Connect"/>), closed with the rest.</summary>
    public IConnectionMultiplexer Connect()
    {
        var connection = RedisStoreRegistration.Connect(Configuration);
        _owned.Push(connection);
        return connection;
    }

    /// <summary>A key store on a connection of its own, not yet opened.</summary>
    public RedisApiKeyStore CreateKeyStore()
    {
        var store = ActivatorUtilities.CreateInstance<RedisApiKeyStore>(StoreTesting.Shared, Connect(), Options, TimeProvider.System);
        _owned.Push(store);
        return store;
    }

    /// <summary>An opened key store on a connection of its own.</summary>
    /// <param name="pollInterval">How often it reads the generation when no message came (default: the store's).</param>
    public async Task<RedisApiKeyStore> OpenKeyStoreAsync(TimeSpan? pollInterval = null)
    {
        var store = CreateKeyStore();
        store.PollInterval = pollInterval ?? RedisApiKeyStore.DefaultPollInterval;
        await store.OpenAsync(CancellationToken.None);
        return store;
    }

    /// <summary>What loads the keys and makes the first admin key at an instance's start, printing to <paramref name="console"/>.</summary>
    public ApiKeyStartup CreateStartup(ApiKeyStore keys, TextWriter console) =>
        ActivatorUtilities.CreateInstance<ApiKeyStartup>(StoreTesting.Shared, keys,
            ActivatorUtilities.CreateInstance<AdminKeyFile>(StoreTesting.Shared, Options), Options, new StartupConsole(console));

    /// <summary>A heartbeat on a connection of its own, not yet started; it is stopped (signing off) on dispose unless the test did.</summary>
    public RedisClusterMembership CreateMembership()
    {
        var membership = ActivatorUtilities.CreateInstance<RedisClusterMembership>(StoreTesting.Shared, Connect());
        _owned.Push(membership);
        return membership;
    }

    public async ValueTask DisposeAsync()
    {
        while (_owned.TryPop(out var owned))
        {
            switch (owned)
            {
                case RedisClusterMembership membership:
                    await membership.StopAsync(CancellationToken.None);
                    membership.Dispose();
                    break;
                case IAsyncDisposable disposable:
                    await disposable.DisposeAsync();
                    break;
            }
        }
    }

    /// <summary>Waits until <paramref name="condition"/> holds and returns how long that took; fails after <paramref name="within"/>.</summary>
    public static async Task<TimeSpan> UntilAsync(Func<bool> condition, TimeSpan within, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < within, $"{what}: not within {within.TotalSeconds} s");
            await Task.Delay(10);
        }
        return clock.Elapsed;
    }
}
