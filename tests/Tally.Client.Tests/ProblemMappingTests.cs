using System.Collections;
using System.Text.Json;

namespace Tally.Client.Tests;

/// <summary>Every problem code the server has maps to a typed exception, and the README's table says which.</summary>
public sealed class ProblemMappingTests
{
    [Fact]
    public void EveryCodeOfTheServerMapsToTheExceptionTheReadmeNames()
    {
        var readme = File.ReadAllLines(Path.Combine(Infrastructure.Cli.RepositoryRoot, "src", "Tally.Client", "README.md"))
            .Where(line => line.StartsWith("| `", StringComparison.Ordinal)).ToList();
        var codes = ServerCatalog();
        Assert.Contains(codes, code => code.Code == "identity_provider_unavailable");

        foreach (var (code, status) in codes)
        {
            using var problem = JsonDocument.Parse(JsonSerializer.Serialize(new { type = "urn:tally:problem:" + code, title = "t", status, detail = "d", code }));
            var exception = Problems.From(problem.RootElement, status);

            Assert.True(exception.GetType() != typeof(TallyException), $"{code} ({status}) maps to no exception of its own.");
            var row = readme.SingleOrDefault(line => line.Split('|')[1].Contains($"`{exception.GetType().Name}`", StringComparison.Ordinal));
            Assert.True(row is not null, $"The README's table has no row for {exception.GetType().Name} ({code}).");
            Assert.True(row!.Split('|')[2].Contains($"`{code}`", StringComparison.Ordinal), $"The README's row of {exception.GetType().Name} does not list {code}.");
        }
    }

    [Fact]
    public void AnIdentityProviderThatCannotBeReachedIsUnavailableLikeTheStore()
    {
        using var problem = JsonDocument.Parse("""{"code":"identity_provider_unavailable","status":503,"title":"Identity provider unavailable","detail":"d"}""");

        var exception = Assert.IsType<StoreUnavailableException>(Problems.From(problem.RootElement, 503, TimeSpan.FromSeconds(2)));

        Assert.Equal(("identity_provider_unavailable", 503, (TimeSpan?)TimeSpan.FromSeconds(2)), (exception.Code, exception.Status, exception.RetryAfter));
    }

    /// <summary>Tally.Server.Http.Problems.Catalog: the codes the server answers, with their statuses.</summary>
    private static List<(string Code, int Status)> ServerCatalog()
    {
        var problems = typeof(Program).Assembly.GetType("Tally.Server.Http.Problems", throwOnError: true)!;
        var catalog = (IEnumerable)problems.GetField("Catalog")!.GetValue(null)!;
        var codes = new List<(string, int)>();
        foreach (var entry in catalog)
        {
            var type = entry.GetType().GetProperty("Value")!.GetValue(entry)!;
            codes.Add(((string)type.GetType().GetProperty("Code")!.GetValue(type)!, (int)type.GetType().GetProperty("Status")!.GetValue(type)!));
        }
        Assert.True(codes.Count > 40, $"Only {codes.Count} codes read from the server's catalog.");
        return codes;
    }
}
