using Microsoft.Playwright;

namespace Tally.Server.Tests.Infrastructure;

/// <summary>
/// Debian's Chromium (<c>/usr/bin/chromium</c>, package <c>chromium</c>, installed by test.sh), driven by Playwright's
/// bundled driver: Playwright cannot download its own browsers here. Headless; one browser for a test class
/// (<c>IClassFixture&lt;ChromiumBrowser&gt;</c>), a fresh context (no shared storage) for each page.
/// </summary>
public sealed class ChromiumBrowser : IAsyncLifetime
{
    public const string ExecutablePath = "/usr/bin/chromium";

    private IPlaywright? _playwright;
    private IBrowser? _browser;

    public IBrowser Browser => _browser ?? throw new InvalidOperationException("The browser has not started.");

    public async Task InitializeAsync()
    {
        // test.sh names the layer it runs; the fast one must not start processes (see tests/README.md).
        if (Environment.GetEnvironmentVariable("TALLYTESTS_LAYER") is "fast")
        {
            throw new InvalidOperationException("This test starts Chromium but runs in the fast layer: give it [Trait(\"Layer\", \"Browser\")].");
        }
        if (!File.Exists(ExecutablePath))
        {
            throw new FileNotFoundException($"Chromium is not installed at {ExecutablePath}: install the Debian package chromium (./test.sh does, as root).");
        }
        _playwright = await Playwright.CreateAsync();
        _browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ExecutablePath,
            Headless = true,
            // No GPU on a test machine; /dev/shm may be small in a container.
            Args = ["--disable-gpu", "--disable-dev-shm-usage"],
        });
    }

    /// <summary>A page in a context of its own, sized <paramref name="width"/> × <paramref name="height"/>.</summary>
    public async Task<IPage> NewPageAsync(Uri baseAddress, int width = 1280, int height = 800)
    {
        var context = await Browser.NewContextAsync(new BrowserNewContextOptions
        {
            BaseURL = baseAddress.ToString(),
            ViewportSize = new ViewportSize { Width = width, Height = height },
        });
        return await context.NewPageAsync();
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
