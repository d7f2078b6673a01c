using System.Net;
using System.Text.RegularExpressions;
using Tally.Server.Http;
using Tally.Server.Tests.Deploy;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Http;

/// <summary>What docs/api.md and README.md say about errors is what Tally answers.</summary>
public partial class ProblemDocsTests
{
    [Fact]
    public void EveryCodeOfTheCatalogHasARowWithItsStatusInTheDocsErrorTable()
    {
        var text = File.ReadAllText(DeployFiles.PathOf("docs/api.md"));
        var table = text[text.IndexOf("| code | status | title | when |", StringComparison.Ordinal)..];
        var rows = table.Split('\n').TakeWhile(line => line.StartsWith('|')).Select(line => line.Split('|')).ToList();

        var missing = Problems.Catalog.Values
            .Where(type => !rows.Any(cells => cells[1].Contains($"`{type.Code}`", StringComparison.Ordinal) && cells[2].Trim() == $"{type.Status}"))
            .Select(type => $"{type.Code} ({type.Status})").ToList();

        Assert.True(missing.Count == 0, $"docs/api.md's error table lacks: {string.Join(", ", missing)}");
    }

    [Fact]
    public void TheDocsListVersionOnVersionMismatchAmongTheExtensions()
    {
        var text = File.ReadAllText(DeployFiles.PathOf("docs/api.md"));
        var extensions = text[text.IndexOf("- and only the documented extensions:", StringComparison.Ordinal)..];
        extensions = extensions[..extensions.IndexOf("\n\n", StringComparison.Ordinal)];

        Assert.Contains("`version` on `version_mismatch`", extensions, StringComparison.Ordinal);
    }

    /// <summary>The README shows an out_of_range answer; its detail is the one the server gives for the same request.</summary>
    [Fact]
    public async Task TheReadmeOutOfRangeSampleShowsTheRealDetail()
    {
        var readme = File.ReadAllLines(DeployFiles.PathOf("README.md"));
        var start = Array.FindIndex(readme, line => line.Contains("/counters/stock:sku-42/increment?by=1000", StringComparison.Ordinal));
        Assert.True(start >= 0, "README.md no longer shows the out_of_range example.");
        var shown = string.Join(" ", readme.Skip(start + 1).TakeWhile(line => line.StartsWith('#')).Select(line => line.TrimStart('#', ' ')));
        var sample = SampleDetail().Match(shown);
        Assert.True(sample.Success, $"No detail in the README's sample: {shown}");

        await using var app = new TallyApplication("memory");
        var client = app.CreateClient();
        await client.SetUpCounterAsync("stock:sku-42", """{"value": 10, "min": 0, "max": 100}""");
        var problem = await (await client.PostAsync("/counters/stock:sku-42/increment?by=1000", null)).ReadProblemAsync(HttpStatusCode.Conflict, "out_of_range");

        Assert.Equal((string?)problem["detail"], sample.Groups[1].Value);
    }

    [GeneratedRegex("\"detail\":\"([^\"]*)\"")]
    private static partial Regex SampleDetail();
}
