using Tally.Server.Counters;

namespace Tally.Server.Tests.Counters;

/// <summary>
/// Long random command sequences through <see cref="CounterRules"/>, every result compared with
/// <see cref="CounterModel"/>. A failure names the seed and step; rerun that seed to replay it.
/// </summary>
public class CounterRulesModelTests
{
    private const int Steps = 2_000;

    public static TheoryData<int> Seeds()
    {
        var seeds = new TheoryData<int>();
        for (var seed = 1; seed <= 20; seed++)
        {
            seeds.Add(seed);
        }
        return seeds;
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void RulesAgreeWithTheModel(int seed)
    {
        var model = new CounterModel();
        var generator = new CommandGenerator(seed);
        var state = new Dictionary<string, Counter>(StringComparer.Ordinal);
        var outcomes = new Dictionary<string, int>(StringComparer.Ordinal);

        for (var step = 0; step < Steps; step++)
        {
            var now = 1_000_000 + step;
            var command = generator.Next(model);
            var actual = CounterRules.Apply(command, state.GetValueOrDefault(command.Name), now);
            var expected = model.Apply(command, now);
            CounterModel.AssertSame(command, expected, actual, $"seed {seed}, step {step}");

            if (actual.Changed)
            {
                if (actual.Status == CommandStatus.Deleted)
                {
                    state.Remove(command.Name);
                }
                else
                {
                    state[command.Name] = actual.Counter!;
                }
            }
            var key = actual.Error?.Code ?? $"{command.Kind}:{actual.Status}";
            outcomes[key] = outcomes.GetValueOrDefault(key) + 1;
        }

        // The generator must reach the interesting outcomes, or the comparison proves little.
        foreach (var code in new[] { "out_of_range", "version_mismatch", "invalid_value", "invalid_bounds", "invalid_amount", "counter_not_found" })
        {
            Assert.True(outcomes.GetValueOrDefault(code) > 0, $"seed {seed} never produced {code}: {string.Join(", ", outcomes)}");
        }
        Assert.True(outcomes.GetValueOrDefault("Increment:Ok") + outcomes.GetValueOrDefault("Decrement:Ok") > Steps / 10,
            $"seed {seed}: too few successful changes: {string.Join(", ", outcomes)}");
    }
}
