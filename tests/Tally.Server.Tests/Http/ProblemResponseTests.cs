using System.Net;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Http;

/// <summary>Errors the framework raises by itself are problem+json with a code too.</summary>
public class ProblemResponseTests
{
    [Theory]
    [InlineData("GET", "/nothing-here")]
    [InlineData("GET", "/counters/a/b/c")]
    [InlineData("POST", "/counters/a/frobnicate")]
    [InlineData("GET", "/counter/a")]
    public async Task UnknownRouteIsNotFound(string method, string path)
    {
        await using var app = new TallyApplication();
        var response = await app.CreateClient().SendAsync(new HttpMethod(method), path);
        await response.ReadProblemAsync(HttpStatusCode.NotFound, "not_found");
    }

    [Theory]
    [InlineData("PATCH", "/counters/a")]
    [InlineData("POST", "/counters/a")]
    [InlineData("GET", "/counters/a/increment")]
    [InlineData("PUT", "/counters/a/reset")]
    [InlineData("DELETE", "/counters")]
    public async Task WrongMethodIsMethodNotAllowedWithAllow(string method, string path)
    {
        await using var app = new TallyApplication();
        var response = await app.CreateClient().SendAsync(new HttpMethod(method), path);
        await response.ReadProblemAsync(HttpStatusCode.MethodNotAllowed, "method_not_allowed");
        Assert.NotEmpty(response.Content.Headers.Allow);
        Assert.DoesNotContain(method, response.Content.Headers.Allow);
    }

    [Fact]
    public async Task ErrorsAreProblemJsonEvenWhenTheClientAsksForJson()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        client.DefaultRequestHeaders.Accept.ParseAdd("application/json");
        await (await client.GetAsync("/counters/nothing")).ReadProblemAsync(HttpStatusCode.NotFound, "counter_not_found");
        await (await client.GetAsync("/nothing-here")).ReadProblemAsync(HttpStatusCode.NotFound, "not_found");
    }
}
