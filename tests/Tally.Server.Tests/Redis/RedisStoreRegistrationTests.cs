using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Tally.Server.Auth;
using Tally.Server.Configuration;
using Tally.Server.Events;
using Tally.Server.Observability;
using Tally.Server.Pipeline;
using Tally.Server.Storage.Redis;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Redis;

/// <summary>What <c>Store=redis</c> registers besides the counter engine: the shared key store, the heartbeat and the live events relay.</summary>
[Trait("Layer", "Process")]
public class RedisStoreRegistrationTests(RedisFixture redis) : IClassFixture<RedisFixture>
{
    [Fact]
    public async Task KeysAndTheClusterSizeComeFromRedis()
    {
        var configuration = await redis.ResetAsync();
        await using var provider = new ServiceCollection()
            .AddLogging()
            .AddSingleton(TimeProvider.System)
            .AddSingleton(Microsoft.Extensions.Options.Options.Create(new TallyOptions { Store = StoreKind.Redis, Redis = configuration }))
            // What the live events relay needs, as the app registers it.
            .AddSingleton<IConfiguration>(new ConfigurationBuilder().Build())
            .AddMetrics()
            .AddSingleton<TallyMetrics>()
            .AddSingleton<IHostApplicationLifetime, Microsoft.Extensions.Hosting.Internal.ApplicationLifetime>()
            .AddTallyEvents()
            .AddRedisStore()
            .BuildServiceProvider();

        Assert.IsType<RedisApiKeyStore>(provider.GetRequiredService<ApiKeyStore>());
        var membership = provider.GetRequiredService<RedisClusterMembership>();
        Assert.Same(membership, provider.GetRequiredService<IClusterSize>());
        Assert.Contains(membership, provider.GetServices<IHostedService>());
        var relay = provider.GetRequiredService<RedisEventRelay>();
        Assert.Contains(relay, provider.GetServices<IHostedService>());
        Assert.Contains(relay, provider.GetServices<ICommitObserver>());
    }
}
