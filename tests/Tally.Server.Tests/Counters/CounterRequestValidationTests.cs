using System.Net;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Counters;

/// <summary>Bad input is a 4xx problem with a stable code, never a 500, and changes nothing.</summary>
public class CounterRequestValidationTests
{
    private static readonly (string Method, string Path, string? Body)[] EveryCounterEndpoint =
    [
        ("GET", "/counters/{name}", null),
        ("PUT", "/counters/{name}", """{"value": 1}"""),
        ("DELETE", "/counters/{name}", null),
        ("POST", "/counters/{name}/increment", null),
        ("POST", "/counters/{name}/decrement", """{"by": 2}"""),
        ("POST", "/counters/{name}/reset", null),
    ];

    public static TheoryData<string> InvalidNames() =>
    [
        new string('a', 129),                 // one too long
        "-a", ".a", "_a", ":a",               // punctuation may not come first
        "a%20b", "a%2Fb", "a%2fb", "a%25b",   // space, slash, percent
        "%C3%A9t%C3%A9",                      // non-ASCII letters
        "a*b", "a+b", "a@b", "a~b", "a!b", "a%2Cb", "a%22b", "a%0A", "a%09b",
    ];

    [Theory]
    [MemberData(nameof(InvalidNames))]
    public async Task InvalidNameIsRefusedByEveryCounterEndpoint(string name)
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        foreach (var (method, path, body) in EveryCounterEndpoint)
        {
            var response = await client.SendAsync(new HttpMethod(method), path.Replace("{name}", name, StringComparison.Ordinal), body);
            await response.ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_name");
        }
        Assert.Empty((await (await client.GetAsync("/counters")).ReadPageAsync()).Items);
    }

    [Fact]
    public async Task NameOf128CharactersWorksOnEveryCounterEndpoint()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        var name = "A" + new string('z', 126) + "9";
        await (await client.PutAsync(name, """{"value": 1}""")).ReadCounterAsync(HttpStatusCode.Created);
        await (await client.IncrementAsync(name)).ReadCounterAsync();
        await (await client.DecrementAsync(name)).ReadCounterAsync();
        await (await client.PostAsync($"/counters/{name}/reset", null)).ReadCounterAsync();
        Assert.Equal(name, (await client.GetCounterAsync(name)).Name);
        Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync($"/counters/{name}")).StatusCode);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-1")]
    [InlineData("-9223372036854775808")]
    [InlineData("1.5")]
    [InlineData("1.0")]
    [InlineData("abc")]
    [InlineData("5abc")]
    [InlineData("9223372036854775808")]
    [InlineData("99999999999999999999999")]
    [InlineData("")]
    [InlineData("%2B5")] // +5
    [InlineData("%205")] // leading space
    [InlineData("1e3")]
    [InlineData("0x10")]
    [InlineData("5&by=6")]
    public async Task InvalidAmountInTheQueryIsInvalidAmount(string by)
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        await client.SetUpCounterAsync("a", """{"value": 10}""");
        foreach (var operation in new[] { "increment", "decrement" })
        {
            var response = await client.PostAsync($"/counters/a/{operation}?by={by}", null);
            await response.ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_amount");
            var missing = await client.PostAsync($"/counters/fresh/{operation}?by={by}", null);
            await missing.ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_amount");
        }
        var counter = await client.GetCounterAsync("a");
        Assert.Equal((10L, 1L), (counter.Value, counter.Version));
        await (await client.GetAsync("/counters/fresh")).ReadProblemAsync(HttpStatusCode.NotFound, "counter_not_found");
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-1")]
    [InlineData("-9223372036854775808")]
    [InlineData("1.5")]
    [InlineData("1.0")]
    [InlineData("\"5\"")]
    [InlineData("9223372036854775808")]
    [InlineData("1e400")]
    [InlineData("null")]
    [InlineData("true")]
    [InlineData("[5]")]
    [InlineData("{\"n\": 5}")]
    public async Task InvalidAmountInTheBodyIsInvalidAmount(string by)
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        await client.SetUpCounterAsync("a", """{"value": 10}""");
        foreach (var operation in new[] { "increment", "decrement" })
        {
            var response = await client.PostAsync($"/counters/a/{operation}", Api.JsonBody($$"""{"by": {{by}}}"""));
            await response.ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_amount");
        }
        var counter = await client.GetCounterAsync("a");
        Assert.Equal((10L, 1L), (counter.Value, counter.Version));
    }

    [Theory]
    [InlineData("""{"by": """)]
    [InlineData("""{by: 1}""")]
    [InlineData("""{"by": 1}}""")]
    [InlineData("""{"by": 1} x""")]
    [InlineData("""{"by": 1,}""")]
    [InlineData("""{'by': 1}""")]
    public async Task MalformedJsonIsInvalidJson(string body)
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        await (await client.IncrementAsync("a", body)).ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_json");
        await (await client.PutAsync("a", body.Replace("by", "value", StringComparison.Ordinal))).ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_json");
        await (await client.GetAsync("/counters/a")).ReadProblemAsync(HttpStatusCode.NotFound, "counter_not_found");
    }

    [Theory]
    [InlineData("[1]")]
    [InlineData("5")]
    [InlineData("\"by\"")]
    [InlineData("null")]
    public async Task BodyThatIsNotAnObjectIsInvalidBody(string body)
    {
        await using var app = new TallyApplication();
        await (await app.CreateClient().IncrementAsync("a", body)).ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_body");
    }

    [Theory]
    [InlineData("text/plain")]
    [InlineData("application/x-www-form-urlencoded")]
    [InlineData("application/xml")]
    [InlineData("multipart/form-data; boundary=x")]
    public async Task BodyThatIsNotJsonIsUnsupportedMediaType(string contentType)
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        foreach (var (method, path, body) in new[] { ("POST", "/counters/a/increment", """{"by": 5}"""), ("PUT", "/counters/a", """{"value": 5}""") })
        {
            var request = new HttpRequestMessage(new HttpMethod(method), path) { Content = new StringContent(body) };
            request.Content.Headers.ContentType = System.Net.Http.Headers.MediaTypeHeaderValue.Parse(contentType);
            await (await client.SendAsync(request)).ReadProblemAsync(HttpStatusCode.UnsupportedMediaType, "unsupported_media_type");
        }
        await (await client.GetAsync("/counters/a")).ReadProblemAsync(HttpStatusCode.NotFound, "counter_not_found");
    }

    [Theory]
    [InlineData("application/json; charset=utf-8")]
    [InlineData("Application/JSON")]
    [InlineData("application/merge-patch+json")]
    public async Task JsonMediaTypesAreAccepted(string contentType)
    {
        await using var app = new TallyApplication();
        var request = new HttpRequestMessage(HttpMethod.Post, "/counters/a/increment") { Content = new StringContent("""{"by": 5}""") };
        request.Content.Headers.ContentType = System.Net.Http.Headers.MediaTypeHeaderValue.Parse(contentType);
        Assert.Equal(5, (await (await app.CreateClient().SendAsync(request)).ReadCounterAsync()).Value);
    }

    [Fact]
    public async Task BodyLargerThanTheLimitIsPayloadTooLarge()
    {
        await using var app = new TallyApplication(settings: new Dictionary<string, string?> { ["MaxBodyBytes"] = "1024" });
        var client = app.CreateClient();
        var body = $$"""{"by": 1, "padding": "{{new string('x', 2000)}}"}""";
        await (await client.IncrementAsync("a", body)).ReadProblemAsync(HttpStatusCode.RequestEntityTooLarge, "payload_too_large");
        await (await client.GetAsync("/counters/a")).ReadProblemAsync(HttpStatusCode.NotFound, "counter_not_found");
    }
}
