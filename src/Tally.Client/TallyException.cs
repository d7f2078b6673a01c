using System.Net;
using System.Text.Json;

namespace Tally.Client;

/// <summary>
/// A problem Tally answered (application/problem+json): its stable <see cref="Code"/>, the HTTP
/// <see cref="Status"/> and the <see cref="Detail"/> for a person. Each catalog code has a subclass
/// (or shares one with codes of the same kind); a code this library does not know arrives as a plain <see cref="TallyException"/>.
/// </summary>
public class TallyException : Exception
{
    /// <summary>Creates a problem from its members.</summary>
    /// <param name="code">The stable snake_case code, e.g. <c>out_of_range</c>.</param>
    /// <param name="status">The HTTP status.</param>
    /// <param name="title">The code's title.</param>
    /// <param name="detail">Plain words about this request.</param>
    public TallyException(string code, int status, string? title, string? detail)
        : base($"{code}: {detail ?? title ?? "status " + status}")
    {
        Code = code;
        Status = status;
        Title = title;
        Detail = detail;
    }

    /// <summary>The stable snake_case code from Tally's catalog.</summary>
    public string Code { get; }

    /// <summary>The HTTP status of the answer.</summary>
    public int Status { get; }

    /// <summary>The code's title, the same for every answer with this code.</summary>
    public string? Title { get; }

    /// <summary>Plain words about this request.</summary>
    public string? Detail { get; }

    /// <summary>The index of the batch operation the problem is about, when it is about one.</summary>
    public int? Index { get; internal set; }
}

/// <summary>400: the request was refused as malformed (<c>invalid_json</c>, <c>invalid_body</c>, <c>invalid_query</c>, <c>invalid_name</c>,
/// <c>invalid_amount</c>, <c>invalid_bounds</c>, <c>invalid_value</c>, <c>invalid_alert</c>, <c>backup_not_supported</c>, …); nothing changed.</summary>
public class InvalidRequestException(string code, int status, string? title, string? detail) : TallyException(code, status, title, detail);

/// <summary>401 <c>unauthorized</c>: no key, or a key that is not valid.</summary>
public sealed class UnauthorizedException(string code, int status, string? title, string? detail) : TallyException(code, status, title, detail);

/// <summary>403 <c>forbidden</c>: the key's scopes, prefix or <c>maxAmount</c> do not allow the request.</summary>
public sealed class ForbiddenException(string code, int status, string? title, string? detail) : TallyException(code, status, title, detail);

/// <summary>403 <c>counter_quota_exceeded</c> or <c>alert_quota_exceeded</c>: past a limit; nothing applied.</summary>
public sealed class QuotaExceededException(string code, int status, string? title, string? detail) : TallyException(code, status, title, detail);

/// <summary>404: no such thing (<c>not_found</c> for an unknown endpoint).</summary>
public class NotFoundException(string code, int status, string? title, string? detail) : TallyException(code, status, title, detail);

/// <summary>404 <c>counter_not_found</c>.</summary>
public sealed class CounterNotFoundException(string code, int status, string? title, string? detail) : NotFoundException(code, status, title, detail);

/// <summary>404 <c>alert_not_found</c>.</summary>
public sealed class AlertNotFoundException(string code, int status, string? title, string? detail) : NotFoundException(code, status, title, detail);

/// <summary>404 <c>key_not_found</c>.</summary>
public sealed class ApiKeyNotFoundException(string code, int status, string? title, string? detail) : NotFoundException(code, status, title, detail);

/// <summary>409 <c>out_of_range</c>: the change would cross a bound or overflow; nothing changed.</summary>
public sealed class CounterOutOfRangeException(string code, int status, string? title, string? detail) : TallyException(code, status, title, detail)
{
    /// <summary>The counter's value as it stands (null when the key may not read the counter).</summary>
    public long? Value { get; internal init; }

    /// <summary>The counter's lower bound (null: none, or not shown to this key).</summary>
    public long? Min { get; internal init; }

    /// <summary>The counter's upper bound (null: none, or not shown to this key).</summary>
    public long? Max { get; internal init; }
}

/// <summary>412 <c>version_mismatch</c>: the counter is not at the version the request required.</summary>
public sealed class VersionMismatchException(string code, int status, string? title, string? detail) : TallyException(code, status, title, detail)
{
    /// <summary>The counter's current version (null when it does not exist or the key may not read it).</summary>
    public long? CurrentVersion { get; internal init; }
}

/// <summary>412 <c>counter_exists</c>: a create-only request found the counter.</summary>
public sealed class CounterExistsException(string code, int status, string? title, string? detail) : TallyException(code, status, title, detail);

/// <summary>409 <c>version_exhausted</c>, <c>key_not_revocable</c>, <c>last_admin_key</c>: the request conflicts with the state.</summary>
public sealed class ConflictException(string code, int status, string? title, string? detail) : TallyException(code, status, title, detail);

/// <summary>409 <c>idempotency_key_in_flight</c> or 422 <c>idempotency_key_reused</c>.</summary>
public sealed class IdempotencyKeyException(string code, int status, string? title, string? detail) : TallyException(code, status, title, detail);

/// <summary>409 <c>batch_failed</c>: an atomic batch failed at <see cref="TallyException.Index"/>; nothing of it applied.</summary>
public sealed class BatchFailedException(string code, int status, string? title, string? detail) : TallyException(code, status, title, detail)
{
    /// <summary>The failing operation's problem.</summary>
    public TallyException? Error { get; internal init; }
}

/// <summary>429: too many requests (<c>rate_limited</c>, <c>too_many_streams</c>, <c>idempotency_quota_exceeded</c>, <c>backup_in_progress</c>).</summary>
public sealed class RateLimitedException(string code, int status, string? title, string? detail) : TallyException(code, status, title, detail)
{
    /// <summary>How long Tally asked to wait (its <c>Retry-After</c>), or null when it did not say.</summary>
    public TimeSpan? RetryAfter { get; internal init; }
}

/// <summary>503: the service cannot answer now (<c>store_unavailable</c>: the change was not acknowledged;
/// <c>identity_provider_unavailable</c>: a JWT could not be checked). Retried by the client (a change with the same Idempotency-Key).</summary>
public sealed class StoreUnavailableException(string code, int status, string? title, string? detail) : TallyException(code, status, title, detail)
{
    /// <summary>How long Tally asked to wait, or null.</summary>
    public TimeSpan? RetryAfter { get; internal init; }
}

/// <summary>Another status Tally answered: 405 <c>method_not_allowed</c>, 408 <c>request_timeout</c>, 413 <c>payload_too_large</c>,
/// 415 <c>unsupported_media_type</c>, 500 <c>internal_error</c> (and any other 5xx but 503).</summary>
public sealed class ProtocolException(string code, int status, string? title, string? detail) : TallyException(code, status, title, detail);

internal static class Problems
{
    public static async Task<TallyException> ReadAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var status = (int)response.StatusCode;
        JsonElement root = default;
        try
        {
            var body = await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
            if (body.Length > 0)
            {
                using var document = JsonDocument.Parse(body);
                root = document.RootElement.Clone();
            }
        }
        catch (JsonException)
        {
            // Not Tally's problem body (a proxy's error page): the status alone says what happened.
        }
        var retryAfter = response.Headers.RetryAfter is { } header
            ? header.Delta ?? (header.Date is { } date ? date - DateTimeOffset.UtcNow : null)
            : null;
        return root.ValueKind == JsonValueKind.Object
            ? From(root, status, retryAfter)
            : Create(CodeOf(status), status, response.ReasonPhrase, $"Tally answered {status} {response.ReasonPhrase}.", retryAfter);
    }

    public static TallyException From(JsonElement problem, int fallbackStatus, TimeSpan? retryAfter = null)
    {
        var status = Int(problem, "status") is { } s ? (int)s : fallbackStatus;
        var code = String(problem, "code") ?? CodeOf(status);
        var exception = Create(code, status, String(problem, "title"), String(problem, "detail"), retryAfter, problem);
        return exception;
    }

    private static TallyException Create(string code, int status, string? title, string? detail, TimeSpan? retryAfter, JsonElement problem = default)
    {
        var index = problem.ValueKind == JsonValueKind.Object && Int(problem, "index") is { } i ? (int?)i : null;
        TallyException exception = code switch
        {
            "out_of_range" => new CounterOutOfRangeException(code, status, title, detail)
            {
                Value = Int(problem, "value"), Min = Int(problem, "min"), Max = Int(problem, "max"),
            },
            "version_mismatch" => new VersionMismatchException(code, status, title, detail) { CurrentVersion = Int(problem, "version") },
            "counter_exists" => new CounterExistsException(code, status, title, detail),
            "counter_not_found" => new CounterNotFoundException(code, status, title, detail),
            "alert_not_found" => new AlertNotFoundException(code, status, title, detail),
            "key_not_found" => new ApiKeyNotFoundException(code, status, title, detail),
            "unauthorized" => new UnauthorizedException(code, status, title, detail),
            "forbidden" => new ForbiddenException(code, status, title, detail),
            "counter_quota_exceeded" or "alert_quota_exceeded" => new QuotaExceededException(code, status, title, detail),
            "idempotency_key_in_flight" or "idempotency_key_reused" => new IdempotencyKeyException(code, status, title, detail),
            "batch_failed" => new BatchFailedException(code, status, title, detail)
            {
                Error = problem.ValueKind == JsonValueKind.Object && problem.TryGetProperty("error", out var error) && error.ValueKind == JsonValueKind.Object
                    ? From(error, status) : null,
            },
            "store_unavailable" or "identity_provider_unavailable" => new StoreUnavailableException(code, status, title, detail) { RetryAfter = retryAfter },
            "version_exhausted" or "key_not_revocable" or "last_admin_key" => new ConflictException(code, status, title, detail),
            _ when status == 429 => new RateLimitedException(code, status, title, detail) { RetryAfter = retryAfter },
            _ when status == 503 => new StoreUnavailableException(code, status, title, detail) { RetryAfter = retryAfter },
            _ when status == 404 => new NotFoundException(code, status, title, detail),
            _ when status == 400 => new InvalidRequestException(code, status, title, detail),
            _ when status is 405 or 408 or 413 or 415 or >= 500 => new ProtocolException(code, status, title, detail),
            _ => new TallyException(code, status, title, detail),
        };
        exception.Index = index;
        return exception;
    }

    private static string CodeOf(int status) => status switch
    {
        (int)HttpStatusCode.Unauthorized => "unauthorized",
        (int)HttpStatusCode.Forbidden => "forbidden",
        (int)HttpStatusCode.NotFound => "not_found",
        (int)HttpStatusCode.TooManyRequests => "rate_limited",
        (int)HttpStatusCode.ServiceUnavailable => "store_unavailable",
        >= 500 => "internal_error",
        _ => "bad_request",
    };

    private static long? Int(JsonElement element, string name) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var member) && member.ValueKind == JsonValueKind.Number
        && member.TryGetInt64(out var value) ? value : null;

    private static string? String(JsonElement element, string name) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var member) && member.ValueKind == JsonValueKind.String
        ? member.GetString() : null;
}
