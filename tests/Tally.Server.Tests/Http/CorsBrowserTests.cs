using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Tally.Server.Tests.Auth;
using Tally.Server.Tests.Infrastructure;
using Tally.Server.Tests.Process;

namespace Tally.Server.Tests.Http;

/// <summary>
/// The hit counter in a real browser: Tally as a process with Cors:AllowedOrigins naming one site; a page on that
/// site increments with an increment key, and the same page on another origin is stopped by the browser.
/// </summary>
[Trait("Layer", "Browser")]
public class CorsBrowserTests(ChromiumBrowser chromium) : IClassFixture<ChromiumBrowser>
{
    /// <summary>A page whose script increments <c>hits</c> and writes the outcome into <c>#result</c>.</summary>
    private static string HitCounterPage(string tallyUrl, string key) => $$"""
        <!doctype html>
        <html><head><meta charset="utf-8"><title>A blog post</title></head>
        <body>
        <p>Views: <span id="result">pending</span></p>
        <script>
          const tally = {{JsonSerializer.Serialize(tallyUrl)}};
          fetch(tally + '/counters/hits/increment', { method: 'POST', headers: { Authorization: 'Bearer ' + {{JsonSerializer.Serialize(key)}} } })
            .then(async response => {
              const body = await response.json();
              document.getElementById('result').textContent = response.status + ' ' + body.value + ' ' + response.headers.get('ETag');
            })
            .catch(error => { document.getElementById('result').textContent = 'blocked: ' + error.name; });
        </script>
        </body></html>
        """;

    [Fact]
    public async Task APageOnAnAllowedOriginCountsAHitAndAnotherOriginIsBlocked()
    {
        string? tallyUrl = null, key = null;
        void Page(WebApplication site) => site.MapGet("/", () => Results.Content(HitCounterPage(tallyUrl!, key!), "text/html"));
        await using var blog = await LocalSite.StartAsync(Page);
        await using var elsewhere = await LocalSite.StartAsync(Page);
        using var dataDir = new TempDirectory();
        await using var tally = TallyProcess.Start(dataDir.Path, "--Cors:AllowedOrigins:0", blog.Origin);
        await tally.WaitUntilReadyAsync();
        using var admin = tally.CreateClient();
        tallyUrl = tally.BaseAddress.ToString().TrimEnd('/');
        key = (await admin.CreateKeyAsync("hit-counter", ["increment"], prefix: "hits")).Key;

        var allowed = await chromium.NewPageAsync();
        await allowed.GotoAsync(blog.Origin + "/");
        var shown = await ResultAsync(allowed);

        Assert.Equal("200 1 \"1\"", shown);
        Assert.Equal(1, (await admin.GetCounterAsync("hits")).Value);

        var other = await chromium.NewPageAsync();
        await other.GotoAsync(elsewhere.Origin + "/");
        var refused = await ResultAsync(other);

        Assert.Equal("blocked: TypeError", refused);
        // The preflight failed, so the browser never sent the increment.
        Assert.Equal(1, (await admin.GetCounterAsync("hits")).Value);
        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync("/healthz")).StatusCode);
    }

    private static async Task<string> ResultAsync(Microsoft.Playwright.IPage page)
    {
        await page.WaitForFunctionAsync("document.getElementById('result').textContent !== 'pending'");
        return await page.Locator("#result").TextContentAsync() ?? string.Empty;
    }
}
