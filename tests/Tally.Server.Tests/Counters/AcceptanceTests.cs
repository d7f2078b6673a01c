using System.Net;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Counters;

/// <summary>The seed article's three acceptance criteria, over HTTP.</summary>
public class AcceptanceTests
{
    [Fact]
    public async Task GivenACounterAtZeroWhenIncrementedThenItIsOne()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        // Given
        await client.SetUpCounterAsync("visits", """{"value": 0}""");
        // When
        var response = await client.IncrementAsync("visits");
        // Then
        Assert.Equal(1, (await response.ReadCounterAsync()).Value);
        Assert.Equal(1, (await client.GetCounterAsync("visits")).Value);
    }

    [Fact]
    public async Task GivenACounterAtFiveWhenDecrementedThenItIsFour()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        // Given
        await client.SetUpCounterAsync("stock", """{"value": 5}""");
        // When
        var response = await client.DecrementAsync("stock");
        // Then
        Assert.Equal(4, (await response.ReadCounterAsync()).Value);
        Assert.Equal(4, (await client.GetCounterAsync("stock")).Value);
    }

    [Fact]
    public async Task GivenACounterAtItsMaximumWhenIncrementedThenOutOfRangeAndTheValueIsUnchanged()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        // Given
        var before = await client.SetUpCounterAsync("seats", """{"value": 10, "max": 10}""");
        // When
        var response = await client.IncrementAsync("seats");
        // Then
        var problem = await response.ReadProblemAsync(HttpStatusCode.Conflict, "out_of_range");
        Assert.Equal(10, (long)problem["value"]!);
        Assert.Equal(10, (long)problem["max"]!);
        Assert.Equal(before, await client.GetCounterAsync("seats"));
    }
}
