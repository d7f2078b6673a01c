namespace Tally.Server.Dashboard;

/// <summary>
/// The dashboard at <c>/</c>: the static files in wwwroot/ (copied beside the binary by the build), open without a key;
/// the page asks for one and sends it to the API itself.
/// </summary>
internal static class DashboardExtensions
{
    /// <summary>
    /// Only this origin: no inline script or style, no other host, no framing. The page's scripts set styles through
    /// the CSSOM (uPlot does), which <c>style-src 'self'</c> allows.
    /// </summary>
    public const string ContentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
        "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

    /// <summary>Serves <c>/</c> as <c>/index.html</c> and the files under wwwroot/. Call before authentication.</summary>
    public static WebApplication UseDashboard(this WebApplication app)
    {
        app.UseDefaultFiles();
        app.UseStaticFiles(new StaticFileOptions
        {
            OnPrepareResponse = context =>
            {
                var headers = context.Context.Response.Headers;
                headers.ContentSecurityPolicy = ContentSecurityPolicy;
                headers.XContentTypeOptions = "nosniff";
                headers["Referrer-Policy"] = "no-referrer";
                // Revalidated every time (ETag, Last-Modified): a new version of the page is never mixed with an old script.
                headers.CacheControl = "no-cache";
            },
        });
        return app;
    }
}
