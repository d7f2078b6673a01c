using System.Net;
using System.Text.Json;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Auth;

/// <summary>Key names are printable text: nothing that hides, reorders or breaks what a listing or a log shows.</summary>
public class KeyNameTests
{
    [Theory]
    [InlineData("ci\u202Eexe.txt", "bidirectional")] // right-to-left override
    [InlineData("a\u202Ab", "bidirectional")]
    [InlineData("a\u2066b\u2069", "bidirectional")] // isolates
    [InlineData("a\u200Fb", "bidirectional")] // right-to-left mark
    [InlineData("a\u061Cb", "bidirectional")] // Arabic letter mark
    [InlineData("ad\u200Bmin", "invisible")] // zero-width space
    [InlineData("a\uFEFFb", "invisible")]
    [InlineData("line\u2028break", "separator")]
    [InlineData("para\u2029break", "separator")]
    [InlineData("bell\u0007", "control")]
    [InlineData("next\u0085line", "control")]
    [InlineData("del\u007F", "control")]
    [InlineData("private\uE000use", "private-use")]
    [InlineData("unassigned\u0378", "not an assigned")]
    [InlineData("   ", "empty")]
    public async Task ANameThatIsNotPrintableTextIsRefusedNamingTheRule(string name, string rule)
    {
        await using var app = new TallyApplication("memory");
        var admin = app.CreateClient();

        var problem = await (await admin.PostAsync("/admin/keys", Api.JsonBody(JsonSerializer.Serialize(new { name, scopes = new[] { "read" } }))))
            .ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_key_name");

        Assert.Contains(rule, (string?)problem["detail"], StringComparison.Ordinal);
        Assert.Empty(await admin.ListKeysAsync());
    }

    [Fact]
    public async Task ANameWithAnUnpairedSurrogateIsRefusedNotAnError()
    {
        await using var app = new TallyApplication("memory");
        var admin = app.CreateClient();

        var response = await admin.PostAsync("/admin/keys", Api.JsonBody("""{"name": "half \ud83d pair", "scopes": ["read"]}"""));

        await response.ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_key_name");
        Assert.Empty(await admin.ListKeysAsync());
    }

    [Fact]
    public async Task ANameOfMoreThanAHundredCharactersIsRefused()
    {
        await using var app = new TallyApplication("memory");
        var admin = app.CreateClient();

        var problem = await (await admin.PostAsync("/admin/keys", Api.JsonBody(JsonSerializer.Serialize(new { name = new string('x', 101), scopes = new[] { "read" } }))))
            .ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_key_name");

        Assert.Contains("at most 100", (string?)problem["detail"], StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("ci")]
    [InlineData("Zoë's deploy key – build 7 (staging)")]
    [InlineData("日本語のキー")]
    [InlineData("مفتاح النشر")] // right-to-left text itself is fine; only the invisible controls are not
    [InlineData("🔑 deploy")]
    [InlineData("e\u0301clair")] // a combining mark
    public async Task PrintableNamesInAnyScriptAreAccepted(string name)
    {
        await using var app = new TallyApplication("memory");
        var admin = app.CreateClient();

        var created = await admin.CreateKeyAsync(name, ["read"]);

        Assert.Equal(name, created.Name);
        Assert.Equal(name, (string?)Assert.Single(await admin.ListKeysAsync())!["name"]);
    }

    [Fact]
    public async Task TheLengthLimitCountsCharactersNotUtf16Units()
    {
        await using var app = new TallyApplication("memory");
        var name = string.Concat(Enumerable.Repeat("🔑", 100)); // 100 characters, 200 UTF-16 units

        var created = await app.CreateClient().CreateKeyAsync(name, ["read"]);

        Assert.Equal(name, created.Name);
    }

    [Fact]
    public async Task TheDetailSaysWhichCharacterIsRefused()
    {
        await using var app = new TallyApplication("memory");

        var problem = await (await app.CreateClient().PostAsync("/admin/keys", Api.JsonBody("""{"name": "ab\u202Ec", "scopes": ["read"]}""")))
            .ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_key_name");

        var detail = (string)problem["detail"]!;
        Assert.Contains("U+202E", detail, StringComparison.Ordinal);
        Assert.Contains("character 3", detail, StringComparison.Ordinal);
        Assert.DoesNotContain('\u202E', detail); // the name is not echoed: the override would reorder the detail itself
    }
}
