using System.Collections.Frozen;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Tally.Server.Alerts;
using Tally.Server.Auth;
using Tally.Server.Backup;
using Tally.Server.Batch;
using Tally.Server.Counters;

namespace Tally.Server.Http;

/// <summary>One problem code: its HTTP status and its title, the same wherever it is answered.</summary>
internal sealed record ProblemType(string Code, int Status, string Title)
{
    /// <summary>The RFC 9457 <c>type</c>: a URN, so no answer depends on the host it was asked through.</summary>
    public string Uri { get; } = TypePrefix + Code;

    public const string TypePrefix = "urn:tally:problem:";
}

/// <summary>
/// Every error as application/problem+json with exactly <c>type</c>, <c>title</c>, <c>status</c>,
/// <c>detail</c> and a stable <c>code</c> (plus the documented extensions such as <c>index</c>, or
/// <c>value</c>/<c>min</c>/<c>max</c>), from one catalog. Never a trace id: a stored response is
/// replayed byte for byte.
/// </summary>
internal static class Problems
{
    public const string InvalidJson = "invalid_json";
    public const string InvalidBody = "invalid_body";
    public const string InvalidQuery = "invalid_query";
    public const string InvalidPrecondition = "invalid_precondition";
    public const string UnsupportedMediaType = "unsupported_media_type";
    public const string PayloadTooLarge = "payload_too_large";
    public const string RequestTimeout = "request_timeout";
    public const string NotFound = "not_found";
    public const string MethodNotAllowed = "method_not_allowed";
    public const string BadRequest = "bad_request";
    public const string InternalError = "internal_error";
    public const string Unauthorized = "unauthorized";
    public const string Forbidden = "forbidden";
    public const string RateLimited = "rate_limited";
    public const string TooManyStreams = "too_many_streams";

    /// <summary>The catalog. docs/api.md lists the same table; a code answered anywhere is in it.</summary>
    public static readonly FrozenDictionary<string, ProblemType> Catalog = new ProblemType[]
    {
        new(InvalidJson, StatusCodes.Status400BadRequest, "Invalid JSON"),
        new(InvalidBody, StatusCodes.Status400BadRequest, "Invalid request body"),
        new(InvalidQuery, StatusCodes.Status400BadRequest, "Invalid query"),
        new(InvalidPrecondition, StatusCodes.Status400BadRequest, "Invalid precondition header"),
        new(BadRequest, StatusCodes.Status400BadRequest, "Malformed request"),
        new(ErrorCodes.InvalidName, StatusCodes.Status400BadRequest, "Invalid counter name"),
        new(ErrorCodes.InvalidAmount, StatusCodes.Status400BadRequest, "Invalid amount"),
        new(ErrorCodes.InvalidBounds, StatusCodes.Status400BadRequest, "Invalid bounds"),
        new(ErrorCodes.InvalidValue, StatusCodes.Status400BadRequest, "Invalid value"),
        new(Submission.InvalidIdempotencyKey, StatusCodes.Status400BadRequest, "Invalid idempotency key"),
        new(BatchParsing.TooManyOperations, StatusCodes.Status400BadRequest, "Too many operations"),
        new(AdminKeyEndpoints.InvalidKeyName, StatusCodes.Status400BadRequest, "Invalid key name"),
        new(AdminKeyEndpoints.InvalidScopes, StatusCodes.Status400BadRequest, "Invalid scopes"),
        new(AdminKeyEndpoints.InvalidPrefix, StatusCodes.Status400BadRequest, "Invalid prefix"),
        new(BackupEndpoints.BackupNotSupported, StatusCodes.Status400BadRequest, "Backup not supported"),
        new(AlertEndpoints.InvalidAlertId, StatusCodes.Status400BadRequest, "Invalid alert id"),
        new(AlertEndpoints.InvalidAlert, StatusCodes.Status400BadRequest, "Invalid alert"),
        new(AlertEndpoints.InvalidWebhook, StatusCodes.Status400BadRequest, "Invalid webhook"),
        new(AlertEndpoints.WebhookNotAllowed, StatusCodes.Status400BadRequest, "Webhook not allowed"),
        new(AlertEndpoints.InvalidSecret, StatusCodes.Status400BadRequest, "Invalid secret"),
        new(Unauthorized, StatusCodes.Status401Unauthorized, "Unauthorized"),
        new(Forbidden, StatusCodes.Status403Forbidden, "Forbidden"),
        new(ErrorCodes.CounterQuotaExceeded, StatusCodes.Status403Forbidden, "Counter quota exceeded"),
        new(AlertEndpoints.AlertQuotaExceeded, StatusCodes.Status403Forbidden, "Alert quota exceeded"),
        new(NotFound, StatusCodes.Status404NotFound, "Not found"),
        new(ErrorCodes.CounterNotFound, StatusCodes.Status404NotFound, "Counter not found"),
        new(AdminKeyEndpoints.KeyNotFound, StatusCodes.Status404NotFound, "Key not found"),
        new(AlertEndpoints.AlertNotFound, StatusCodes.Status404NotFound, "Alert not found"),
        new(MethodNotAllowed, StatusCodes.Status405MethodNotAllowed, "Method not allowed"),
        new(RequestTimeout, StatusCodes.Status408RequestTimeout, "Request timeout"),
        new(ErrorCodes.OutOfRange, StatusCodes.Status409Conflict, "Out of range"),
        new(ErrorCodes.IdempotencyKeyInFlight, StatusCodes.Status409Conflict, "Idempotency key in flight"),
        new(ErrorCodes.VersionExhausted, StatusCodes.Status409Conflict, "Version exhausted"),
        new(ResponseRenderer.BatchFailed, StatusCodes.Status409Conflict, "Batch failed"),
        new(AdminKeyEndpoints.KeyNotRevocable, StatusCodes.Status409Conflict, "Key not revocable"),
        new(AdminKeyEndpoints.LastAdminKey, StatusCodes.Status409Conflict, "Last admin key"),
        new(ErrorCodes.VersionMismatch, StatusCodes.Status412PreconditionFailed, "Version mismatch"),
        new(ErrorCodes.CounterExists, StatusCodes.Status412PreconditionFailed, "Counter already exists"),
        new(PayloadTooLarge, StatusCodes.Status413PayloadTooLarge, "Payload too large"),
        new(UnsupportedMediaType, StatusCodes.Status415UnsupportedMediaType, "Unsupported media type"),
        new(ErrorCodes.IdempotencyKeyReused, StatusCodes.Status422UnprocessableEntity, "Idempotency key reused"),
        new(RateLimited, StatusCodes.Status429TooManyRequests, "Too many requests"),
        new(TooManyStreams, StatusCodes.Status429TooManyRequests, "Too many streams"),
        new(BackupEndpoints.BackupInProgress, StatusCodes.Status429TooManyRequests, "Backup in progress"),
        new(ErrorCodes.IdempotencyQuotaExceeded, StatusCodes.Status429TooManyRequests, "Idempotency quota exceeded"),
        new(InternalError, StatusCodes.Status500InternalServerError, "Internal error"),
        new(ErrorCodes.StoreUnavailable, StatusCodes.Status503ServiceUnavailable, "Store unavailable"),
        new(Auth.JwtAuthentication.ProviderUnavailable, StatusCodes.Status503ServiceUnavailable, "Identity provider unavailable"),
    }.ToFrozenDictionary(type => type.Code, StringComparer.Ordinal);

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
            Type = TypeOf(code),
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

    public static int StatusOf(string code) =>
        Catalog.TryGetValue(code, out var type) ? type.Status : StatusCodes.Status400BadRequest;

    public static string TitleOf(string code) =>
        Catalog.TryGetValue(code, out var type) ? type.Title : "Bad request";

    public static string TypeOf(string code) =>
        Catalog.TryGetValue(code, out var type) ? type.Uri : ProblemType.TypePrefix + code;

    /// <summary>The code for a status the framework produced by itself (no route, body too large, …).</summary>
    public static string CodeOf(int status) => status switch
    {
        StatusCodes.Status404NotFound => NotFound,
        StatusCodes.Status405MethodNotAllowed => MethodNotAllowed,
        StatusCodes.Status408RequestTimeout => RequestTimeout,
        StatusCodes.Status413PayloadTooLarge => PayloadTooLarge,
        StatusCodes.Status415UnsupportedMediaType => UnsupportedMediaType,
        StatusCodes.Status503ServiceUnavailable => ErrorCodes.StoreUnavailable,
        StatusCodes.Status401Unauthorized => Unauthorized,
        StatusCodes.Status403Forbidden => Forbidden,
        StatusCodes.Status429TooManyRequests => RateLimited,
        >= 500 => InternalError,
        _ => BadRequest,
    };
}
