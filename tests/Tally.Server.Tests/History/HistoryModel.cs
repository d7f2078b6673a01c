using System.Globalization;
using Tally.Server.Counters;
using Tally.Server.History;
using Tally.Server.Storage;
using Tally.Server.Tests.Counters;
using Tally.Server.Tests.Storage;

namespace Tally.Server.Tests.History;

/// <summary>
/// API.md's history written as plainly as possible, as an oracle for the engines: fed the commands the
/// <see cref="CounterModel"/> applied and their outcomes, it keeps every counter's buckets with exact sums (in
/// <see cref="Int128"/>; a store saturates them at 2^63-1), drops a counter's history when it is deleted, and knows which
/// counters only ever changed by increment and decrement since they were created.
/// </summary>
internal sealed class HistoryModel
{
    private static readonly (HistoryInterval Interval, long Length)[] Intervals =
        [(HistoryInterval.Minute, 60_000), (HistoryInterval.Hour, 3_600_000), (HistoryInterval.Day, 86_400_000)];

    private readonly Dictionary<string, SortedDictionary<long, ModelBucket>[]> _buckets = new(StringComparer.Ordinal);
    private readonly Dictionary<string, bool> _onlyMoved = new(StringComparer.Ordinal);

    /// <summary>How often the invariant of a counter that only ever moved by increment and decrement was checked.</summary>
    public int InvariantChecks { get; private set; }

    /// <summary>Follows one command the counter model applied at <paramref name="now"/> (before: whether the counter existed).</summary>
    public void Apply(CounterCommand command, ModelOutcome outcome, bool existedBefore, long now)
    {
        if (outcome.Code is not null || command.Kind == CommandKind.Get)
        {
            return;
        }
        var name = command.Name;
        if (outcome.Deleted)
        {
            _buckets.Remove(name);
            _onlyMoved.Remove(name);
            return;
        }
        var moved = command.Kind is CommandKind.Increment or CommandKind.Decrement;
        _onlyMoved[name] = existedBefore ? _onlyMoved.GetValueOrDefault(name) && moved : moved;
        if (!_buckets.TryGetValue(name, out var series))
        {
            series = [new(), new(), new()];
            _buckets[name] = series;
        }
        foreach (var (interval, length) in Intervals)
        {
            var start = now - now % length;
            var bucket = series[(int)interval].GetValueOrDefault(start) ?? new ModelBucket();
            switch (command.Kind)
            {
                case CommandKind.Increment:
                    bucket.Increments += command.Amount;
                    break;
                case CommandKind.Decrement:
                    bucket.Decrements += command.Amount;
                    break;
                default:
                    bucket.Sets++;
                    break;
            }
            bucket.Value = outcome.Counter!.Value;
            series[(int)interval][start] = bucket;
        }
    }

    /// <summary>
    /// Asserts that the store holds exactly the model's buckets for every name, and, for each counter that only ever
    /// moved by increment and decrement, that its buckets' sums add up to its value (it started at 0) and its last
    /// bucket's value is its value.
    /// </summary>
    public async Task AssertStoreHoldsAsync(ICounterStore store, CounterModel counters, IEnumerable<string> names, string where)
    {
        foreach (var name in names)
        {
            foreach (var (interval, _) in Intervals)
            {
                var stored = await store.ReadHistoryAsync(name, interval, 0, long.MaxValue, CancellationToken.None);
                var expected = _buckets.TryGetValue(name, out var series)
                    ? series[(int)interval].Select(entry => entry.Value.Stored(entry.Key)).ToList()
                    : [];
                Assert.True(stored.SequenceEqual(expected),
                    $"{where}: the {interval} history of '{name}' is\n  {Describe(stored)}\nbut the model says\n  {Describe(expected)}");
                if (counters.Find(name) is { } counter && _onlyMoved.GetValueOrDefault(name))
                {
                    CheckInvariant(name, interval, stored, counter.Value, where);
                }
            }
        }
    }

    private void CheckInvariant(string name, HistoryInterval interval, IReadOnlyList<HistoryBucket> stored, long value, string where)
    {
        Assert.True(stored.Count > 0, $"{where}: '{name}' changed but has no {interval} bucket");
        Assert.True(stored[^1].Value == value, $"{where}: the last {interval} bucket of '{name}' ends at {stored[^1].Value}, the counter is {value}");
        if (stored.Any(bucket => bucket.Increments == long.MaxValue || bucket.Decrements == long.MaxValue))
        {
            return; // a saturated sum no longer adds up (the full comparison above still checked it)
        }
        var net = stored.Aggregate(Int128.Zero, (sum, bucket) => sum + bucket.Increments - bucket.Decrements);
        Assert.True(net == value, $"{where}: the {interval} buckets of '{name}' add up to {net}, the counter is {value}");
        InvariantChecks++;
    }

    private static string Describe(IEnumerable<HistoryBucket> buckets) =>
        string.Join("\n  ", buckets.Select(b => string.Create(CultureInfo.InvariantCulture, $"{b.Start}: +{b.Increments} -{b.Decrements} sets {b.Sets} value {b.Value}")))
        is { Length: > 0 } text ? text : "(none)";

    private sealed class ModelBucket
    {
        public Int128 Increments;
        public Int128 Decrements;
        public Int128 Sets;
        public long Value;

        public HistoryBucket Stored(long start) => new(start, Saturated(Increments), Saturated(Decrements), Saturated(Sets), Value);

        private static long Saturated(Int128 sum) => sum > long.MaxValue ? long.MaxValue : (long)sum;
    }
}

/// <summary>Random model runs with history: the store's commits, its counters and its history, all checked against the models.</summary>
internal static class HistoryModelRuns
{
    public const long Start = 1_700_000_000_000;

    /// <summary>Every name the command generator uses, including the invalid one.</summary>
    public static readonly string[] Names = ["a", "b", "c:d"];

    /// <summary>Runs stay within this much of <see cref="Start"/>, inside the shortest retention (48 h of minutes): nothing is pruned.</summary>
    private const long Span = 40 * 3_600_000L;

    /// <summary>
    /// Moves the clock by a few milliseconds (commits in one bucket), seconds, minutes, or now and then hours, so that runs
    /// cross minute, hour and day boundaries.
    /// </summary>
    public static void Advance(ManualClock clock, Random random)
    {
        var step = random.Next(100) switch
        {
            < 60 => 1 + random.Next(3),
            < 85 => random.Next(1, 120) * 1000L,
            < 97 => random.Next(1, 60) * 60_000L,
            _ => random.Next(1, 4) * 3_600_000L,
        };
        clock.NowMs += clock.NowMs + step - Start > Span ? 1 : step;
    }

    /// <summary>
    /// One random batch of 1–8 commands, committed to the store and decided by both models in order; asserts every result,
    /// the counters, and the history of every name. Returns the number of commands.
    /// </summary>
    public static async Task<int> CommitBatchAndCheckAsync(
        ICounterStore store, CounterModel model, HistoryModel history, CommandGenerator generator, Random random, ManualClock clock, string where)
    {
        Advance(clock, random);
        var size = random.Next(1, 9);
        var commands = new List<CounterCommand>(size);
        var expected = new List<ModelOutcome>(size);
        for (var i = 0; i < size; i++)
        {
            var command = generator.Next(model);
            var existed = model.Find(command.Name) is not null;
            var outcome = model.Apply(command, clock.NowMs);
            history.Apply(command, outcome, existed, clock.NowMs);
            commands.Add(command);
            expected.Add(outcome);
        }
        var results = await store.CommitAsync([.. commands]);
        for (var i = 0; i < size; i++)
        {
            CounterModel.AssertSame(commands[i], expected[i], results[i], $"{where}, command {i} of {size}");
        }
        await StoreModelTests.AssertStoreHoldsAsync(store, model, where);
        await history.AssertStoreHoldsAsync(store, model, Names, where);
        return size;
    }
}
