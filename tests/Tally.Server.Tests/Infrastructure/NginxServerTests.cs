using System.Net;
using Tally.Server.Tests.Process;

namespace Tally.Server.Tests.Infrastructure;

/// <summary>The private nginx that multi-instance tests put in front of several Tally processes.</summary>
public class NginxServerTests
{
    [Fact]
    [Trait("Layer", "Process")]
    public async Task NginxSpreadsRequestsRoundRobinOverTwoTallyProcesses()
    {
        using var dataA = new TempDirectory();
        using var dataB = new TempDirectory();
        await using var a = TallyProcess.Start(dataA.Path, "--Store", "memory");
        await using var b = TallyProcess.Start(dataB.Path, "--Store", "memory");
        await Task.WhenAll(a.WaitUntilReadyAsync(), b.WaitUntilReadyAsync());
        await using var nginx = await NginxServer.StartAsync([a.BaseAddress, b.BaseAddress]);
        using var client = nginx.CreateClient();

        for (var i = 0; i < 6; i++)
        {
            using var response = await client.GetAsync("/healthz");
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"GET /healthz through nginx: {(int)response.StatusCode}\n{nginx.Describe()}");
        }

        var served = await Eventually(() => nginx.UpstreamsServed(), list => list.Count == 6);
        var backends = new[] { $"127.0.0.1:{a.BaseAddress.Port}", $"127.0.0.1:{b.BaseAddress.Port}" };
        Assert.True(served.All(backends.Contains), $"Served by {string.Join(", ", served)}; expected only {string.Join(", ", backends)}");
        Assert.True(served.Count(backends[0].Equals) == 3 && served.Count(backends[1].Equals) == 3,
            $"Round robin gives each backend three of six requests: {string.Join(", ", served)}\n{nginx.Describe()}");
    }

    [Fact]
    [Trait("Layer", "Process")]
    public async Task NginxPassesAGetToTheOtherInstanceWhenOneIsDown()
    {
        using var dataA = new TempDirectory();
        using var dataB = new TempDirectory();
        await using var a = TallyProcess.Start(dataA.Path, "--Store", "memory");
        await using var b = TallyProcess.Start(dataB.Path, "--Store", "memory");
        await Task.WhenAll(a.WaitUntilReadyAsync(), b.WaitUntilReadyAsync());
        await using var nginx = await NginxServer.StartAsync([a.BaseAddress, b.BaseAddress]);
        using var client = nginx.CreateClient();

        a.Kill();
        await a.WaitForExitAsync();
        for (var i = 0; i < 4; i++)
        {
            using var response = await client.GetAsync("/healthz");
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"GET /healthz with one instance down: {(int)response.StatusCode}\n{nginx.Describe()}");
        }
    }

    [Fact]
    public void TheConfigurationIsTheDeployedProxyOnLoopbackWithoutTls()
    {
        var config = NginxServer.Configuration("/tmp/nginx-test", 18080,
            [new Uri("http://127.0.0.1:5001"), new Uri("http://127.0.0.1:5002")],
            File.ReadAllText(Deploy.DeployFiles.PathOf(NginxServer.DeployConfig)));

        Assert.Contains("listen 127.0.0.1:18080;", config, StringComparison.Ordinal);
        Assert.Contains("server 127.0.0.1:5001;", config, StringComparison.Ordinal);
        Assert.Contains("server 127.0.0.1:5002;", config, StringComparison.Ordinal);
        Assert.DoesNotContain("tally:8080", config, StringComparison.Ordinal);
        Assert.DoesNotContain("ssl", config, StringComparison.Ordinal);
        Assert.DoesNotContain("listen 80", config, StringComparison.Ordinal);
        // The deployment's choices, kept: upstream keep-alive, and retries only where nginx may retry.
        Assert.Contains("keepalive 64;", config, StringComparison.Ordinal);
        Assert.Contains("proxy_set_header Connection \"\";", config, StringComparison.Ordinal);
        Assert.Contains("proxy_next_upstream error timeout;", config, StringComparison.Ordinal);
        Assert.DoesNotContain("non_idempotent", config, StringComparison.Ordinal);
    }

    private static async Task<T> Eventually<T>(Func<T> read, Func<T, bool> done)
    {
        var value = read();
        for (var i = 0; i < 100 && !done(value); i++)
        {
            await Task.Delay(20);
            value = read();
        }
        return value;
    }
}
