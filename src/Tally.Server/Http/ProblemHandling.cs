using Microsoft.AspNetCore.Diagnostics;

namespace Tally.Server.Http;

/// <summary>
/// Errors the framework raises by itself (no route, wrong method, oversized or malformed request,
/// an unexpected exception) become the same problem+json with a <c>code</c> as the API's own
/// errors, whatever the request's Accept header says.
/// </summary>
internal static class ProblemHandling
{
    public static IServiceCollection AddTallyProblems(this IServiceCollection services)
    {
        services.AddProblemDetails(options => options.CustomizeProblemDetails = context =>
        {
            var status = context.ProblemDetails.Status ?? context.HttpContext.Response.StatusCode;
            context.ProblemDetails.Extensions.TryAdd("code", Problems.CodeOf(status));
        });
        return services;
    }

    public static WebApplication UseTallyProblems(this WebApplication app)
    {
        app.UseExceptionHandler(new ExceptionHandlerOptions
        {
            ExceptionHandler = async context =>
            {
                var exception = context.Features.Get<IExceptionHandlerFeature>()?.Error;
                // Malformed requests (bad headers, oversized bodies) surface as BadHttpRequestException: a 4xx, not a 500.
                var status = exception is BadHttpRequestException bad ? bad.StatusCode : StatusCodes.Status500InternalServerError;
                var detail = status < 500 ? exception!.Message : "An unexpected error occurred; it has been logged.";
                await Problems.Create(Problems.CodeOf(status), detail, status).ExecuteAsync(context);
            },
        });
        app.UseStatusCodePages(async context =>
        {
            var status = context.HttpContext.Response.StatusCode;
            var detail = status switch
            {
                StatusCodes.Status404NotFound => $"No endpoint at {context.HttpContext.Request.Path}; see /docs.",
                StatusCodes.Status405MethodNotAllowed => $"{context.HttpContext.Request.Method} is not allowed here; see the Allow header.",
                _ => ReasonPhrase(status),
            };
            await Problems.Create(Problems.CodeOf(status), detail, status).ExecuteAsync(context.HttpContext);
        });
        return app;
    }

    private static string ReasonPhrase(int status) =>
        Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(status) is { Length: > 0 } phrase ? phrase : $"HTTP {status}";
}
