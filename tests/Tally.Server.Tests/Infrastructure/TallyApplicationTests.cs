using Microsoft.Extensions.Time.Testing;

namespace Tally.Server.Tests.Infrastructure;

/// <summary>The test host itself: what other tests rely on.</summary>
public class TallyApplicationTests
{
    [Fact]
    public async Task AFakeClockDecidesCounterTimesSoTestsAdvanceItInsteadOfSleeping()
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(2030, 1, 2, 3, 4, 5, TimeSpan.Zero));
        await using var app = new TallyApplication("memory", clock: clock);
        var client = app.CreateClient();

        var created = await (await client.IncrementAsync("timed")).ReadCounterAsync();
        clock.Advance(TimeSpan.FromMinutes(5));
        var updated = await (await client.IncrementAsync("timed")).ReadCounterAsync();

        Assert.Equal(clock.Start.UtcDateTime, created.CreatedAt.ToUniversalTime());
        Assert.Equal(clock.Start.UtcDateTime.AddMinutes(5), updated.UpdatedAt.ToUniversalTime());
        Assert.Equal(created.CreatedAt, updated.CreatedAt);
    }
}
