using System.Globalization;
using Tally.Server.Batch;
using Tally.Server.Counters;
using Tally.Server.Pipeline;

namespace Tally.Server.Storage.Redis;

/// <summary>
/// Turns the <c>tally_v1_commit</c> function's answer for one request into its <see cref="RequestOutcome"/>.
/// The function answers <c>N&lt;outcome&gt;</c> (applied now), <c>R&lt;time&gt;|&lt;outcome&gt;</c> (a replay of the
/// record kept at that time) or <c>E,&lt;code&gt;,…</c> (refused whole). An outcome is the index of the operation
/// that aborted an atomic batch (or nothing), then one result per operation, each
/// <c>status,value,initial,min,max,version,createdAt,updatedAt[,code,x1,x2,x3,x4]</c>; an empty time is the
/// record's own. Names are not stored: they come from the request, which a replay matches byte for byte.
/// The words of a failure come from <see cref="CounterFailures"/>, as for the other engines.
/// </summary>
internal static class RedisOutcomeReader
{
    public static RequestOutcome Read(string reply, PendingRequest request, long now)
    {
        switch (reply[0])
        {
            case 'N':
                return ReadOutcome(reply.AsSpan(1), request, now);
            case 'R':
                var bar = reply.IndexOf('|', StringComparison.Ordinal);
                var recordedAt = long.Parse(reply.AsSpan(1, bar - 1), CultureInfo.InvariantCulture);
                return ReadOutcome(reply.AsSpan(bar + 1), request, recordedAt) with { Replayed = true };
            case 'E':
                var parts = reply.Split(',');
                return new RequestOutcome(parts[1] switch
                {
                    ErrorCodes.IdempotencyKeyReused => CounterFailures.IdempotencyKeyReused(),
                    ErrorCodes.IdempotencyQuotaExceeded => CounterFailures.IdempotencyQuotaExceeded(
                        Long(parts[2]), Long(parts[3]), int.Parse(parts[4], CultureInfo.InvariantCulture)),
                    _ => throw Unexpected(reply),
                });
            default:
                throw Unexpected(reply);
        }
    }

    private static RequestOutcome ReadOutcome(ReadOnlySpan<char> text, PendingRequest request, long recordedAt)
    {
        var parts = text.ToString().Split(';');
        if (request.Command is { } command)
        {
            return new RequestOutcome(ReadResult(parts[1], command, recordedAt));
        }
        var operations = request.Batch!.Operations;
        var results = new CommandResult[operations.Count];
        for (var i = 1; i < parts.Length; i++)
        {
            results[i - 1] = ReadResult(parts[i], operations[i - 1], recordedAt);
        }
        var failedIndex = parts[0].Length == 0 ? -1 : int.Parse(parts[0], CultureInfo.InvariantCulture);
        return new RequestOutcome(default, new BatchResult(results, failedIndex));
    }

    private static CommandResult ReadResult(string text, CounterCommand command, long recordedAt)
    {
        var f = text.Split(',');
        var counter = f.Length > 1 && f[1].Length > 0
            ? new Counter(command.Name, Long(f[1]), Long(f[2]), Bound(f[3]), Bound(f[4]), Long(f[5]),
                Time(f, 6, recordedAt), Time(f, 7, recordedAt))
            : null;
        return f[0] switch
        {
            "o" => CommandResult.Updated(counter!),
            "r" => CommandResult.Read(counter!),
            "n" => CommandResult.Created(counter!),
            "d" => CommandResult.Deleted(counter!),
            "f" => Failure(f, command, counter),
            _ => throw Unexpected(text),
        };
    }

    private static CommandResult Failure(string[] f, CounterCommand command, Counter? current)
    {
        string X(int i) => f.Length > 8 + i ? f[8 + i] : string.Empty;
        return f[8] switch
        {
            ErrorCodes.InvalidName => CounterFailures.InvalidName(),
            ErrorCodes.CounterExists => CounterFailures.CounterExists(current!),
            ErrorCodes.VersionMismatch => X(1) == "any" ? CounterFailures.MissingForIfMatchAny() : CounterFailures.VersionMismatch(current),
            ErrorCodes.InvalidAmount => CounterFailures.InvalidAmount(),
            ErrorCodes.OutOfRange => CounterFailures.OutOfRange(command.Name, command.Amount, command.Kind == CommandKind.Decrement, current!),
            ErrorCodes.InvalidBounds => CounterFailures.InvalidBounds(Long(X(1)), Long(X(2))),
            ErrorCodes.InvalidValue => X(1) switch
            {
                "value" => CounterFailures.ValueOutsideBounds(Long(X(2)), Bound(X(3)), Bound(X(4))),
                "initial" => CounterFailures.InitialOutsideBounds(Long(X(2)), Bound(X(3)), Bound(X(4))),
                "import" => CounterFailures.ImportOutsideBounds(Long(X(2)), Long(X(3))),
                _ => CounterFailures.ImportVersionBelowOne(),
            },
            ErrorCodes.VersionExhausted => CounterFailures.VersionExhausted(command.Name),
            ErrorCodes.CounterNotFound => CounterFailures.NotFound(command.Name),
            ErrorCodes.CounterQuotaExceeded => X(1) == "store" ? CounterFailures.StoreFull(Long(X(2))) : CounterFailures.KeyCounterLimit(Long(X(2))),
            _ => throw Unexpected(string.Join(',', f)),
        };
    }

    private static long Time(string[] f, int index, long recordedAt) =>
        f.Length > index && f[index].Length > 0 ? Long(f[index]) : recordedAt;

    private static long Long(string text) => long.Parse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);

    private static long? Bound(string text) => text.Length == 0 ? null : Long(text);

    private static InvalidOperationException Unexpected(string reply) =>
        new($"The Redis function answered something this Tally does not read: '{reply}'. Is another version of the tally library loaded?");
}
