using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Tally.Server.Counters;

namespace Tally.Server.Http;

/// <summary>Every error as application/problem+json with a stable <c>code</c> member.</summary>
internal static class Problems
{
    public const string InvalidJson = "invalid_json";
    public const string InvalidBody = "invalid_body";
    public const string InvalidQuery = "invalid_query";
    public const string InvalidPrecondition = "invalid_precondition";
    public const string UnsupportedMediaType = "unsupported_media_type";
    public const string PayloadTooLarge = "payload_too_large";
    public const string NotFound = "not_found";
    public const string MethodNotAllowed = "method_not_allowed";
    public const string BadRequest = "bad_request";
    public const string InternalError = "internal_error";
    public const string Unauthorized = "unauthorized";
    public const string Forbidden = "forbidden";
    public const string RateLimited = "rate_limited";

    public static ProblemHttpResult Create(string code, string detail, IDictionary<string, object?>? extensions = null) =>
        TypedResults.Problem(Details(code, detail, StatusOf(code), extensions));

    /// <summary>A problem whose status is not the code's usual one (framework errors).</summary>
    public static ProblemHttpResult Create(string code, string detail, int status) =>
        TypedResults.Problem(Details(code, detail, status, extensions: null));

    public static ProblemDetails Details(string code, string detail, IDictionary<string, object?>? extensions = null) =>
        Details(code, detail, StatusOf(code), extensions);

    public static ProblemDetails Details(string code, string detail, int status, IDictionary<string, object?>? extensions)
    {
        var problem = new ProblemDetails
        {
            Status = status,
            Title = TitleOf(code),
            Detail = detail,
        };
        problem.Extensions["code"] = code;
        if (extensions is not null)
        {
            foreach (var (key, value) in extensions)
            {
                problem.Extensions[key] = value;
            }
        }
        return problem;
    }

    /// <summary>The problem for a failed command; <c>out_of_range</c> carries value, min and max.</summary>
    public static ProblemHttpResult From(CounterError error)
    {
        if (error.Code == ErrorCodes.OutOfRange && error.Current is { } current)
        {
            return Create(error.Code, error.Detail, new Dictionary<string, object?>
            {
                ["value"] = current.Value,
                ["min"] = current.Min,
                ["max"] = current.Max,
            });
        }
        return Create(error.Code, error.Detail);
    }

    public static int StatusOf(string code) => code switch
    {
        ErrorCodes.CounterNotFound or NotFound => StatusCodes.Status404NotFound,
        ErrorCodes.OutOfRange => StatusCodes.Status409Conflict,
        ErrorCodes.VersionMismatch or ErrorCodes.CounterExists => StatusCodes.Status412PreconditionFailed,
        ErrorCodes.IdempotencyKeyReused => StatusCodes.Status422UnprocessableEntity,
        ErrorCodes.IdempotencyKeyInFlight => StatusCodes.Status409Conflict,
        ErrorCodes.CounterQuotaExceeded => StatusCodes.Status403Forbidden,
        ErrorCodes.IdempotencyQuotaExceeded => StatusCodes.Status429TooManyRequests,
        ErrorCodes.StoreUnavailable => StatusCodes.Status503ServiceUnavailable,
        UnsupportedMediaType => StatusCodes.Status415UnsupportedMediaType,
        PayloadTooLarge => StatusCodes.Status413PayloadTooLarge,
        MethodNotAllowed => StatusCodes.Status405MethodNotAllowed,
        InternalError => StatusCodes.Status500InternalServerError,
        Unauthorized => StatusCodes.Status401Unauthorized,
        Forbidden => StatusCodes.Status403Forbidden,
        RateLimited => StatusCodes.Status429TooManyRequests,
        Backup.BackupEndpoints.BackupInProgress => StatusCodes.Status429TooManyRequests,
        _ => StatusCodes.Status400BadRequest,
    };

    /// <summary>The code for a status the framework produced by itself (no route, body too large, …).</summary>
    public static string CodeOf(int status) => status switch
    {
        StatusCodes.Status404NotFound => NotFound,
        StatusCodes.Status405MethodNotAllowed => MethodNotAllowed,
        StatusCodes.Status413PayloadTooLarge => PayloadTooLarge,
        StatusCodes.Status415UnsupportedMediaType => UnsupportedMediaType,
        StatusCodes.Status503ServiceUnavailable => ErrorCodes.StoreUnavailable,
        StatusCodes.Status401Unauthorized => Unauthorized,
        StatusCodes.Status403Forbidden => Forbidden,
        StatusCodes.Status429TooManyRequests => RateLimited,
        >= 500 => InternalError,
        _ => BadRequest,
    };

    public static string TitleOf(string code) => code switch
    {
        ErrorCodes.CounterNotFound => "Counter not found",
        ErrorCodes.CounterExists => "Counter already exists",
        ErrorCodes.InvalidName => "Invalid counter name",
        ErrorCodes.InvalidAmount => "Invalid amount",
        ErrorCodes.InvalidBounds => "Invalid bounds",
        ErrorCodes.InvalidValue => "Invalid value",
        ErrorCodes.OutOfRange => "Out of range",
        ErrorCodes.VersionMismatch => "Version mismatch",
        ErrorCodes.StoreUnavailable => "Store unavailable",
        ErrorCodes.IdempotencyKeyReused => "Idempotency key reused",
        ErrorCodes.IdempotencyKeyInFlight => "Idempotency key in flight",
        ErrorCodes.CounterQuotaExceeded => "Counter quota exceeded",
        ErrorCodes.IdempotencyQuotaExceeded => "Idempotency quota exceeded",
        InvalidJson => "Invalid JSON",
        InvalidBody => "Invalid request body",
        InvalidQuery => "Invalid query",
        InvalidPrecondition => "Invalid precondition header",
        UnsupportedMediaType => "Unsupported media type",
        PayloadTooLarge => "Payload too large",
        NotFound => "Not found",
        MethodNotAllowed => "Method not allowed",
        InternalError => "Internal error",
        Unauthorized => "Unauthorized",
        Forbidden => "Forbidden",
        RateLimited => "Too many requests",
        Backup.BackupEndpoints.BackupInProgress => "Backup in progress",
        _ => "Bad request",
    };
}
