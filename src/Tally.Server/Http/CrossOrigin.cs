using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;

namespace Tally.Server.Http;

/// <summary>
/// Which web pages may call the API from a browser, bound from <c>Cors</c>: none by default (no CORS headers at all).
/// The hit-counter use: a page on an allowed origin increments with an increment-scoped key.
/// </summary>
internal sealed class CrossOriginOptions
{
    public const string Section = "Cors";

    /// <summary>Origins such as <c>https://blog.example</c> (scheme, host, port; no path), or the single entry <c>*</c> for any.</summary>
    public string[] AllowedOrigins { get; set; } = [];

    /// <summary><see cref="AllowedOrigins"/> as browsers send them (<c>Origin</c>: lower-case, no default port).</summary>
    public IEnumerable<string> Normalized => AllowedOrigins.Select(origin => origin == "*" ? origin : new Uri(origin).GetLeftPart(UriPartial.Authority));
}

internal sealed class CrossOriginOptionsValidator : IValidateOptions<CrossOriginOptions>
{
    public ValidateOptionsResult Validate(string? name, CrossOriginOptions options)
    {
        var errors = new List<string>();
        for (var i = 0; i < options.AllowedOrigins.Length; i++)
        {
            var origin = options.AllowedOrigins[i];
            if (origin == "*")
            {
                if (options.AllowedOrigins.Length > 1)
                {
                    errors.Add("Cors:AllowedOrigins: '*' (any origin) must be the only entry");
                }
                continue;
            }
            if (!Uri.TryCreate(origin, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps)
                || uri.PathAndQuery != "/" || uri.Fragment.Length > 0 || uri.UserInfo.Length > 0 || origin.EndsWith('/'))
            {
                errors.Add($"Cors:AllowedOrigins:{i} must be an origin such as https://blog.example or http://127.0.0.1:8080 (scheme, host and port, no path; got '{origin}')");
            }
        }
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

internal static class CrossOrigin
{
    private const string Policy = "tally";

    /// <summary>The request headers a page may send: keys, bodies, idempotency and conditional requests.</summary>
    public static readonly string[] RequestHeaders =
        [HeaderNames.Authorization, Auth.ApiKeyAuthenticationHandler.ApiKeyHeader, HeaderNames.ContentType, "Idempotency-Key",
         HeaderNames.IfMatch, HeaderNames.IfNoneMatch, "Last-Event-ID"];

    /// <summary>The response headers a page's script may read beyond the CORS-safelisted ones.</summary>
    public static readonly string[] ResponseHeaders = [HeaderNames.ETag, HeaderNames.RetryAfter, HeaderNames.Location, "Idempotent-Replayed"];

    public static IServiceCollection AddTallyCors(this IServiceCollection services)
    {
        services.AddSingleton<IValidateOptions<CrossOriginOptions>, CrossOriginOptionsValidator>();
        services.AddOptions<CrossOriginOptions>().BindConfiguration(CrossOriginOptions.Section).ValidateOnStart();
        services.AddCors();
        services.AddOptions<Microsoft.AspNetCore.Cors.Infrastructure.CorsOptions>().Configure<IOptions<CrossOriginOptions>>((cors, settings) =>
            cors.AddPolicy(Policy, policy =>
            {
                var origins = settings.Value.Normalized.ToArray();
                _ = origins is ["*"] ? policy.AllowAnyOrigin() : policy.WithOrigins(origins);
                // Keys travel in headers, never in cookies: no credentials.
                policy.WithMethods(HttpMethods.Get, HttpMethods.Head, HttpMethods.Put, HttpMethods.Post, HttpMethods.Delete)
                    .WithHeaders(RequestHeaders)
                    .WithExposedHeaders(ResponseHeaders)
                    .SetPreflightMaxAge(TimeSpan.FromMinutes(10));
            }));
        return services;
    }

    /// <summary>
    /// With allowed origins, before authentication and the rate limiter: a preflight (<c>OPTIONS</c>) is answered here,
    /// without a key and never limited. Without any, nothing: no CORS headers at all.
    /// </summary>
    public static WebApplication UseTallyCors(this WebApplication app)
    {
        var origins = app.Services.GetRequiredService<IOptions<CrossOriginOptions>>().Value.AllowedOrigins;
        if (origins.Length > 0)
        {
            if (origins is not ["*"])
            {
                // Whether an answer carries Access-Control-Allow-Origin depends on the request's Origin (also when it
                // has none), so a shared cache must key on it. The CORS middleware says so only for an allowed origin
                // among several.
                app.Use((context, next) =>
                {
                    context.Response.OnStarting(static state =>
                    {
                        var headers = ((HttpContext)state).Response.Headers;
                        if (!headers.Vary.Any(value => value is not null && value.Contains(HeaderNames.Origin, StringComparison.OrdinalIgnoreCase)))
                        {
                            headers.Append(HeaderNames.Vary, HeaderNames.Origin);
                        }
                        return Task.CompletedTask;
                    }, context);
                    return next(context);
                });
            }
            app.UseCors(Policy);
        }
        return app;
    }
}
