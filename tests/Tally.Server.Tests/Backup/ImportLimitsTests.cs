using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Tally.Server.Tests.Batch;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Backup;

/// <summary><c>POST /admin/import</c> reads its body as a stream of bounded lines (a 10 MB line: see Process/ImportProcessTests).</summary>
public class ImportLimitsTests
{
    private const string Line = """{"name": "NAME", "value": 1, "initial": 0, "min": null, "max": null, "version": 1, "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z"}""";

    [Fact]
    public async Task ALineJustUnderTheLimitIsParsedAndOneJustOverIsNot()
    {
        await using var app = new TallyApplication("memory");
        var client = app.CreateClient();
        var padded = Line.Replace("NAME", "padded", StringComparison.Ordinal);
        var fits = padded[..^1] + new string(' ', 64 * 1024 - padded.Length) + "}";
        Assert.Equal(64 * 1024, Encoding.UTF8.GetByteCount(fits));

        var ok = await client.PostAsync("/admin/import", new StringContent(fits + "\r\n", Encoding.UTF8, "application/x-ndjson"));
        Assert.Equal(1, (int)JsonNode.Parse(await ok.Content.ReadAsStringAsync())!["imported"]!);

        var tooLong = await client.PostAsync("/admin/import", new StringContent(fits.Replace("padded", "padded2", StringComparison.Ordinal), Encoding.UTF8, "application/x-ndjson"));
        var problem = await tooLong.ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_body");
        Assert.Contains("Line 1", (string?)problem["detail"], StringComparison.Ordinal);
    }

    [Fact]
    public async Task AByteOrderMarkAndALastLineWithoutNewlineAreAccepted()
    {
        await using var app = new TallyApplication("memory");
        var client = app.CreateClient();
        var body = new byte[] { 0xEF, 0xBB, 0xBF }.Concat(Encoding.UTF8.GetBytes(Line.Replace("NAME", "a", StringComparison.Ordinal) + "\n" + Line.Replace("NAME", "b", StringComparison.Ordinal))).ToArray();

        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new("application/x-ndjson");
        var response = await client.PostAsync("/admin/import", content);

        Assert.Equal(2, (int)JsonNode.Parse(await response.Content.ReadAsStringAsync())!["imported"]!);
        Assert.Equal(1L, (await client.GetCounterAsync("b")).Value);
    }
}
