using System.Net;
using System.Text.Json.Nodes;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Counters;

/// <summary>The counter endpoints of API.md over HTTP, each test on its own Tally and data directory.</summary>
public class CounterApiTests
{
    [Fact]
    public async Task GetMissingCounterIsCounterNotFound()
    {
        await using var app = new TallyApplication();
        var response = await app.CreateClient().GetAsync("/counters/nothing");
        await response.ReadProblemAsync(HttpStatusCode.NotFound, "counter_not_found");
    }

    [Fact]
    public async Task PutCreatesTheCounterWith201LocationAndETag()
    {
        await using var app = new TallyApplication();
        var before = DateTime.UtcNow.AddSeconds(-1);
        var response = await app.CreateClient().PutAsync("a", "{}");

        var counter = await response.ReadCounterAsync(HttpStatusCode.Created);
        Assert.Equal("/counters/a", response.Headers.Location?.OriginalString);
        Assert.Equal(("a", 0L, 0L, (long?)null, (long?)null, 1L), (counter.Name, counter.Value, counter.Initial, counter.Min, counter.Max, counter.Version));
        Assert.Equal(counter.CreatedAt, counter.UpdatedAt);
        Assert.InRange(counter.CreatedAt, before, DateTime.UtcNow.AddSeconds(1));
    }

    [Fact]
    public async Task PutWithoutABodyCreatesAtZero()
    {
        await using var app = new TallyApplication();
        var response = await app.CreateClient().PutAsync("/counters/a", null);
        var counter = await response.ReadCounterAsync(HttpStatusCode.Created);
        Assert.Equal((0L, 1L), (counter.Value, counter.Version));
    }

    [Fact]
    public async Task GetAnswersEveryMemberWithUtcTimestampsAndETag()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        await client.SetUpCounterAsync("downloads:v2", """{"value": 42, "max": 1000}""");

        var response = await client.GetAsync("/counters/downloads:v2");
        var counter = await response.ReadCounterAsync();
        Assert.Equal(new CounterJson("downloads:v2", 42, 0, null, 1000, 1, counter.CreatedAt, counter.UpdatedAt), counter);
        var json = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.EndsWith("Z", (string)json["createdAt"]!, StringComparison.Ordinal);
        Assert.EndsWith("Z", (string)json["updatedAt"]!, StringComparison.Ordinal);
        Assert.Null(json["min"]);
    }

    [Fact]
    public async Task PutCreateWithoutValueStartsAtInitial()
    {
        await using var app = new TallyApplication();
        var counter = await app.CreateClient().SetUpCounterAsync("a", """{"initial": 5, "min": 0, "max": 10}""");
        Assert.Equal((5L, 5L, (long?)0L, (long?)10L), (counter.Value, counter.Initial, counter.Min, counter.Max));
    }

    [Fact]
    public async Task PutOnAnExistingCounterAnswers200AndKeepsOmittedFields()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        var created = await client.SetUpCounterAsync("a", """{"value": 5, "initial": 2, "min": 0, "max": 10}""");

        var response = await client.PutAsync("a", """{"value": 7}""");

        var updated = await response.ReadCounterAsync(HttpStatusCode.OK);
        Assert.Equal(created with { Value = 7, Version = 2, UpdatedAt = updated.UpdatedAt }, updated);
        Assert.True(updated.UpdatedAt >= created.UpdatedAt);
    }

    [Fact]
    public async Task PutMaxNullRemovesTheUpperBound()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        await client.SetUpCounterAsync("a", """{"value": 10, "min": 0, "max": 10}""");

        var updated = await (await client.PutAsync("a", """{"max": null}""")).ReadCounterAsync();
        Assert.Equal(((long?)0L, (long?)null), (updated.Min, updated.Max));

        var incremented = await (await client.IncrementAsync("a")).ReadCounterAsync();
        Assert.Equal(11, incremented.Value);
    }

    [Fact]
    public async Task PutValueZeroIsThePlainReset()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        await client.SetUpCounterAsync("a", """{"value": 41, "initial": 3}""");
        var reset = await (await client.PutAsync("a", """{"value": 0}""")).ReadCounterAsync();
        Assert.Equal((0L, 3L, 2L), (reset.Value, reset.Initial, reset.Version));
    }

    [Theory]
    [InlineData("""{"min": 5, "max": 4}""")]
    [InlineData("""{"min": 9223372036854775807, "max": -9223372036854775808}""")]
    public async Task PutMinAboveMaxIsInvalidBounds(string body)
    {
        await using var app = new TallyApplication();
        var response = await app.CreateClient().PutAsync("a", body);
        await response.ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_bounds");
    }

    [Theory]
    [InlineData("""{"value": 11, "max": 10}""")]
    [InlineData("""{"value": -1, "min": 0}""")]
    [InlineData("""{"initial": 20, "value": 5, "max": 10}""")]
    public async Task PutValueOutsideTheBoundsIsInvalidValue(string body)
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        var response = await client.PutAsync("a", body);
        await response.ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_value");
        await (await client.GetAsync("/counters/a")).ReadProblemAsync(HttpStatusCode.NotFound, "counter_not_found");
    }

    [Fact]
    public async Task PutBoundsThatExcludeTheCurrentValueIsInvalidValueAndChangesNothing()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        var created = await client.SetUpCounterAsync("a", """{"value": 50}""");
        await (await client.PutAsync("a", """{"max": 10}""")).ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_value");
        Assert.Equal(created, await client.GetCounterAsync("a"));
    }

    [Theory]
    [InlineData("""{"value": 1.5}""", "invalid_value")]
    [InlineData("""{"value": "5"}""", "invalid_value")]
    [InlineData("""{"value": null}""", "invalid_value")]
    [InlineData("""{"initial": 9223372036854775808}""", "invalid_value")]
    [InlineData("""{"max": "10"}""", "invalid_bounds")]
    [InlineData("""{"min": [1]}""", "invalid_bounds")]
    [InlineData("""{"min": -9223372036854775809}""", "invalid_bounds")]
    [InlineData("""{"colour": "red"}""", "invalid_body")]
    [InlineData("""[1, 2]""", "invalid_body")]
    [InlineData("""null""", "invalid_body")]
    [InlineData("""{"value": 1""", "invalid_json")]
    [InlineData("""{value: 1}""", "invalid_json")]
    [InlineData("""{"value": 1} {}""", "invalid_json")]
    public async Task PutWithABadBodyIsRefusedAndCreatesNothing(string body, string code)
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        await (await client.PutAsync("a", body)).ReadProblemAsync(HttpStatusCode.BadRequest, code);
        await (await client.GetAsync("/counters/a")).ReadProblemAsync(HttpStatusCode.NotFound, "counter_not_found");
    }

    [Fact]
    public async Task PutIfNoneMatchStarCreatesOnlyOnce()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();

        var first = await client.SendAsync(HttpMethod.Put, "/counters/a", """{"value": 1}""", ("If-None-Match", "*"));
        await first.ReadCounterAsync(HttpStatusCode.Created);
        var second = await client.SendAsync(HttpMethod.Put, "/counters/a", """{"value": 2}""", ("If-None-Match", "*"));
        await second.ReadProblemAsync(HttpStatusCode.PreconditionFailed, "counter_exists");

        var counter = await client.GetCounterAsync("a");
        Assert.Equal((1L, 1L), (counter.Value, counter.Version));
    }

    [Fact]
    public async Task PutIfMatchAtTheCurrentVersionApplies()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        await client.SetUpCounterAsync("a", """{"value": 1}""");
        var response = await client.SendAsync(HttpMethod.Put, "/counters/a", """{"value": 9}""", ("If-Match", "\"1\""));
        Assert.Equal((9L, 2L), await ValueAndVersionAsync(response));
    }

    [Fact]
    public async Task IncrementMissingCounterCreatesItAtOne()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        var counter = await (await client.IncrementAsync("a")).ReadCounterAsync(HttpStatusCode.OK);
        Assert.Equal(new CounterJson("a", 1, 0, null, null, 1, counter.CreatedAt, counter.CreatedAt), counter);
        Assert.Equal(counter, await client.GetCounterAsync("a"));
    }

    [Fact]
    public async Task DecrementMissingCounterCreatesItBelowZero()
    {
        await using var app = new TallyApplication();
        var counter = await (await app.CreateClient().DecrementAsync("a", """{"by": 3}""")).ReadCounterAsync();
        Assert.Equal((-3L, 1L, (long?)null, (long?)null), (counter.Value, counter.Version, counter.Min, counter.Max));
    }

    [Fact]
    public async Task IncrementAndDecrementTakeTheAmountFromQueryOrBody()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        Assert.Equal((5L, 1L), await ValueAndVersionAsync(await client.PostAsync("/counters/a/increment?by=5", null)));
        Assert.Equal((12L, 2L), await ValueAndVersionAsync(await client.IncrementAsync("a", """{"by": 7}""")));
        Assert.Equal((10L, 3L), await ValueAndVersionAsync(await client.PostAsync("/counters/a/decrement?by=2", null)));
        Assert.Equal((6L, 4L), await ValueAndVersionAsync(await client.DecrementAsync("a", """{"by": 4}""")));
        Assert.Equal((5L, 5L), await ValueAndVersionAsync(await client.DecrementAsync("a")));
    }

    [Theory]
    [InlineData("")]
    [InlineData("{}")]
    public async Task IncrementWithAnEmptyBodyOrNoAmountAddsOne(string body)
    {
        await using var app = new TallyApplication();
        var response = await app.CreateClient().IncrementAsync("a", body);
        Assert.Equal((1L, 1L), await ValueAndVersionAsync(response));
    }

    [Fact]
    public async Task IncrementByTheLargestAmountKeepsEvery64Bits()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        var response = await client.IncrementAsync("a", """{"by": 9223372036854775807}""");
        Assert.Equal((long.MaxValue, 1L), await ValueAndVersionAsync(response));
        Assert.Contains("\"value\":9223372036854775807", await (await client.GetAsync("/counters/a")).Content.ReadAsStringAsync(), StringComparison.Ordinal);

        var down = await client.PostAsync("/counters/b/decrement?by=9223372036854775807", null);
        Assert.Equal((-long.MaxValue, 1L), await ValueAndVersionAsync(down));
        Assert.Equal((long.MinValue, 2L), await ValueAndVersionAsync(await client.DecrementAsync("b")));
    }

    [Fact]
    public async Task IncrementAtMaxIsOutOfRangeCarryingValueMinAndMax()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        var before = await client.SetUpCounterAsync("a", """{"value": 10, "min": -5, "max": 10}""");

        var problem = await (await client.IncrementAsync("a")).ReadProblemAsync(HttpStatusCode.Conflict, "out_of_range");

        Assert.Equal((10L, -5L, 10L), ((long)problem["value"]!, (long)problem["min"]!, (long)problem["max"]!));
        Assert.Equal(before, await client.GetCounterAsync("a"));
    }

    [Fact]
    public async Task DecrementAtMinIsOutOfRangeCarryingNullForAMissingBound()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        var before = await client.SetUpCounterAsync("a", """{"value": 0, "min": 0}""");

        var problem = await (await client.DecrementAsync("a")).ReadProblemAsync(HttpStatusCode.Conflict, "out_of_range");

        Assert.Equal(0, (long)problem["value"]!);
        Assert.Equal(0, (long)problem["min"]!);
        Assert.True(problem.ContainsKey("max") && problem["max"] is null, problem.ToJsonString());
        Assert.Equal(before, await client.GetCounterAsync("a"));
    }

    [Fact]
    public async Task IncrementByMoreThanTheRoomLeftFailsWhole()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        var before = await client.SetUpCounterAsync("a", """{"value": 7, "max": 10}""");
        var problem = await (await client.IncrementAsync("a", """{"by": 5}""")).ReadProblemAsync(HttpStatusCode.Conflict, "out_of_range");
        Assert.Equal(7, (long)problem["value"]!);
        Assert.Equal(before, await client.GetCounterAsync("a"));
    }

    [Theory]
    [InlineData("increment", 9223372036854775807, "1")]
    [InlineData("increment", 9223372036854775805, "3")]
    [InlineData("increment", 1, "9223372036854775807")]
    [InlineData("decrement", -9223372036854775808, "1")]
    [InlineData("decrement", -2, "9223372036854775807")]
    public async Task ArithmeticNeverWrapsAround(string operation, long value, string by)
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        var before = await client.SetUpCounterAsync("a", $$"""{"value": {{value}}}""");

        var problem = await (await client.PostAsync($"/counters/a/{operation}?by={by}", null)).ReadProblemAsync(HttpStatusCode.Conflict, "out_of_range");

        Assert.Equal(value, (long)problem["value"]!);
        Assert.True(problem["min"] is null && problem["max"] is null, problem.ToJsonString());
        Assert.Equal(before, await client.GetCounterAsync("a"));
    }

    [Fact]
    public async Task VersionGrowsByOneWithEveryChangeAndNotWithFailures()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        Assert.Equal(1, (await client.SetUpCounterAsync("a", """{"value": 1, "max": 3}""")).Version);
        Assert.Equal((2L, 2L), await ValueAndVersionAsync(await client.IncrementAsync("a")));
        Assert.Equal((3L, 3L), await ValueAndVersionAsync(await client.IncrementAsync("a")));
        await (await client.IncrementAsync("a")).ReadProblemAsync(HttpStatusCode.Conflict, "out_of_range");
        await (await client.PutAsync("a", """{"min": 5}""")).ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_bounds");
        Assert.Equal((2L, 4L), await ValueAndVersionAsync(await client.DecrementAsync("a")));
        Assert.Equal((0L, 5L), await ValueAndVersionAsync(await client.PostAsync("/counters/a/reset", null)));
        Assert.Equal((0L, 6L), await ValueAndVersionAsync(await client.PutAsync("a", """{"max": null}""")));
        Assert.Equal((0L, 6L), await ValueAndVersionAsync(await client.GetAsync("/counters/a")));
    }

    [Fact]
    public async Task ResetReturnsToInitial()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        var created = await client.SetUpCounterAsync("a", """{"value": 8, "initial": -3, "min": -10, "max": 10}""");
        var reset = await (await client.PostAsync("/counters/a/reset", null)).ReadCounterAsync();
        Assert.Equal(created with { Value = -3, Version = 2, UpdatedAt = reset.UpdatedAt }, reset);
    }

    [Fact]
    public async Task ResetMissingCounterIsCounterNotFound()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        await (await client.PostAsync("/counters/a/reset", null)).ReadProblemAsync(HttpStatusCode.NotFound, "counter_not_found");
        await (await client.GetAsync("/counters/a")).ReadProblemAsync(HttpStatusCode.NotFound, "counter_not_found");
    }

    [Fact]
    public async Task DeleteAnswers204AndTheCounterIsGone()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        await client.SetUpCounterAsync("a", """{"value": 8, "max": 10}""");

        var response = await client.DeleteAsync("/counters/a");
        Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
        Assert.Empty(await response.Content.ReadAsByteArrayAsync());

        await (await client.GetAsync("/counters/a")).ReadProblemAsync(HttpStatusCode.NotFound, "counter_not_found");
        await (await client.DeleteAsync("/counters/a")).ReadProblemAsync(HttpStatusCode.NotFound, "counter_not_found");
    }

    [Fact]
    public async Task CounterMadeAgainAfterDeleteStartsFresh()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        await client.SetUpCounterAsync("a", """{"value": 8, "initial": 2, "max": 10}""");
        await client.IncrementAsync("a");
        await client.DeleteAsync("/counters/a");

        var again = await (await client.IncrementAsync("a")).ReadCounterAsync();
        Assert.Equal((1L, 0L, (long?)null, 1L), (again.Value, again.Initial, again.Max, again.Version));
    }

    [Fact]
    public async Task DeleteMissingCounterIsCounterNotFound()
    {
        await using var app = new TallyApplication();
        await (await app.CreateClient().DeleteAsync("/counters/nothing")).ReadProblemAsync(HttpStatusCode.NotFound, "counter_not_found");
    }

    [Theory]
    [InlineData("PUT", "/counters/a", """{"value": 5}""")]
    [InlineData("POST", "/counters/a/increment", null)]
    [InlineData("POST", "/counters/a/decrement", null)]
    [InlineData("POST", "/counters/a/reset", null)]
    [InlineData("DELETE", "/counters/a", null)]
    public async Task IfMatchAtAnOldVersionIsVersionMismatchAndChangesNothing(string method, string path, string? body)
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        await client.SetUpCounterAsync("a", """{"value": 1}""");
        var current = await (await client.IncrementAsync("a")).ReadCounterAsync();

        var response = await client.SendAsync(new HttpMethod(method), path, body, ("If-Match", "\"1\""));

        await response.ReadProblemAsync(HttpStatusCode.PreconditionFailed, "version_mismatch");
        Assert.Equal(current, await client.GetCounterAsync("a"));
    }

    [Theory]
    [InlineData("PUT", "/counters/{name}", """{"value": 5}""", HttpStatusCode.OK)]
    [InlineData("POST", "/counters/{name}/increment", null, HttpStatusCode.OK)]
    [InlineData("POST", "/counters/{name}/decrement", null, HttpStatusCode.OK)]
    [InlineData("POST", "/counters/{name}/reset", null, HttpStatusCode.OK)]
    [InlineData("DELETE", "/counters/{name}", null, HttpStatusCode.NoContent)]
    public async Task IfMatchAtTheCurrentVersionApplies(string method, string path, string? body, HttpStatusCode expected)
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        // A strong tag, a weak tag, and a list holding the current version all match.
        foreach (var (name, etag) in new[] { ("a1", "\"2\""), ("a2", "W/\"2\""), ("a3", "\"7\", \"2\"") })
        {
            await client.SetUpCounterAsync(name, """{"value": 1}""");
            await client.IncrementAsync(name);

            var response = await client.SendAsync(new HttpMethod(method), path.Replace("{name}", name, StringComparison.Ordinal), body, ("If-Match", etag));

            Assert.Equal(expected, response.StatusCode);
            if (expected == HttpStatusCode.OK)
            {
                Assert.Equal(3, (await response.ReadCounterAsync()).Version);
            }
        }
    }

    [Fact]
    public async Task IfMatchOnAMissingCounterIsVersionMismatchAndCreatesNothing()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        foreach (var etag in new[] { "*", "\"0\"", "\"1\"" })
        {
            var response = await client.SendAsync(HttpMethod.Post, "/counters/a/increment", null, ("If-Match", etag));
            await response.ReadProblemAsync(HttpStatusCode.PreconditionFailed, "version_mismatch");
        }
        await (await client.GetAsync("/counters/a")).ReadProblemAsync(HttpStatusCode.NotFound, "counter_not_found");
    }

    [Theory]
    [InlineData("If-Match", "1")]
    [InlineData("If-Match", "\"one\"")]
    [InlineData("If-Match", "\"\"")]
    [InlineData("If-Match", "\"-1\"")]
    [InlineData("If-None-Match", "\"1\"")]
    public async Task MalformedPreconditionHeaderIsInvalidPrecondition(string header, string value)
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        await client.SetUpCounterAsync("a", "{}");
        var response = await client.SendAsync(HttpMethod.Post, "/counters/a/increment", null, (header, value));
        await response.ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_precondition");
        Assert.Equal(0, (await client.GetCounterAsync("a")).Value);
    }

    [Fact]
    public async Task NamesAreCaseSensitive()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        await client.IncrementAsync("Hits");
        await client.IncrementAsync("hits", """{"by": 5}""");
        Assert.Equal(1, (await client.GetCounterAsync("Hits")).Value);
        Assert.Equal(5, (await client.GetCounterAsync("hits")).Value);
        await (await client.GetAsync("/counters/HITS")).ReadProblemAsync(HttpStatusCode.NotFound, "counter_not_found");
    }

    [Theory]
    [InlineData("a.b_c:d-e")]
    [InlineData("0")]
    [InlineData("Z9")]
    [InlineData("downloads:v2")]
    public async Task EveryAllowedCharacterWorksInAName(string name)
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        Assert.Equal(name, (await (await client.IncrementAsync(name)).ReadCounterAsync()).Name);
        Assert.Equal(name, (await client.GetCounterAsync(name)).Name);
    }

    [Fact]
    public async Task WithAuthOffRequestsCarryingAnyBearerTokenStillWork()
    {
        // Auth=off is for local use: a client that sends some token anyway must not be refused.
        await using var app = new TallyApplication(settings: new Dictionary<string, string?> { ["Auth"] = "off" });
        var client = app.CreateClient();
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", "whatever");

        await (await client.PutAsync("a", """{"value": 1}""")).ReadCounterAsync(HttpStatusCode.Created);
        await (await client.IncrementAsync("a")).ReadCounterAsync();
        await (await client.DecrementAsync("a")).ReadCounterAsync();
        await (await client.PostAsync("/counters/a/reset", null)).ReadCounterAsync();
        Assert.Equal(0, (await client.GetCounterAsync("a")).Value);
        Assert.Single((await (await client.GetAsync("/counters")).ReadPageAsync()).Items);
        Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync("/counters/a")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/healthz")).StatusCode);
    }

    private static async Task<(long Value, long Version)> ValueAndVersionAsync(HttpResponseMessage response)
    {
        var counter = await response.ReadCounterAsync();
        return (counter.Value, counter.Version);
    }
}
