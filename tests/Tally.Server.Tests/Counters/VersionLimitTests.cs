using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Tally.Server.Counters;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Counters;

/// <summary>Versions never wrap: the highest version stays valid as an ETag and in an export.</summary>
public sealed class VersionLimitTests
{
    private const string AtTheTop = """{"name":"top","value":5,"initial":0,"min":null,"max":null,"version":9223372036854775807,"createdAt":"2026-01-01T00:00:00Z","updatedAt":"2026-01-01T00:00:00Z"}""";

    [Theory]
    [InlineData("increment")]
    [InlineData("put")]
    [InlineData("reset")]
    public void ACounterAtTheHighestVersionTakesNoFurtherChange(string kind)
    {
        var top = new Counter("top", 5, 0, null, null, long.MaxValue, 1, 1);
        var command = kind switch
        {
            "increment" => CounterCommand.Increment("top", 1),
            "put" => CounterCommand.Put("top", default),
            _ => CounterCommand.Reset("top"),
        };

        var result = CounterRules.Apply(command, top, 2);

        Assert.Equal(ErrorCodes.VersionExhausted, result.Error?.Code);
        Assert.False(result.Changed);
    }

    [Fact]
    public async Task AnImportedTopVersionIsReadableChangeRefusedAndExportedAgain()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/admin/import", new StringContent(AtTheTop + "\n", Encoding.UTF8, "application/x-ndjson"))).StatusCode);

        var refused = await client.IncrementAsync("top");
        await refused.ReadProblemAsync(HttpStatusCode.Conflict, ErrorCodes.VersionExhausted);
        var read = await client.GetAsync("/counters/top");
        Assert.Equal(new EntityTagHeaderValue("\"9223372036854775807\""), read.Headers.ETag);
        Assert.Equal(5, (await read.ReadCounterAsync()).Value);
        // Its own ETag is a valid precondition (it reaches the rules, which refuse the change, not the parser).
        var conditional = await client.SendAsync(HttpMethod.Post, "/counters/top/increment", header: ("If-Match", "\"9223372036854775807\""));
        await conditional.ReadProblemAsync(HttpStatusCode.Conflict, ErrorCodes.VersionExhausted);

        var exported = await client.GetStringAsync("/admin/export");
        await using var other = new TallyApplication();
        var reimported = await other.CreateClient().PostAsync("/admin/import", new StringContent(exported, Encoding.UTF8, "application/x-ndjson"));
        Assert.Equal(HttpStatusCode.OK, reimported.StatusCode);
        Assert.Equal(long.MaxValue, (await other.CreateClient().GetCounterAsync("top")).Version);
    }
}
