using System.Net;
using System.Text.Json.Nodes;
using Tally.Server.Counters;
using Tally.Server.Tests.Auth;
using Tally.Server.Tests.Batch;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Counters;

/// <summary>A problem never tells a caller more than a GET would: an increment-only key learns nothing of a counter's state from errors.</summary>
public sealed class ProblemDisclosureTests : IAsyncLifetime
{
    private readonly TallyApplication _app = new();
    private HttpClient _admin = null!;
    private HttpClient _incrementOnly = null!;
    private HttpClient _writer = null!;

    public async Task InitializeAsync()
    {
        _admin = _app.CreateClient();
        _incrementOnly = _app.CreateClientWithKey((await _admin.CreateKeyAsync("page", ["increment"])).Key);
        _writer = _app.CreateClientWithKey((await _admin.CreateKeyAsync("backend", ["write"])).Key);
        await _admin.SetUpCounterAsync("secret", """{"value": 1234, "initial": 1000, "min": 1000, "max": 5000}""");
    }

    public async Task DisposeAsync() => await _app.DisposeAsync();

    [Fact]
    public async Task OutOfRangeHidesValueAndBoundsFromAnIncrementOnlyKey()
    {
        var problem = await (await _incrementOnly.PostAsync("/counters/secret/increment?by=9223372036854775807", null))
            .ReadProblemAsync(HttpStatusCode.Conflict, ErrorCodes.OutOfRange);

        Assert.False(problem.ContainsKey("value") || problem.ContainsKey("min") || problem.ContainsKey("max"), problem.ToJsonString());
        AssertTellsNothing(problem);
    }

    [Fact]
    public async Task OutOfRangeShowsValueAndBoundsToAKeyThatMayRead()
    {
        var problem = await (await _writer.PostAsync("/counters/secret/increment?by=9223372036854775807", null))
            .ReadProblemAsync(HttpStatusCode.Conflict, ErrorCodes.OutOfRange);

        Assert.Equal((1234L, 1000L, 5000L), ((long)problem["value"]!, (long)problem["min"]!, (long)problem["max"]!));
    }

    [Theory]
    [InlineData("If-Match", "\"1\"")]
    [InlineData("If-Match", "*")]
    [InlineData("If-None-Match", "*")]
    public async Task AnIncrementOnlyKeyCannotProbeVersionsOrExistence(string header, string value)
    {
        foreach (var name in new[] { "secret", "missing" })
        {
            var response = await _incrementOnly.SendAsync(HttpMethod.Post, $"/counters/{name}/increment", header: (header, value));
            var problem = await response.ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");
            AssertTellsNothing(problem);
        }
        Assert.Equal(1234, (await _admin.GetCounterAsync("secret")).Value);
        Assert.Equal(HttpStatusCode.NotFound, (await _admin.GetAsync("/counters/missing")).StatusCode);
    }

    [Fact]
    public async Task InsideABatchTooTheStateStaysHidden()
    {
        var results = await (await _incrementOnly.PostBatchAsync(false, """{"op": "increment", "name": "secret", "by": 9223372036854775807}"""))
            .ReadResultsAsync(1);
        var error = results[0]!["error"]!.AsObject();
        Assert.Equal(ErrorCodes.OutOfRange, (string?)error["code"]);
        Assert.False(error.ContainsKey("value") || error.ContainsKey("min") || error.ContainsKey("max"), error.ToJsonString());
        AssertTellsNothing(error);

        var aborted = await (await _incrementOnly.PostBatchAsync(true, """{"op": "increment", "name": "secret", "by": 9223372036854775807}""")).Content.ReadAsStringAsync();
        Assert.DoesNotContain("1234", aborted, StringComparison.Ordinal);
        Assert.DoesNotContain("5000", aborted, StringComparison.Ordinal);

        var conditional = await _incrementOnly.PostBatchAsync(false, """{"op": "increment", "name": "secret", "ifMatch": 1}""");
        await conditional.ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");
    }

    [Fact]
    public async Task AVersionMismatchTellsAReaderTheCurrentVersionAndNobodyElse()
    {
        var problem = await (await _writer.SendAsync(HttpMethod.Post, "/counters/secret/increment", header: ("If-Match", "\"7\"")))
            .ReadProblemAsync(HttpStatusCode.PreconditionFailed, ErrorCodes.VersionMismatch);
        Assert.Equal(1, (long)problem["version"]!);
        AssertTellsNothing(problem);
    }

    /// <summary>The text carries no number of the counter's state (value 1234, bounds 1000 and 5000, version 1).</summary>
    private static void AssertTellsNothing(JsonObject problem)
    {
        var detail = (string?)problem["detail"] ?? string.Empty;
        foreach (var number in new[] { "1234", "1000", "5000", "version 1" })
        {
            Assert.DoesNotContain(number, detail, StringComparison.Ordinal);
        }
    }
}
