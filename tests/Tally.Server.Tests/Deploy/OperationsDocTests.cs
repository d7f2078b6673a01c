using System.Reflection;
using Tally.Server.Configuration;

namespace Tally.Server.Tests.Deploy;

/// <summary>docs/operations.md documents every setting Tally binds, so a new setting cannot go unmentioned.</summary>
[Trait("Layer", "Deploy")]
public class OperationsDocTests
{
    [Fact]
    public void EverySettingIsInTheConfigurationTable()
    {
        var doc = File.ReadAllText(DeployFiles.PathOf("docs/operations.md"));
        var settings = Settable(typeof(TallyOptions))
            .Concat(Settable(typeof(RateLimitOptions)).Select(name => $"{RateLimitOptions.Section}:{name}"));

        var missing = settings.Where(setting => !doc.Contains($"| `{setting}` |", StringComparison.Ordinal)).ToList();
        Assert.True(missing.Count == 0,
            $"docs/operations.md has no row for: {string.Join(", ", missing)}. Add each to the table under \"Configuration\" (default, allowed values, meaning).");
    }

    private static IEnumerable<string> Settable(Type options) =>
        options.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite).Select(p => p.Name);
}
