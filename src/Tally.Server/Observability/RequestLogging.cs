using System.Diagnostics;

namespace Tally.Server.Observability;

/// <summary>
/// One line per request at Debug (method, path, status, duration): off by default, and free when off.
/// Headers are never logged, so neither are API keys.
/// </summary>
internal static class RequestLogging
{
    public static WebApplication UseRequestLogging(this WebApplication app)
    {
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Tally.Requests");
        // Not an async lambda: when Debug is off (the default) a request passes through without a state machine.
        app.Use((context, next) => logger.IsEnabled(LogLevel.Debug) ? LogAsync(logger, context, next) : next(context));
        return app;
    }

    private static async Task LogAsync(ILogger logger, HttpContext context, RequestDelegate next)
    {
        var started = Stopwatch.GetTimestamp();
        await next(context);
        logger.LogDebug("{Method} {Path} {StatusCode} {ElapsedMs:0.000} ms",
            context.Request.Method, context.Request.Path.Value, context.Response.StatusCode, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
    }
}
