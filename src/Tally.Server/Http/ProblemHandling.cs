using Microsoft.AspNetCore.Diagnostics;
using Tally.Server.Storage;

namespace Tally.Server.Http;

/// <summary>
/// Errors the framework raises by itself (no route, wrong method, oversized or malformed request,
/// an unexpected exception) become the same problem+json as the API's own errors, whatever the
/// request's Accept header says. A client's fault (a malformed or too slow body, a client that went
/// away) is one Debug line, never an error with a stack trace.
/// </summary>
internal static class ProblemHandling
{
    private const string LogCategory = "Tally.Server.Http.ProblemHandling";

    public static IServiceCollection AddTallyProblems(this IServiceCollection services)
    {
        services.AddProblemDetails(options => options.CustomizeProblemDetails = context =>
        {
            var problem = context.ProblemDetails;
            var status = problem.Status ?? context.HttpContext.Response.StatusCode;
            if (!problem.Extensions.TryGetValue("code", out var value) || value is not string code)
            {
                code = Problems.CodeOf(status);
                problem.Extensions["code"] = code;
            }
            problem.Type = Problems.TypeOf(code);
            problem.Title ??= Problems.TitleOf(code);
            // A trace id would make a stored response differ from its replays; the request log has it.
            problem.Extensions.Remove("traceId");
        });
        return services;
    }

    public static WebApplication UseTallyProblems(this WebApplication app)
    {
        app.UseExceptionHandler(new ExceptionHandlerOptions
        {
            ExceptionHandler = HandleExceptionAsync,
            // The middleware logs what it handles at Error with the stack trace: right for a bug, wrong for a client's fault.
            SuppressDiagnosticsCallback = context => IsClientFault(context.HttpContext, context.Exception) || context.Exception is StoreUnavailableException,
        });
        app.UseStatusCodePages(async context =>
        {
            var status = context.HttpContext.Response.StatusCode;
            var detail = status switch
            {
                StatusCodes.Status404NotFound => $"No endpoint at {context.HttpContext.Request.Path}; see /docs.",
                StatusCodes.Status405MethodNotAllowed => $"{context.HttpContext.Request.Method} is not allowed here; see the Allow header.",
                StatusCodes.Status415UnsupportedMediaType => "Send the body as JSON, with Content-Type: application/json.",
                _ => ReasonPhrase(status),
            };
            await Problems.Create(Problems.CodeOf(status), detail, status).ExecuteAsync(context.HttpContext);
        });
        // HEAD is answered as GET: after the error handlers (which then see its problems), before routing.
        app.UseHeadAsGet();
        return app;
    }

    /// <summary>The problem for a request Kestrel could not read; <paramref name="inBody"/> when it was the body.</summary>
    public static IResult ProblemFor(BadHttpRequestException bad, bool inBody) => bad.StatusCode switch
    {
        StatusCodes.Status413PayloadTooLarge => Problems.Create(Problems.PayloadTooLarge, "The request body is too large."),
        StatusCodes.Status408RequestTimeout => Problems.Create(Problems.RequestTimeout, "The request body arrived too slowly; send it all at once."),
        StatusCodes.Status400BadRequest when inBody =>
            Problems.Create(Problems.InvalidBody, "The request body could not be read: it ended early or its framing is malformed."),
        var status => Problems.Create(Problems.CodeOf(status), "The request could not be read: it is malformed.", status),
    };

    private static async Task HandleExceptionAsync(HttpContext context)
    {
        var exception = context.Features.Get<IExceptionHandlerFeature>()?.Error;
        if (exception is not null && IsClientFault(context, exception))
        {
            context.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(LogCategory).LogDebug(
                "{Method} {Path}: the client's request failed ({Reason})", context.Request.Method, context.Request.Path.Value, exception.Message);
            if (context.RequestAborted.IsCancellationRequested)
            {
                return; // nobody to answer
            }
        }
        if (exception is StoreUnavailableException unavailable)
        {
            // A shared database that does not answer: say so, never a stale value or a 500. One line, no stack trace.
            context.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(LogCategory).LogWarning(
                "{Method} {Path}: {Reason}", context.Request.Method, context.Request.Path.Value, unavailable.Message);
            context.Response.Headers.RetryAfter = "1";
            await Problems.Create(Counters.ErrorCodes.StoreUnavailable, "The store does not answer; nothing was read or changed. Retry shortly.").ExecuteAsync(context);
            return;
        }
        var result = exception is BadHttpRequestException bad
            ? ProblemFor(bad, inBody: false)
            : Problems.Create(Problems.InternalError, "An unexpected error occurred; it has been logged.", StatusCodes.Status500InternalServerError);
        await result.ExecuteAsync(context);
    }

    /// <summary>A malformed request, or a client that went away (its connection reset, its request aborted).</summary>
    private static bool IsClientFault(HttpContext context, Exception exception) =>
        exception is BadHttpRequestException
        || (context.RequestAborted.IsCancellationRequested && exception is OperationCanceledException or IOException);

    private static string ReasonPhrase(int status) =>
        Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(status) is { Length: > 0 } phrase ? phrase : $"HTTP {status}";
}
