using Tally.Server.Counters;

namespace Tally.Server.Tests.Counters;

/// <summary>
/// Random commands for the model tests, biased toward where bugs hide: values and amounts near
/// ±2^63, near the bounds and exactly at the room left; versions just off the current one.
/// Deterministic for a seed, so a failure can be replayed.
/// </summary>
internal sealed class CommandGenerator(int seed)
{
    private const long TwoTo62 = 1L << 62;
    private static readonly string[] Names = ["a", "b", "c:d", "-bad"];

    private readonly Random _random = new(seed);

    public CounterCommand Next(CounterModel model)
    {
        // Mostly three names so commands meet the same counter often; rarely an invalid one.
        var name = _random.Next(100) < 2 ? Names[3] : Names[_random.Next(3)];
        var current = model.Find(name);
        var precondition = NextPrecondition(current);
        return _random.Next(100) switch
        {
            < 30 => CounterCommand.Increment(name, NextAmount(current, up: true), precondition),
            < 55 => CounterCommand.Decrement(name, NextAmount(current, up: false), precondition),
            < 77 => CounterCommand.Put(name, NextFields(current), precondition),
            < 85 => CounterCommand.Reset(name, precondition),
            < 91 => CounterCommand.Delete(name, precondition),
            _ => CounterCommand.Get(name),
        };
    }

    private Precondition NextPrecondition(ModelCounter? current)
    {
        var version = current?.Version ?? 0;
        return _random.Next(100) switch
        {
            < 75 => Precondition.None,
            < 85 => Precondition.IfMatch(version),
            < 90 => Precondition.IfMatch(version + (_random.Next(2) == 0 ? 1 : -1)),
            < 93 => Precondition.IfMatch(version + 2, _random.Next(2) == 0 ? version : version + 1, 0),
            < 97 => new Precondition(PreconditionKind.IfMatchAny),
            _ => new Precondition(PreconditionKind.IfNoneMatchAny),
        };
    }

    private long NextAmount(ModelCounter? current, bool up)
    {
        var value = current?.Value ?? 0;
        // The room left before the bound (or the 64-bit limit) in the direction of travel.
        Int128 room = up ? (Int128)(current?.Max ?? long.MaxValue) - value : (Int128)value - (current?.Min ?? long.MinValue);
        return _random.Next(16) switch
        {
            0 => 1,
            1 => 2,
            2 => 3,
            3 => 5,
            4 => long.MaxValue,
            5 => long.MaxValue - _random.Next(1, 3),
            6 => TwoTo62 + _random.Next(-1, 2),
            7 => Clamp(room),
            8 => Clamp(room + 1),
            9 => Clamp(room - 1),
            10 => Clamp(room + _random.Next(2, 5)),
            11 => _random.NextInt64(1, long.MaxValue),
            12 => _random.Next(100) < 50 ? 0 : -_random.Next(1, 3), // invalid amounts
            13 => Clamp((Int128)long.MaxValue - value + _random.Next(-1, 2)),
            _ => _random.Next(1, 100),
        };
    }

    private static long Clamp(Int128 amount) => amount < 1 ? 1 : amount > long.MaxValue ? long.MaxValue : (long)amount;

    /// <summary>A value near the interesting places: the 64-bit limits, zero, ±2^62, the current value and bounds.</summary>
    private long NextValue(ModelCounter? current)
    {
        Int128 v = _random.Next(13) switch
        {
            0 => long.MaxValue,
            1 => long.MaxValue - _random.Next(1, 4),
            2 => long.MinValue,
            3 => long.MinValue + _random.Next(1, 4),
            4 => 0,
            5 => _random.Next(-3, 4),
            6 => _random.NextInt64(long.MinValue, long.MaxValue),
            7 => TwoTo62 + _random.Next(-2, 3),
            8 => -TwoTo62 + _random.Next(-2, 3),
            9 => (Int128)(current?.Value ?? 0) + _random.Next(-3, 4),
            10 => (Int128)(current?.Min ?? long.MinValue) + _random.Next(-2, 3),
            11 => (Int128)(current?.Max ?? long.MaxValue) + _random.Next(-2, 3),
            _ => _random.Next(-1000, 1000),
        };
        return v < long.MinValue ? long.MinValue : v > long.MaxValue ? long.MaxValue : (long)v;
    }

    private CounterFields NextFields(ModelCounter? current)
    {
        // Four sorted samples give min <= value, initial <= max most of the time, so most PUTs
        // succeed and leave tight bounds; each field is still often omitted or set to null.
        var samples = new[] { NextValue(current), NextValue(current), NextValue(current), NextValue(current) };
        Array.Sort(samples);
        var consistent = _random.Next(100) < 70;
        if (!consistent)
        {
            _random.Shuffle(samples);
        }
        var (value, initial) = _random.Next(2) == 0 ? (samples[1], samples[2]) : (samples[2], samples[1]);
        return new CounterFields(
            _random.Next(100) < 60 ? Optional<long>.Of(value) : default,
            _random.Next(100) < 40 ? Optional<long>.Of(initial) : default,
            NextBound(samples[0]),
            NextBound(samples[3]));
    }

    private Optional<long?> NextBound(long bound) => _random.Next(100) switch
    {
        < 40 => default,
        < 55 => Optional<long?>.Of(null),
        _ => Optional<long?>.Of(bound),
    };
}
