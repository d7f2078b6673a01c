using System.Net;
using System.Text.RegularExpressions;
using Tally.Server.Tests.Auth;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Dashboard;

/// <summary>The dashboard's files: open without a key, self-contained (no other host), under a strict Content-Security-Policy.</summary>
public partial class DashboardFilesTests
{
    [Theory]
    [InlineData("/", "text/html")]
    [InlineData("/index.html", "text/html")]
    [InlineData("/app.js", "text/javascript")]
    [InlineData("/app.css", "text/css")]
    [InlineData("/lib/uPlot.esm.js", "text/javascript")] // copied from npm's package by the build
    [InlineData("/lib/uPlot.min.css", "text/css")]
    public async Task TheFilesAreServedWithoutAKeyUnderTheContentSecurityPolicy(string path, string mediaType)
    {
        await using var app = new TallyApplication("memory");
        var response = await app.CreateClientWithKey(null).GetAsync(path);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(mediaType, response.Content.Headers.ContentType?.MediaType);
        var policy = string.Join(";", response.Headers.GetValues("Content-Security-Policy"));
        Assert.Contains("default-src 'self'", policy, StringComparison.Ordinal);
        Assert.Contains("script-src 'self'", policy, StringComparison.Ordinal);
        Assert.Contains("frame-ancestors 'none'", policy, StringComparison.Ordinal);
        Assert.DoesNotContain("unsafe", policy, StringComparison.Ordinal);
        Assert.Equal("nosniff", string.Join(",", response.Headers.GetValues("X-Content-Type-Options")));
    }

    [Fact]
    public async Task ThePageLoadsNothingFromAnotherHostAndHasNoInlineScript()
    {
        await using var app = new TallyApplication("memory");
        var html = await app.CreateClientWithKey(null).GetStringAsync("/");
        foreach (Match reference in ReferencePattern().Matches(html))
        {
            var target = reference.Groups["target"].Value;
            Assert.True(target.StartsWith('#') || target == "data:," || !target.Contains(':', StringComparison.Ordinal),
                $"The page refers to another origin: {target}");
        }
        Assert.DoesNotMatch(InlineScriptPattern(), html);
        Assert.DoesNotContain(" style=", html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheApiStillNeedsAKeyAndAMissingFileIsNotServed()
    {
        await using var app = new TallyApplication("memory");
        var anonymous = app.CreateClientWithKey(null);
        await (await anonymous.GetAsync("/counters")).ReadProblemAsync(HttpStatusCode.Unauthorized, "unauthorized");
        var missing = await anonymous.GetAsync("/no-such-file.js");
        Assert.NotEqual(HttpStatusCode.OK, missing.StatusCode);
    }

    [GeneratedRegex("(?:src|href)=\"(?<target>[^\"]*)\"")]
    private static partial Regex ReferencePattern();

    [GeneratedRegex("""<script(?![^>]*\bsrc=)[^>]*>""")]
    private static partial Regex InlineScriptPattern();
}
