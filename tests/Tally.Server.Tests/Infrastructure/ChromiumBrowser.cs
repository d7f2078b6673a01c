using Microsoft.Playwright;

namespace Tally.Server.Tests.Infrastructure;

/// <summary>
/// Debian's Chromium (<c>/usr/bin/chromium</c>, package <c>chromium</c>) driven by Playwright, whose driver comes with
/// the NuGet package (nothing is downloaded). One browser per test class (<c>IClassFixture&lt;ChromiumBrowser&gt;</c>);
/// each test takes a fresh context with <see cref="NewPageAsync"/>. Browser-layer tests only (<c>[Trait("Layer", "Browser")]</c>).
/// </summary>
public sealed class ChromiumBrowser : IAsyncLifetime
{
    public const string ExecutablePath = "/usr/bin/chromium";

    private IPlaywright? _playwright;
    private IBrowser? _browser;

    public IBrowser Browser => _browser ?? throw new InvalidOperationException("The browser has not started.");

    public async Task InitializeAsync()
    {
        if (Environment.GetEnvironmentVariable("TALLYTESTS_LAYER") is "fast" or "process")
        {
            throw new InvalidOperationException("This test drives a browser but runs in another layer: give it [Trait(\"Layer\", \"Browser\")].");
        }
        if (!File.Exists(ExecutablePath))
        {
            throw new FileNotFoundException($"Browser tests need Debian's Chromium at {ExecutablePath}: install the package 'chromium' (test.sh does).");
        }
        _playwright = await Playwright.CreateAsync();
        // Expect(...) waits 5 s by default: too short for a page on a loaded 2-core test machine. A wait, not a timing claim.
        Assertions.SetDefaultExpectTimeout(15_000);
        // Headless, no GPU; Playwright adds --no-sandbox itself (the tests may run as root).
        _browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ExecutablePath,
            Headless = true,
            Args = ["--disable-gpu", "--disable-dev-shm-usage"],
            Timeout = 30_000,
        });
    }

    /// <summary>A page in a context of its own (no cookies or cache shared with other tests).</summary>
    public Task<IPage> NewPageAsync() => NewPageAsync(null);

    /// <summary>A page in a context of its own, sized <paramref name="width"/> × <paramref name="height"/>.</summary>
    public async Task<IPage> NewPageAsync(Uri? baseAddress, int width = 1280, int height = 800)
    {
        var context = await Browser.NewContextAsync(new BrowserNewContextOptions
        {
            BaseURL = baseAddress?.ToString(),
            ViewportSize = new ViewportSize { Width = width, Height = height },
        });
        var page = await context.NewPageAsync();
        page.SetDefaultTimeout(15_000);
        return page;
    }

    public async Task DisposeAsync()
    {
        if (_browser is not null)
        {
            await _browser.DisposeAsync();
        }
        _playwright?.Dispose();
    }
}
