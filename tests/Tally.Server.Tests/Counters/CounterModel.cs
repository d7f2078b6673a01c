using System.Globalization;
using System.Text.RegularExpressions;
using Tally.Server.Counters;

namespace Tally.Server.Tests.Counters;

/// <summary>One counter in the model.</summary>
internal sealed record ModelCounter(string Name, long Value, long Initial, long? Min, long? Max, long Version, long CreatedAt, long UpdatedAt);

/// <summary>What the model says a command does: an error code, or the counter after it (before it, for a delete).</summary>
internal readonly record struct ModelOutcome(string? Code, ModelCounter? Counter, bool Created, bool Deleted)
{
    public static ModelOutcome Fail(string code, ModelCounter? current = null) => new(code, current, false, false);
}

/// <summary>
/// API.md's counter rules written as plainly as possible, as an oracle for <see cref="CounterRules"/>:
/// arithmetic in <see cref="Int128"/>, so "would overflow 64 bits" is an ordinary comparison.
/// </summary>
internal sealed partial class CounterModel
{
    private readonly SortedDictionary<string, ModelCounter> _counters = new(StringComparer.Ordinal);

    public IReadOnlyCollection<ModelCounter> Counters => _counters.Values;

    public ModelCounter? Find(string name) => _counters.GetValueOrDefault(name);

    public ModelOutcome Apply(CounterCommand command, long now)
    {
        var outcome = Decide(command, Find(command.Name), now);
        if (outcome.Code is null && command.Kind != CommandKind.Get)
        {
            if (outcome.Deleted)
            {
                _counters.Remove(command.Name);
            }
            else
            {
                _counters[command.Name] = outcome.Counter!;
            }
        }
        return outcome;
    }

    private static ModelOutcome Decide(CounterCommand command, ModelCounter? c, long now)
    {
        if (!NamePattern().IsMatch(command.Name))
        {
            return ModelOutcome.Fail("invalid_name");
        }

        var p = command.Precondition;
        if (p.Kind == PreconditionKind.IfNoneMatchAny && c is not null)
        {
            return ModelOutcome.Fail("counter_exists");
        }
        if (p.Kind == PreconditionKind.IfMatchAny && c is null)
        {
            return ModelOutcome.Fail("version_mismatch");
        }
        if (p.Kind == PreconditionKind.IfMatch && (c is null || !p.Versions!.Contains(c.Version)))
        {
            return ModelOutcome.Fail("version_mismatch");
        }

        switch (command.Kind)
        {
            case CommandKind.Get:
                return c is null ? ModelOutcome.Fail("counter_not_found") : new(null, c, false, false);

            case CommandKind.Increment:
            case CommandKind.Decrement:
            {
                if (command.Amount < 1)
                {
                    return ModelOutcome.Fail("invalid_amount");
                }
                var before = c ?? new ModelCounter(command.Name, 0, 0, null, null, 0, now, now);
                Int128 target = command.Kind == CommandKind.Increment
                    ? (Int128)before.Value + command.Amount
                    : (Int128)before.Value - command.Amount;
                if (target < (before.Min ?? long.MinValue) || target > (before.Max ?? long.MaxValue))
                {
                    return ModelOutcome.Fail("out_of_range", before);
                }
                // Created or not, the answer is a plain 200: only PUT reports creation.
                return new(null, before with { Value = (long)target, Version = before.Version + 1, UpdatedAt = now }, false, false);
            }

            case CommandKind.Put:
            {
                var f = command.Fields;
                var initial = f.Initial.IsSet ? f.Initial.Value : c?.Initial ?? 0;
                var min = f.Min.IsSet ? f.Min.Value : c?.Min;
                var max = f.Max.IsSet ? f.Max.Value : c?.Max;
                var value = f.Value.IsSet ? f.Value.Value : c is null ? initial : c.Value;
                Int128 lo = min ?? long.MinValue, hi = max ?? long.MaxValue;
                if (lo > hi)
                {
                    return ModelOutcome.Fail("invalid_bounds");
                }
                if (value < lo || value > hi || initial < lo || initial > hi)
                {
                    return ModelOutcome.Fail("invalid_value");
                }
                return new(null, new ModelCounter(command.Name, value, initial, min, max, (c?.Version ?? 0) + 1, c?.CreatedAt ?? now, now), c is null, false);
            }

            case CommandKind.Reset:
                return c is null
                    ? ModelOutcome.Fail("counter_not_found")
                    : new(null, c with { Value = c.Initial, Version = c.Version + 1, UpdatedAt = now }, false, false);

            case CommandKind.Delete:
                return c is null ? ModelOutcome.Fail("counter_not_found") : new(null, c, false, true);

            default:
                throw new ArgumentOutOfRangeException(nameof(command), command.Kind, null);
        }
    }

    /// <summary>
    /// Throws, naming the seed and step, unless the rules' result is what the model said.
    /// </summary>
    public static void AssertSame(CounterCommand command, ModelOutcome expected, CommandResult actual, string where)
    {
        string Fail(string what) =>
            $"{where}: {Describe(command)}: {what}\n  model: {Describe(expected)}\n  actual: {Describe(actual)}";

        if (expected.Code is { } code)
        {
            Assert.True(actual.Status == CommandStatus.Failed && actual.Error?.Code == code, Fail("different outcome"));
            Assert.True(!actual.Changed && actual.Counter is null, Fail("a failed command must change nothing"));
            if (code == "out_of_range")
            {
                var current = actual.Error!.Current;
                Assert.True(current is not null && current.Value == expected.Counter!.Value && current.Min == expected.Counter.Min
                    && current.Max == expected.Counter.Max, Fail("out_of_range must carry the counter's value and bounds"));
            }
            return;
        }

        var status = expected.Deleted ? CommandStatus.Deleted : expected.Created ? CommandStatus.Created : CommandStatus.Ok;
        Assert.True(actual.Status == status, Fail("different status"));
        Assert.True(actual.Counter is not null && SameCounter(expected.Counter!, actual.Counter), Fail("different counter"));
        // A get changes nothing; every successful increment, decrement, put, reset and delete does.
        Assert.True(actual.Changed == (command.Kind != CommandKind.Get), Fail("Changed flag is wrong"));
    }

    public static bool SameCounter(ModelCounter expected, Counter actual) =>
        expected.Name == actual.Name && expected.Value == actual.Value && expected.Initial == actual.Initial
        && expected.Min == actual.Min && expected.Max == actual.Max && expected.Version == actual.Version
        && expected.CreatedAt == actual.CreatedAt && expected.UpdatedAt == actual.UpdatedAt;

    public static string Describe(ModelCounter? c) => c is null
        ? "none"
        : $"{c.Name}={c.Value} initial {c.Initial} [{c.Min?.ToString(CultureInfo.InvariantCulture) ?? "-inf"}, {c.Max?.ToString(CultureInfo.InvariantCulture) ?? "+inf"}] v{c.Version} created {c.CreatedAt} updated {c.UpdatedAt}";

    public static string Describe(Counter? c) => c is null
        ? "none"
        : Describe(new ModelCounter(c.Name, c.Value, c.Initial, c.Min, c.Max, c.Version, c.CreatedAt, c.UpdatedAt));

    private static string Describe(ModelOutcome o) =>
        o.Code is { } code ? $"fails {code} (counter {Describe(o.Counter)})" : $"{(o.Created ? "creates" : o.Deleted ? "deletes" : "ok")} {Describe(o.Counter)}";

    private static string Describe(CommandResult r) =>
        r.Error is { } e ? $"fails {e.Code} (counter {Describe(e.Current)})" : $"{r.Status} changed={r.Changed} {Describe(r.Counter)}";

    public static string Describe(CounterCommand command)
    {
        var p = command.Precondition.Kind switch
        {
            PreconditionKind.IfMatch => $" If-Match {string.Join(",", command.Precondition.Versions!)}",
            PreconditionKind.IfMatchAny => " If-Match *",
            PreconditionKind.IfNoneMatchAny => " If-None-Match *",
            _ => "",
        };
        var f = command.Fields;
        var args = command.Kind switch
        {
            CommandKind.Increment or CommandKind.Decrement => $" by {command.Amount}",
            CommandKind.Put => $" {{{Field("value", f.Value)}{Field("initial", f.Initial)}{Field("min", f.Min)}{Field("max", f.Max)} }}",
            _ => "",
        };
        return $"{command.Kind} '{command.Name}'{args}{p}";
    }

    private static string Field<T>(string name, Optional<T> field) =>
        field.IsSet ? $" {name}: {(field.Value is null ? "null" : Convert.ToString(field.Value, CultureInfo.InvariantCulture))}" : "";

    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\z")]
    private static partial Regex NamePattern();
}
