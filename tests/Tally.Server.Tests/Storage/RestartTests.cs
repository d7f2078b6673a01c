using System.Net;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Storage;

/// <summary>Stopping Tally and starting it again on the same data directory.</summary>
public class RestartTests
{
    [Theory]
    [InlineData("sync")]
    [InlineData("async")]
    public async Task EveryFieldOfEveryCounterSurvivesARestart(string durability)
    {
        await using var first = new TallyApplication("sqlite", durability);
        var client = first.CreateClient();
        await client.SetUpCounterAsync("bounded", """{"value": 7, "initial": 3, "min": -10, "max": 10}""");
        await client.IncrementAsync("bounded", """{"by": 3}""");
        await client.SetUpCounterAsync("extremes", """{"value": 9223372036854775807, "initial": -9223372036854775808}""");
        await client.PostAsync("/counters/low/decrement?by=9223372036854775807", null);
        await client.DecrementAsync("low");
        for (var i = 0; i < 5; i++)
        {
            await client.IncrementAsync("plain");
        }
        await client.IncrementAsync("deleted");
        await client.DeleteAsync("/counters/deleted");
        var before = (await (await client.GetAsync("/counters")).ReadPageAsync()).Items;

        await using var second = await first.RestartAsync();
        client = second.CreateClient();

        Assert.Equal(before, (await (await client.GetAsync("/counters")).ReadPageAsync()).Items);
        await (await client.GetAsync("/counters/deleted")).ReadProblemAsync(HttpStatusCode.NotFound, "counter_not_found");
        // The bounds, initial and version are live again, not just displayed.
        await (await client.IncrementAsync("bounded")).ReadProblemAsync(HttpStatusCode.Conflict, "out_of_range");
        var reset = await (await client.PostAsync("/counters/bounded/reset", null)).ReadCounterAsync();
        Assert.Equal((3L, 3L), (reset.Value, reset.Version));
        Assert.Equal((6L, 6L), ((await (await client.IncrementAsync("plain")).ReadCounterAsync()).Value, (await client.GetCounterAsync("plain")).Version));
        await (await client.DecrementAsync("low")).ReadProblemAsync(HttpStatusCode.Conflict, "out_of_range");
    }

    [Fact]
    public async Task CountersSurviveSeveralRestarts()
    {
        var app = new TallyApplication();
        try
        {
            for (var round = 1; round <= 3; round++)
            {
                var counter = await (await app.CreateClient().IncrementAsync("a")).ReadCounterAsync();
                Assert.Equal((round, round), (counter.Value, counter.Version));
                app = await app.RestartAsync();
            }
            Assert.Equal(3, (await app.CreateClient().GetCounterAsync("a")).Value);
        }
        finally
        {
            await app.DisposeAsync();
        }
    }

    [Fact]
    public async Task MemoryStoreStartsEmptyAfterARestart()
    {
        await using var first = new TallyApplication("memory");
        await first.CreateClient().IncrementAsync("a");
        await using var second = await first.RestartAsync();
        await (await second.CreateClient().GetAsync("/counters/a")).ReadProblemAsync(HttpStatusCode.NotFound, "counter_not_found");
    }
}
