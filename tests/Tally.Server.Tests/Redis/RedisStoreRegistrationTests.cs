using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Tally.Server.Auth;
using Tally.Server.Configuration;
using Tally.Server.Storage.Redis;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Redis;

/// <summary>What <c>Store=redis</c> registers besides the counter engine: the shared key store and the heartbeat.</summary>
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
            .AddRedisStore()
            .BuildServiceProvider();

        Assert.IsType<RedisApiKeyStore>(provider.GetRequiredService<ApiKeyStore>());
        var membership = provider.GetRequiredService<RedisClusterMembership>();
        Assert.Same(membership, provider.GetRequiredService<IClusterSize>());
        Assert.Contains(membership, provider.GetServices<IHostedService>());
    }
}
