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
}
