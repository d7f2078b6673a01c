using System.Globalization;

namespace Tally.Server.Counters;

/// <summary>
/// Every failure of the rule book and the batch applier, with its words, in one place: the C# rules
/// (<see cref="CounterRules"/>, <see cref="BatchApplier"/>) and the Redis engine's reader of its server-side
/// rules build the same problem from the same facts.
/// </summary>
internal static class CounterFailures
{
    public static CommandResult InvalidName() =>
        CommandResult.Fail(ErrorCodes.InvalidName, $"Counter names match {CounterName.Pattern}.");

    public static CommandResult CounterExists(Counter current) =>
        CommandResult.Fail(ErrorCodes.CounterExists, $"Counter '{current.Name}' already exists (If-None-Match: *).", current);

    public static CommandResult MissingForIfMatchAny() =>
        CommandResult.Fail(ErrorCodes.VersionMismatch, "The counter does not exist (If-Match: *).");

    // State goes in the problem's members (shown only to callers who may read), not in the text.
    public static CommandResult VersionMismatch(Counter? current) => CommandResult.Fail(ErrorCodes.VersionMismatch, current is null
        ? "The counter does not exist, so no version matches If-Match."
        : "The counter is not at the version given in If-Match; nothing changed.", current);

    public static CommandResult InvalidAmount() =>
        CommandResult.Fail(ErrorCodes.InvalidAmount, "The amount must be an integer from 1 to 9223372036854775807.");

    /// <summary>The value and bounds travel as members of the problem, shown only to callers who may read the counter.</summary>
    public static CommandResult OutOfRange(string name, long amount, bool negate, Counter before) =>
        CommandResult.Fail(ErrorCodes.OutOfRange,
            $"{(negate ? "Decrementing" : "Incrementing")} '{name}' by {amount} would take it out of its range or past 64 bits; nothing changed.",
            before);

    public static CommandResult InvalidBounds(long min, long max) =>
        CommandResult.Fail(ErrorCodes.InvalidBounds, $"min ({min}) is greater than max ({max}).");

    public static CommandResult ValueOutsideBounds(long value, long? min, long? max) =>
        CommandResult.Fail(ErrorCodes.InvalidValue, $"value {value} is outside the bounds [{Describe(min, "-2^63")}, {Describe(max, "2^63-1")}].");

    public static CommandResult InitialOutsideBounds(long initial, long? min, long? max) =>
        CommandResult.Fail(ErrorCodes.InvalidValue,
            $"initial {initial} is outside the bounds [{Describe(min, "-2^63")}, {Describe(max, "2^63-1")}]; reset could not honour them.");

    public static CommandResult ImportOutsideBounds(long value, long initial) =>
        CommandResult.Fail(ErrorCodes.InvalidValue, $"value {value} or initial {initial} is outside the bounds.");

    public static CommandResult ImportVersionBelowOne() =>
        CommandResult.Fail(ErrorCodes.InvalidValue, "version must be at least 1.");

    public static CommandResult VersionExhausted(string name) =>
        CommandResult.Fail(ErrorCodes.VersionExhausted,
            $"Counter '{name}' is at the highest version (2^63-1) and cannot change again; delete and re-create it, or import it with a lower version.");

    public static CommandResult NotFound(string name) =>
        CommandResult.Fail(ErrorCodes.CounterNotFound, $"Counter '{name}' does not exist.");

    public static CommandResult StoreFull(long maxCounters) =>
        CommandResult.Fail(ErrorCodes.CounterQuotaExceeded,
            $"The store holds its maximum of {maxCounters} counters (Quotas:MaxCounters); nothing was applied. Delete counters, or raise the limit.");

    public static CommandResult KeyCounterLimit(long limit) =>
        CommandResult.Fail(ErrorCodes.CounterQuotaExceeded,
            $"This API key has created {limit} live counters, its limit (maxCounters); nothing was applied. Delete some of them, or use a key with a higher limit.");

    public static CommandResult IdempotencyKeyReused() =>
        CommandResult.Fail(ErrorCodes.IdempotencyKeyReused,
            "This Idempotency-Key was already used for a different request (method, path or body). Use a new key for a new request.");

    public static CommandResult IdempotencyQuotaExceeded(long used, long limit, int retryAfterSeconds)
    {
        var error = new CounterError(ErrorCodes.IdempotencyQuotaExceeded,
            $"This API key keeps {used} bytes of idempotency records, its limit is {limit}; nothing was applied. Records expire after the retention window: retry then, or send requests without an Idempotency-Key.")
        {
            RetryAfterSeconds = retryAfterSeconds,
        };
        return new CommandResult(CommandStatus.Failed, null, error, false);
    }

    private static string Describe(long? bound, string unbounded) => bound?.ToString(CultureInfo.InvariantCulture) ?? unbounded;
}
