using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http.Features;

namespace Tally.Server.Http;

/// <summary>
/// Errors the framework raises by itself (no route, wrong method, oversized or malformed request)
/// become the same problem+json with a <c>code</c> as the API's own errors.
/// </summary>
internal static class ProblemHandling
{
    public static IServiceCollection AddTallyProblems(this IServiceCollection services)
    {
        services.AddProblemDetails(options => options.CustomizeProblemDetails = context =>
        {
            var status = context.ProblemDetails.Status ?? context.HttpContext.Response.StatusCode;
            context.ProblemDetails.Extensions.TryAdd("code", Problems.CodeOf(status));
            if (context.ProblemDetails.Detail is null && context.Exception is BadHttpRequestException bad)
            {
                context.ProblemDetails.Detail = bad.Message;
            }
            // API.md: every problem has a detail, including the ones the framework raises (no route, wrong method).
            context.ProblemDetails.Detail ??= DetailOf(status, context.HttpContext.Request);
        });
        return services;
    }

    public static WebApplication UseTallyProblems(this WebApplication app)
    {
        app.UseExceptionHandler(new ExceptionHandlerOptions
        {
            // Malformed requests (bad headers, oversized bodies) surface as BadHttpRequestException: a 4xx, not a 500.
            StatusCodeSelector = exception => exception is BadHttpRequestException bad ? bad.StatusCode : StatusCodes.Status500InternalServerError,
        });
        app.UseStatusCodePages();
        return app;
    }

    private static string DetailOf(int status, HttpRequest request) => status switch
    {
        StatusCodes.Status404NotFound => $"No endpoint answers {request.Method} {request.Path}.",
        StatusCodes.Status405MethodNotAllowed => $"{request.Method} is not allowed on {request.Path}; the Allow header lists the methods that are.",
        >= 500 => "An unexpected error occurred; it has been logged.",
        _ => Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(status),
    };

    /// <summary>For a handler that must answer a framework-level status itself.</summary>
    public static bool IsProblem(HttpContext context) =>
        context.Features.Get<IStatusCodePagesFeature>() is not null;
}
