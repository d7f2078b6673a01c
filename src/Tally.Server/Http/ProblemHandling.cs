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

    /// <summary>For a handler that must answer a framework-level status itself.</summary>
    public static bool IsProblem(HttpContext context) =>
        context.Features.Get<IStatusCodePagesFeature>() is not null;
}
