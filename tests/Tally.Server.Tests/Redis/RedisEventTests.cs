using Tally.Server.Tests.Events;
using Tally.Server.Tests.Infrastructure;
using Tally.Server.Tests.Process;

namespace Tally.Server.Tests.Redis;

/// <summary>Live events across two real Tally processes sharing a real Redis (pub/sub on the shared connection).</summary>
[Trait("Layer", "Process")]
public sealed class RedisEventTests(RedisFixture redis) : IClassFixture<RedisFixture>
{
    [Fact]
    public async Task AChangeOnOneInstanceReachesTheEventStreamsOfTheOtherOnce()
    {
        var configuration = await redis.ResetAsync();
        using var dirA = new TempDirectory();
        using var dirB = new TempDirectory();
        await using var a = TallyProcess.Start(dirA.Path, "--Store", "redis", "--Redis", configuration);
        await using var b = TallyProcess.Start(dirB.Path, "--Store", "redis", "--Redis", configuration);
        await Task.WhenAll(a.WaitUntilReadyAsync(), b.WaitUntilReadyAsync());
        using var clientA = a.CreateClient();
        using var clientB = b.CreateClient();

        await CrossInstanceEvents.ChangesOnAReachStreamsOnBOnceEachAsync(clientA, clientB);
    }
}
