using System.Reflection;
using System.Text.RegularExpressions;
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
        var settings = SettingsCheck.Sections.SelectMany(entry =>
            Settable(entry.Options).Select(name => entry.Section is null ? name : $"{entry.Section}:{name}"));

        var missing = settings.Where(setting => !doc.Contains($"| `{setting}` |", StringComparison.Ordinal)).ToList();
        Assert.True(missing.Count == 0,
            $"docs/operations.md has no row for: {string.Join(", ", missing)}. Add each to the table under \"Configuration\" (default, allowed values, meaning).");
    }

    private static IEnumerable<string> Settable(Type options) =>
        options.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite).Select(p => p.Name);

    [Fact]
    public void ScalingGuideIsLinkedNamesFilesThatExistAndMarksItsPlaceholders()
    {
        Assert.Contains("(scaling.md)", File.ReadAllText(DeployFiles.PathOf("docs/operations.md")), StringComparison.Ordinal);
        var guide = File.ReadAllText(DeployFiles.PathOf("docs/scaling.md"));
        var missing = Regex.Matches(guide, @"`(deploy/[A-Za-z0-9_./-]+)`").Select(m => m.Groups[1].Value)
            .Where(path => !File.Exists(DeployFiles.PathOf(path)) && !Directory.Exists(DeployFiles.PathOf(path))).Distinct().ToList();
        Assert.True(missing.Count == 0, $"docs/scaling.md names files that do not exist: {string.Join(", ", missing)}");
        // Measurements still to come are marked one way, so they can be found and filled in.
        Assert.Contains("TBD (measured in docs/benchmarks.md)", guide, StringComparison.Ordinal);
        Assert.DoesNotMatch(@"\bTBD\b(?! \(measured in docs/benchmarks\.md\))", guide);
    }
}
