using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;
using Tally.Server.Tests.Batch;
using Tally.Server.Tests.Infrastructure;
using Tally.Server.Tests.Process;

namespace Tally.Server.Tests.Backup;

/// <summary><c>GET /admin/export</c> and <c>POST /admin/import</c>: every counter as JSON lines, to move between stores.</summary>
public class ExportImportTests
{
    private const string ValidLine = """{"name": "valid", "value": 1, "initial": 0, "min": null, "max": null, "version": 1, "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z"}""";

    [Fact]
    public async Task ExportIsOneCounterPerLineInNameOrder()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        string[] names = ["b", "a", "B", "a:1", "a.b", "0", "a-", "Z", "a0", "a:"];
        foreach (var name in names)
        {
            await client.SetUpCounterAsync(name, $$"""{"value": {{name.Length}}}""");
        }
        await client.IncrementAsync("b");

        var text = await ExportAsync(client);

        Assert.EndsWith("\n", text, StringComparison.Ordinal);
        var lines = text.TrimEnd('\n').Split('\n');
        Assert.Equal(names.Order(StringComparer.Ordinal), lines.Select(line => (string)JsonNode.Parse(line)!["name"]!));
        foreach (var line in lines)
        {
            var exported = JsonNode.Parse(line)!;
            var get = JsonNode.Parse(await client.GetStringAsync($"/counters/{(string)exported["name"]!}"));
            Assert.True(JsonNode.DeepEquals(get, exported), $"{line} is not the counter GET shows: {get!.ToJsonString()}");
        }
    }

    [Fact]
    public async Task ExportOfNoCountersIsEmpty()
    {
        await using var app = new TallyApplication("memory");
        Assert.Equal(string.Empty, await ExportAsync(app.CreateClient()));
    }

    [Theory]
    [InlineData("memory")]
    [InlineData("sqlite")]
    public async Task ImportIntoAFreshTallyReproducesEveryCounterExactly(string store)
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 11, 21, 22, 0, 0, TimeSpan.Zero));
        await using var source = new TallyApplication(clock: clock);
        var client = source.CreateClient();
        await client.SetUpCounterAsync("bounded", """{"value": 5, "initial": 2, "min": -10, "max": 10}""");
        await client.SetUpCounterAsync("extremes", """{"value": 9223372036854775807, "initial": -9223372036854775808, "min": -9223372036854775808, "max": 9223372036854775807}""");
        await client.SetUpCounterAsync("negative", """{"value": -42}""");
        clock.Advance(TimeSpan.FromMilliseconds(1500)); // so that updatedAt differs from createdAt
        for (var i = 0; i < 5; i++)
        {
            await client.IncrementAsync("bounded");
            await client.DecrementAsync("negative", """{"by": 1000}""");
        }
        await client.PostAsync("/counters/bounded/reset", null);
        await client.IncrementAsync("shop:orders:2026", """{"by": 12}""");
        var exported = await ExportAsync(client);
        var originals = new Dictionary<string, CounterJson>();
        foreach (var line in exported.TrimEnd('\n').Split('\n'))
        {
            var name = (string)JsonNode.Parse(line)!["name"]!;
            originals[name] = await client.GetCounterAsync(name);
        }
        Assert.Equal(4, originals.Count);
        Assert.Equal(7L, originals["bounded"].Version);
        Assert.NotEqual(originals["negative"].CreatedAt, originals["negative"].UpdatedAt);

        var target = new TallyApplication(store);
        var targetClient = target.CreateClient();
        var imported = await ImportAsync(targetClient, exported);

        Assert.Equal(HttpStatusCode.OK, imported.StatusCode);
        Assert.Equal(originals.Count, (int)JsonNode.Parse(await imported.Content.ReadAsStringAsync())!["imported"]!);
        Assert.Equal(exported, await ExportAsync(targetClient));
        foreach (var (name, original) in originals)
        {
            Assert.Equal(original, await targetClient.GetCounterAsync(name));
        }

        if (store == "sqlite")
        {
            target = await target.RestartAsync();
            targetClient = target.CreateClient();
            Assert.Equal(exported, await ExportAsync(targetClient));
        }
        // The counters go on from where they were: the next change is the next version.
        var next = await (await targetClient.IncrementAsync("bounded")).ReadCounterAsync();
        Assert.Equal((3L, 8L, originals["bounded"].CreatedAt), (next.Value, next.Version, next.CreatedAt));
        await target.DisposeAsync();
    }

    [Fact]
    public async Task ExportAndImportMoveThousandsOfCounters()
    {
        await using var source = new TallyApplication("memory");
        var client = source.CreateClient();
        for (var chunk = 0; chunk < 2; chunk++)
        {
            var ops = Enumerable.Range(chunk * 1000, 1000).Select(i => $$"""{"op": "set", "name": "n{{i:D4}}", "value": {{i}}}""").ToArray();
            await (await client.PostBatchAsync(atomic: true, ops)).ReadResultsAsync(1000);
        }
        await client.IncrementAsync("z");

        var exported = await ExportAsync(client);
        var names = exported.TrimEnd('\n').Split('\n').Select(line => (string)JsonNode.Parse(line)!["name"]!).ToList();
        Assert.Equal(2001, names.Count);
        Assert.Equal(names.Order(StringComparer.Ordinal).Distinct(), names);

        await using var target = new TallyApplication();
        var targetClient = target.CreateClient();
        var imported = await ImportAsync(targetClient, exported);
        Assert.Equal(2001, (int)JsonNode.Parse(await imported.Content.ReadAsStringAsync())!["imported"]!);
        Assert.Equal(exported, await ExportAsync(targetClient));
    }

    [Fact]
    public async Task ImportReplacesCountersOfTheSameNameAndKeepsTheOthers()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        await client.SetUpCounterAsync("a", """{"value": 100, "max": 1000}""");
        var kept = await client.SetUpCounterAsync("kept", """{"value": 7}""");
        const string line = """{"name": "a", "value": 3, "initial": 1, "min": 0, "max": null, "version": 40, "createdAt": "2025-05-01T10:00:00.123Z", "updatedAt": "2026-02-03T04:05:06.789Z"}""";

        var response = await ImportAsync(client, line);

        Assert.Equal(1, (int)JsonNode.Parse(await response.Content.ReadAsStringAsync())!["imported"]!);
        Assert.Equal(new CounterJson("a", 3, 1, 0, null, 40, new DateTime(2025, 5, 1, 10, 0, 0, 123, DateTimeKind.Utc), new DateTime(2026, 2, 3, 4, 5, 6, 789, DateTimeKind.Utc)),
            await client.GetCounterAsync("a"));
        Assert.Equal(kept, await client.GetCounterAsync("kept"));
    }

    [Fact]
    public async Task ImportSkipsBlankLinesAndAcceptsCrlf()
    {
        await using var app = new TallyApplication("memory");
        var client = app.CreateClient();
        var body = "\r\n" + ValidLine + "\r\n\r\n" + ValidLine.Replace("\"valid\"", "\"other\"", StringComparison.Ordinal) + "\r\n   \r\n";

        var response = await ImportAsync(client, body);

        Assert.Equal(2, (int)JsonNode.Parse(await response.Content.ReadAsStringAsync())!["imported"]!);
        Assert.Equal(1L, (await client.GetCounterAsync("other")).Value);
    }

    [Fact]
    public async Task ACounterTwiceInOneImportIsRefusedAndNothingIsWritten()
    {
        await using var app = new TallyApplication("memory");
        var client = app.CreateClient();
        var other = ValidLine.Replace("\"valid\"", "\"other\"", StringComparison.Ordinal);

        var response = await ImportAsync(client, string.Join("\n", ValidLine, other, ValidLine.Replace("\"value\": 1", "\"value\": 2", StringComparison.Ordinal)));

        var problem = await response.ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_body");
        Assert.Equal("Line 3: the counter 'valid' is on line 1 already; an export holds each counter once.", (string?)problem["detail"]);
        await client.AssertMissingAsync("valid");
        await client.AssertMissingAsync("other");
    }

    [Theory]
    [InlineData("""{"name": "a", "value": 1""", "invalid_json")]
    [InlineData("""not json""", "invalid_json")]
    [InlineData("""[1, 2]""", "invalid_body")]
    [InlineData("""{"name": "a", "value": 1.5, "initial": 0, "min": null, "max": null, "version": 1, "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z"}""", "invalid_value")]
    [InlineData("""{"name": "a", "value": 1, "initial": 0, "min": null, "max": null, "version": 1, "createdAt": "yesterday", "updatedAt": "2026-01-01T00:00:00Z"}""", "invalid_body")]
    [InlineData("""null""", "invalid_body")]
    [InlineData("""{"value": 1, "initial": 0, "min": null, "max": null, "version": 1, "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z"}""", "invalid_body")]
    [InlineData("""{"name": "has space", "value": 1, "initial": 0, "min": null, "max": null, "version": 1, "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z"}""", "invalid_name")]
    [InlineData("""{"name": "a", "value": 5, "initial": 5, "min": 6, "max": 4, "version": 1, "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z"}""", "invalid_bounds")]
    [InlineData("""{"name": "a", "value": 11, "initial": 0, "min": 0, "max": 10, "version": 1, "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z"}""", "invalid_value")]
    [InlineData("""{"name": "a", "value": 1, "initial": -1, "min": 0, "max": 10, "version": 1, "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z"}""", "invalid_value")]
    [InlineData("""{"name": "a", "value": 1, "initial": 0, "min": null, "max": null, "version": 0, "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z"}""", "invalid_value")]
    public async Task ABadLineImportsNothingAndNamesTheLine(string badLine, string code)
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        var existing = await client.SetUpCounterAsync("valid", """{"value": 50}""");
        var second = ValidLine.Replace("\"valid\"", "\"second\"", StringComparison.Ordinal);

        var response = await ImportAsync(client, string.Join("\n", ValidLine, second, badLine, ValidLine.Replace("\"valid\"", "\"fourth\"", StringComparison.Ordinal)));

        var problem = await response.ReadProblemAsync(HttpStatusCode.BadRequest, code);
        Assert.Contains("Line 3", (string?)problem["detail"], StringComparison.Ordinal);
        Assert.Equal(existing, await client.GetCounterAsync("valid"));
        await client.AssertMissingAsync("second");
        await client.AssertMissingAsync("fourth");
    }

    /// <summary>Each line is as strict as a request body, and its problem is said in plain words: what is wrong, on which line.</summary>
    [Theory]
    [InlineData("""{"name": "a", "value": "x", "version": 1, "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z"}""", "invalid_value", "'value' must be a 64-bit integer")]
    [InlineData("""{"name": "a", "value": 1, "version": 1, "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z", "bogus": 1}""", "invalid_body", "unknown member 'bogus'")]
    [InlineData("""{"name": "a", "value": 1, "version": 1, "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z", "value": 2}""", "invalid_body", "'value' appears twice")]
    [InlineData("""{"name": "a", "value": 1, "version": 1}""", "invalid_body", "'createdAt', 'updatedAt' are missing")]
    [InlineData("""{"name": "a", "value": 1, "version": 1, "createdAt": "2026-01-01T00:00:00Z"}""", "invalid_body", "'updatedAt' is missing")]
    [InlineData("""{"name": "a", "value": 1, "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z"}""", "invalid_body", "'version' is missing")]
    [InlineData("""{"name": "a", "version": 1, "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z"}""", "invalid_body", "'value' is missing")]
    [InlineData("""{"name": "a", "value": 1, "version": 1, "createdAt": "2026-01-02T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z"}""", "invalid_body", "'updatedAt' is earlier than 'createdAt'")]
    [InlineData("""{"name": "a", "value": 1, "version": 1, "createdAt": "0001-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z"}""", "invalid_body", "'createdAt' must be an ISO-8601 time")]
    [InlineData("""{"name": "a", "value": 1, "version": 1, "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-13-01T00:00:00Z"}""", "invalid_body", "'updatedAt' must be an ISO-8601 time")]
    [InlineData("""{"name": "a", "value": 1, "version": 1, "createdAt": 1767225600000, "updatedAt": "2026-01-01T00:00:00Z"}""", "invalid_body", "'createdAt' must be an ISO-8601 time")]
    [InlineData("""{"name": "a", "value": 1, "version": "1", "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z"}""", "invalid_value", "'version' must be an integer from 1")]
    [InlineData("""{"name": "a", "value": 1, "version": 1, "min": "0", "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z"}""", "invalid_bounds", "'min' must be a 64-bit integer or null")]
    [InlineData("""{"name": "a", "value": 1""", "invalid_json", "not valid JSON")]
    public async Task AnImportLineIsStrictAndItsProblemSaysWhatIsWrongInPlainWords(string badLine, string code, string said)
    {
        await using var app = new TallyApplication("memory");
        var client = app.CreateClient();

        var response = await ImportAsync(client, string.Join("\n", ValidLine, badLine));

        var problem = await response.ReadProblemAsync(HttpStatusCode.BadRequest, code);
        var detail = (string?)problem["detail"];
        Assert.StartsWith("Line 2: ", detail, StringComparison.Ordinal);
        Assert.Contains(said, detail, StringComparison.Ordinal);
        foreach (var internals in new[] { "Tally.Server", "CounterResponse", "Path: $", "LineNumber", "BytePositionInLine", "must be at least 1" })
        {
            Assert.DoesNotContain(internals, detail, StringComparison.Ordinal);
        }
        await client.AssertMissingAsync("valid");
        await client.AssertMissingAsync("a");
    }

    [Fact]
    public async Task AnImportLineMayLeaveOutInitialMinAndMax()
    {
        await using var app = new TallyApplication("memory");
        var client = app.CreateClient();

        var response = await ImportAsync(client, """{"name": "a", "value": 7, "version": 3, "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z"}""");

        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        var a = await client.GetCounterAsync("a");
        Assert.Equal((7L, 0L, (long?)null, (long?)null, 3L), (a.Value, a.Initial, a.Min, a.Max, a.Version));
    }

    [Fact]
    public async Task ABadLineAfterTheFirstThousandImportsNothingEither()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        var lines = Enumerable.Range(0, 1500).Select(i => ValidLine.Replace("\"valid\"", $"\"n{i:D4}\"", StringComparison.Ordinal))
            .Append("""{"name": "bad", "value": 1, "initial": 0, "min": 2, "max": 1, "version": 1, "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z"}""");

        var response = await ImportAsync(client, string.Join("\n", lines));

        var problem = await response.ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_bounds");
        Assert.Contains("Line 1501", (string?)problem["detail"], StringComparison.Ordinal);
        Assert.Equal(string.Empty, await ExportAsync(client));
    }

    [Fact]
    public async Task ALineThatIsNotUtf8ImportsNothingAndNamesTheLine()
    {
        await using var app = new TallyApplication("memory");
        var client = app.CreateClient();
        var body = Encoding.UTF8.GetBytes(ValidLine + "\n").Concat(new byte[] { 0x7B, 0xFF, 0xFE, 0x7D, 0x0A }).ToArray();

        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new("application/x-ndjson");
        var response = await client.PostAsync("/admin/import", content);

        var problem = await response.ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_body");
        Assert.Contains("Line 2", (string?)problem["detail"], StringComparison.Ordinal);
        await client.AssertMissingAsync("valid");
    }

    [Theory]
    [InlineData(null)]
    [InlineData("application/x-www-form-urlencoded")]
    [InlineData("text/plain")]
    [InlineData("application/x-ndjson; charset=utf-16")]
    public async Task AnImportThatIsNotJsonLinesInUtf8Gets415AndImportsNothing(string? contentType)
    {
        await using var app = new TallyApplication("memory");
        var client = app.CreateClient();
        using var content = new ByteArrayContent(Encoding.UTF8.GetBytes(ValidLine + "\n"));
        if (contentType is not null)
        {
            content.Headers.TryAddWithoutValidation("Content-Type", contentType);
        }

        var problem = await (await client.PostAsync("/admin/import", content)).ReadProblemAsync(HttpStatusCode.UnsupportedMediaType, "unsupported_media_type");

        Assert.Contains("application/x-ndjson", (string?)problem["detail"], StringComparison.Ordinal);
        await client.AssertMissingAsync("valid");
    }

    [Theory]
    [InlineData("application/x-ndjson")]
    [InlineData("application/jsonl; charset=utf-8")]
    [InlineData("application/json")]
    public async Task AnImportAsJsonLinesIsTaken(string contentType)
    {
        await using var app = new TallyApplication("memory");
        var client = app.CreateClient();
        using var content = new ByteArrayContent(Encoding.UTF8.GetBytes(ValidLine + "\n"));
        content.Headers.TryAddWithoutValidation("Content-Type", contentType);

        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/admin/import", content)).StatusCode);
        Assert.Equal(1, (long)(await client.GetCounterAsync("valid")).Value);
    }

    [Fact]
    [Trait("Layer", "Process")]
    public async Task ImportTakesTimesWithAnOffsetOnAHostOutsideUtc()
    {
        using var dataDir = new TempDirectory();
        await using var tally = TallyProcess.Start(dataDir.Path, new Dictionary<string, string> { ["TZ"] = "Europe/Berlin" }, "--Store", "memory");
        await tally.WaitUntilReadyAsync();
        using var client = tally.CreateClient();
        // The second and third are the two 02:30 of the night Berlin's clocks went back.
        string[] lines =
        [
            """{"name": "a", "value": 1, "initial": 0, "min": null, "max": null, "version": 2, "createdAt": "2026-06-01T12:00:00+02:00", "updatedAt": "2026-06-01T12:00:00.5-04:00"}""",
            """{"name": "b", "value": 1, "initial": 0, "min": null, "max": null, "version": 2, "createdAt": "2026-10-25T02:30:00+02:00", "updatedAt": "2026-10-25T02:30:00+01:00"}""",
            """{"name": "c", "value": 1, "initial": 0, "min": null, "max": null, "version": 2, "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00.001Z"}""",
        ];

        var response = await ImportAsync(client, string.Join("\n", lines));

        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}\n{tally.Describe()}");
        var a = await client.GetCounterAsync("a");
        Assert.Equal((new DateTime(2026, 6, 1, 10, 0, 0, DateTimeKind.Utc), new DateTime(2026, 6, 1, 16, 0, 0, 500, DateTimeKind.Utc)), (a.CreatedAt, a.UpdatedAt));
        var b = await client.GetCounterAsync("b");
        Assert.Equal((new DateTime(2026, 10, 25, 0, 30, 0, DateTimeKind.Utc), new DateTime(2026, 10, 25, 1, 30, 0, DateTimeKind.Utc)), (b.CreatedAt, b.UpdatedAt));
        var c = await client.GetCounterAsync("c");
        Assert.Equal((new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc), new DateTime(2026, 1, 1, 0, 0, 0, 1, DateTimeKind.Utc)), (c.CreatedAt, c.UpdatedAt));
    }

    private static async Task<string> ExportAsync(HttpClient client)
    {
        using var response = await client.GetAsync("/admin/export");
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"GET /admin/export answered {(int)response.StatusCode}: {text}");
        Assert.Equal("application/x-ndjson", response.Content.Headers.ContentType?.MediaType);
        return text;
    }

    private static Task<HttpResponseMessage> ImportAsync(HttpClient client, string lines) =>
        client.PostAsync("/admin/import", new StringContent(lines, Encoding.UTF8, "application/x-ndjson"));
}
