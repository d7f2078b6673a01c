using System.Net;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Health;

public class HealthTests
{
    [Theory]
    [InlineData("sqlite", "/healthz")]
    [InlineData("sqlite", "/readyz")]
    [InlineData("memory", "/healthz")]
    [InlineData("memory", "/readyz")]
    public async Task HealthEndpointsAnswer200(string store, string path)
    {
        await using var app = new TallyApplication(store);
        var response = await app.CreateClient().GetAsync(path);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Theory]
    [InlineData("POST", "/healthz")]
    [InlineData("PUT", "/healthz")]
    [InlineData("DELETE", "/readyz")]
    [InlineData("POST", "/readyz")]
    [InlineData("PATCH", "/readyz")]
    public async Task HealthEndpointsAnswerOnlyGetAndHeadAndRefuseOtherMethodsWithAllow(string method, string path)
    {
        await using var app = new TallyApplication("memory");
        var client = app.CreateClient();

        var response = await client.SendAsync(new HttpRequestMessage(new HttpMethod(method), path));

        await response.ReadProblemAsync(HttpStatusCode.MethodNotAllowed, "method_not_allowed");
        Assert.Equal(["GET", "HEAD"], response.Content.Headers.Allow.Order(StringComparer.Ordinal));
        Assert.Equal(HttpStatusCode.OK, (await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, path))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync(path)).StatusCode);
    }
}
