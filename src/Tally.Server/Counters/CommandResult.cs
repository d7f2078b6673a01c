namespace Tally.Server.Counters;

internal enum CommandStatus
{
    /// <summary>Read or changed; <see cref="CommandResult.Counter"/> is the state after.</summary>
    Ok,
    /// <summary>Created by this command.</summary>
    Created,
    /// <summary>Deleted by this command; <see cref="CommandResult.Counter"/> is the state before.</summary>
    Deleted,
    Failed,
}

/// <summary>Stable error codes of the API (the <c>code</c> member of every problem).</summary>
internal static class ErrorCodes
{
    public const string CounterNotFound = "counter_not_found";
    public const string CounterExists = "counter_exists";
    public const string InvalidName = "invalid_name";
    public const string InvalidAmount = "invalid_amount";
    public const string InvalidBounds = "invalid_bounds";
    public const string InvalidValue = "invalid_value";
    public const string OutOfRange = "out_of_range";
    public const string VersionMismatch = "version_mismatch";
    public const string StoreUnavailable = "store_unavailable";
    public const string IdempotencyKeyReused = "idempotency_key_reused";
    public const string IdempotencyKeyInFlight = "idempotency_key_in_flight";
    public const string CounterQuotaExceeded = "counter_quota_exceeded";
    public const string IdempotencyQuotaExceeded = "idempotency_quota_exceeded";
    public const string VersionExhausted = "version_exhausted";
}

internal sealed record CounterError(string Code, string Detail)
{
    /// <summary>
    /// The counter as it stands, for <c>out_of_range</c> and <c>version_mismatch</c>: its value, bounds and
    /// version become members of the problem when the caller may read the counter, never otherwise.
    /// </summary>
    public Counter? Current { get; init; }

    /// <summary>When retrying makes sense (quotas that free up in time): the answer's <c>Retry-After</c>.</summary>
    public int? RetryAfterSeconds { get; init; }
}

/// <summary>What a command did. <see cref="Changed"/> is true when the store must persist it.</summary>
internal readonly record struct CommandResult(CommandStatus Status, Counter? Counter, CounterError? Error, bool Changed)
{
    public bool Succeeded => Status != CommandStatus.Failed;

    public static CommandResult Read(Counter counter) => new(CommandStatus.Ok, counter, null, false);

    public static CommandResult Updated(Counter counter) => new(CommandStatus.Ok, counter, null, true);

    public static CommandResult Created(Counter counter) => new(CommandStatus.Created, counter, null, true);

    public static CommandResult Deleted(Counter before) => new(CommandStatus.Deleted, before, null, true);

    public static CommandResult Fail(string code, string detail, Counter? current = null) =>
        new(CommandStatus.Failed, null, new CounterError(code, detail) { Current = current }, false);
}
