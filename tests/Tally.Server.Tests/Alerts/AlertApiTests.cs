using System.Net;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Logging;
using Tally.Server.Tests.Auth;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Alerts;

/// <summary>
/// The alert definitions over HTTP, without deliveries: what a PUT takes and refuses (shape, SSRF, secrets), what
/// answers show, and who may manage which alert. Webhooks point at addresses that are never called.
/// </summary>
public class AlertApiTests
{
    private const string Hook = "http://127.0.0.1:9/hooks/tally";

    private static TallyApplication App() => new("memory", settings: new Dictionary<string, string?> { ["Alerts:AllowedHosts"] = "127.0.0.1" });

    [Fact]
    public async Task APutCreatesThenReplacesAndTheSecretIsShownOnlyWhenGenerated()
    {
        await using var app = App();
        var client = app.CreateClient();

        var response = await client.PutAsync("/alerts/high", Api.JsonBody($$"""{"counter": "signups", "above": 1000, "resolve": 900, "webhook": "{{Hook}}"}"""));
        var created = JsonNode.Parse(await response.Content.ReadAsStringAsync())!.AsObject();
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Equal("/alerts/high", response.Headers.Location?.OriginalString);
        Assert.Equal("no-store", response.Headers.CacheControl?.ToString());
        Assert.StartsWith("whsec_", (string)created["secret"]!, StringComparison.Ordinal);
        Assert.Equal("signups", (string?)created["counter"]);
        Assert.Null(created["prefix"]);
        Assert.Equal(1000, (long?)created["above"]);
        Assert.Null(created["below"]);
        Assert.Equal(900, (long?)created["resolve"]);
        Assert.True((bool)created["webhookEnabled"]!);

        // Replaced without a secret: the secret stays, and is not shown.
        var replaced = await client.PutAsync("/alerts/high", Api.JsonBody($$"""{"prefix": "signups:", "below": 5, "webhook": "{{Hook}}"}"""));
        var body = JsonNode.Parse(await replaced.Content.ReadAsStringAsync())!.AsObject();
        Assert.Equal(HttpStatusCode.OK, replaced.StatusCode);
        Assert.False(body.ContainsKey("secret"));
        Assert.Equal("signups:", (string?)body["prefix"]);
        Assert.Equal(5, (long?)body["below"]);
        Assert.Equal((string?)created["createdAt"], (string?)body["createdAt"]);

        // A secret of the client's own is taken and not echoed; null asks for a new one.
        var own = "whsec_" + Convert.ToBase64String(new byte[24]);
        Assert.False((await client.PutAlertAsync("high", $$"""{"counter": "a", "above": 1, "webhook": "{{Hook}}", "secret": "{{own}}"}""")).ContainsKey("secret"));
        var rotated = await client.PutAlertAsync("high", $$"""{"counter": "a", "above": 1, "webhook": "{{Hook}}", "secret": null}""");
        Assert.NotEqual(own, (string?)rotated["secret"]);
        Assert.StartsWith("whsec_", (string)rotated["secret"]!, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SecretsAreNeverInReadsNorInTheLog()
    {
        var logs = new CapturingLoggerProvider();
        await using var tally = App();
        await using var app = tally.WithWebHostBuilder(builder => builder.ConfigureLogging(logging => logging.AddProvider(logs)));
        var client = app.CreateClient();

        var secret = await client.CreateAlertAsync("high", "\"counter\": \"signups\", \"above\": 10", Hook + "?token=receivers-own-token");
        var own = "whsec_" + Convert.ToBase64String(Enumerable.Range(1, 32).Select(i => (byte)i).ToArray());
        await client.PutAlertAsync("other", $$"""{"prefix": "", "below": 0, "webhook": "{{Hook}}", "secret": "{{own}}"}""");

        var one = await client.GetStringAsync("/alerts/high");
        var all = await client.GetStringAsync("/alerts");
        foreach (var text in new[] { one, all, logs.All })
        {
            Assert.DoesNotContain(secret, text, StringComparison.Ordinal);
            Assert.DoesNotContain(secret["whsec_".Length..], text, StringComparison.Ordinal);
            Assert.DoesNotContain(own["whsec_".Length..], text, StringComparison.Ordinal);
            Assert.DoesNotContain("whsec_", text, StringComparison.Ordinal);
        }
        Assert.DoesNotContain("receivers-own-token", logs.All, StringComparison.Ordinal);
        Assert.Contains(logs.Entries, entry => entry.Contains("Created alert high", StringComparison.Ordinal));
        Assert.Equal(["high", "other"], JsonNode.Parse(all)!["items"]!.AsArray().Select(item => (string)item!["id"]!));
    }

    [Theory]
    [InlineData("""{"above": 1, "webhook": "http://127.0.0.1/"}""", "invalid_alert", "exactly one of 'counter'")]
    [InlineData("""{"counter": "a", "prefix": "b", "above": 1, "webhook": "http://127.0.0.1/"}""", "invalid_alert", "exactly one of 'counter'")]
    [InlineData("""{"counter": "a", "webhook": "http://127.0.0.1/"}""", "invalid_alert", "exactly one of 'above'")]
    [InlineData("""{"counter": "a", "above": 1, "below": 0, "webhook": "http://127.0.0.1/"}""", "invalid_alert", "exactly one of 'above'")]
    [InlineData("""{"counter": "a", "above": 100, "resolve": 101, "webhook": "http://127.0.0.1/"}""", "invalid_alert", "at or below 'above'")]
    [InlineData("""{"counter": "a", "below": 100, "resolve": 99, "webhook": "http://127.0.0.1/"}""", "invalid_alert", "at or above 'below'")]
    [InlineData("""{"counter": "a", "above": 1.5, "webhook": "http://127.0.0.1/"}""", "invalid_alert", "'above' must be an integer")]
    [InlineData("""{"counter": "a", "above": 9223372036854775808, "webhook": "http://127.0.0.1/"}""", "invalid_alert", "'above' must be an integer")]
    [InlineData("""{"counter": "a b", "above": 1, "webhook": "http://127.0.0.1/"}""", "invalid_alert", "'counter' must be a counter name")]
    [InlineData("""{"counter": "a", "above": 1}""", "invalid_webhook", "'webhook' is required")]
    [InlineData("""{"counter": "a", "above": 1, "webhook": "ftp://127.0.0.1/"}""", "invalid_webhook", "scheme 'ftp'")]
    [InlineData("""{"counter": "a", "above": 1, "webhook": "file:///etc/passwd"}""", "invalid_webhook", "scheme 'file'")]
    [InlineData("""{"counter": "a", "above": 1, "webhook": "http://127.0.0.1/", "secret": "hunter2"}""", "invalid_secret", "'secret' must start with 'whsec_'")]
    [InlineData("""{"counter": "a", "above": 1, "webhook": "http://127.0.0.1/", "secret": "whsec_AAAA"}""", "invalid_secret", "24 to 64")]
    [InlineData("""{"counter": "a", "above": 1, "webhook": "http://127.0.0.1/", "treshold": 5}""", "invalid_body", "'treshold'")]
    [InlineData("""{"counter": "a", "above": 1, "above": 2, "webhook": "http://127.0.0.1/"}""", "invalid_body", "'above' appears twice")]
    [InlineData("""[1]""", "invalid_body", "JSON object")]
    public async Task ABadDefinitionIsRefusedSayingWhyAndNothingIsStored(string body, string code, string why)
    {
        await using var app = App();
        var client = app.CreateClient();

        var problem = await (await client.PutAsync("/alerts/a1", Api.JsonBody(body))).ReadProblemAsync(HttpStatusCode.BadRequest, code);

        Assert.Contains(why, (string?)problem["detail"], StringComparison.Ordinal);
        await (await client.GetAsync("/alerts/a1")).ReadProblemAsync(HttpStatusCode.NotFound, "alert_not_found");
    }

    [Theory]
    [InlineData("http://127.0.0.1/hook", "loopback")]
    [InlineData("http://localhost:8080/hook", "loopback")]
    [InlineData("http://[::1]/hook", "loopback")]
    [InlineData("http://10.0.0.5/hook", "private")]
    [InlineData("https://192.168.0.1/hook", "private")]
    [InlineData("http://172.20.1.1/hook", "private")]
    [InlineData("http://100.100.100.100/hook", "carrier-grade NAT")]
    [InlineData("http://169.254.169.254/latest/meta-data/", "link-local")]
    [InlineData("http://[fe80::1]/hook", "link-local")]
    [InlineData("http://[fd00::1]/hook", "unique local")]
    [InlineData("http://[::ffff:127.0.0.1]/hook", "loopback")]
    [InlineData("http://0.0.0.0/hook", "this network")]
    [InlineData("http://2130706433/hook", "loopback")]
    public async Task WebhooksToLoopbackPrivateOrLinkLocalHostsAreRefusedWithoutAllowedHosts(string webhook, string kind)
    {
        await using var app = new TallyApplication("memory");
        var client = app.CreateClient();

        var problem = await (await client.PutAsync("/alerts/ssrf", Api.JsonBody($$"""{"counter": "a", "above": 1, "webhook": "{{webhook}}"}""")))
            .ReadProblemAsync(HttpStatusCode.BadRequest, "webhook_not_allowed");

        Assert.Contains(kind, (string?)problem["detail"], StringComparison.Ordinal);
        Assert.Contains("Alerts:AllowedHosts", (string?)problem["detail"], StringComparison.Ordinal);
        Assert.Empty(JsonNode.Parse(await client.GetStringAsync("/alerts"))!["items"]!.AsArray());
    }

    [Fact]
    public async Task AllowedHostsLetsThoseHostsInAndNoOthers()
    {
        await using var app = new TallyApplication("memory", settings: new Dictionary<string, string?> { ["Alerts:AllowedHosts"] = "localhost; 10.0.0.5" });
        var client = app.CreateClient();

        await client.PutAlertAsync("a", """{"counter": "a", "above": 1, "webhook": "http://localhost:8080/hook"}""");
        await client.PutAlertAsync("b", """{"counter": "a", "above": 1, "webhook": "http://10.0.0.5/hook"}""");
        await (await client.PutAsync("/alerts/c", Api.JsonBody("""{"counter": "a", "above": 1, "webhook": "http://10.0.0.6/hook"}""")))
            .ReadProblemAsync(HttpStatusCode.BadRequest, "webhook_not_allowed");
        await (await client.PutAsync("/alerts/d", Api.JsonBody("""{"counter": "a", "above": 1, "webhook": "http://127.0.0.1/hook"}""")))
            .ReadProblemAsync(HttpStatusCode.BadRequest, "webhook_not_allowed");
    }

    [Fact]
    public async Task AHostThatDoesNotResolveIsRefused()
    {
        await using var app = App();
        var problem = await (await app.CreateClient().PutAsync("/alerts/x", Api.JsonBody("""{"counter": "a", "above": 1, "webhook": "https://no-such-host.invalid/hook"}""")))
            .ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_webhook");
        Assert.Contains("does not resolve", (string?)problem["detail"], StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("a b")]
    [InlineData("-a")]
    [InlineData("a%2Fb")]
    [InlineData("a1234567890123456789012345678901234567890123456789012345678901234")]
    public async Task AnAlertIdIsANameOfUpTo64Characters(string id)
    {
        await using var app = App();
        await (await app.CreateClient().PutAsync($"/alerts/{id}", Api.JsonBody($$"""{"counter": "a", "above": 1, "webhook": "{{Hook}}"}""")))
            .ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_alert_id");
    }

    [Fact]
    public async Task ManagingAnAlertNeedsWriteOnWhatItWatchesAndAPrefixedKeySeesOnlyItsOwn()
    {
        await using var app = App();
        var admin = app.CreateClient();
        var shopWriter = app.CreateClientWithKey((await admin.CreateKeyAsync("shop writer", ["write"], "shop:")).Key);
        var shopReader = app.CreateClientWithKey((await admin.CreateKeyAsync("shop reader", ["read"], "shop:")).Key);
        var incrementer = app.CreateClientWithKey((await admin.CreateKeyAsync("incrementer", ["increment"])).Key);
        await admin.PutAlertAsync("global", $$"""{"prefix": "", "above": 1, "webhook": "{{Hook}}"}""");

        // Inside the key's prefix: a counter or a narrower prefix.
        await shopWriter.PutAlertAsync("stock", $$"""{"counter": "shop:stock", "below": 10, "webhook": "{{Hook}}"}""");
        await shopWriter.PutAlertAsync("orders", $$"""{"prefix": "shop:orders:", "above": 100, "webhook": "{{Hook}}"}""");
        Assert.Equal(HttpStatusCode.OK, (await shopWriter.GetAsync("/alerts/stock")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await shopWriter.GetAsync("/alerts/stock/deliveries")).StatusCode);

        // Outside it: refused, and the others' alerts are as good as absent.
        foreach (var body in new[] { $$"""{"counter": "web:hits", "above": 1, "webhook": "{{Hook}}"}""", $$"""{"prefix": "", "above": 1, "webhook": "{{Hook}}"}""",
            $$"""{"prefix": "sho", "above": 1, "webhook": "{{Hook}}"}""" })
        {
            await (await shopWriter.PutAsync("/alerts/mine", Api.JsonBody(body))).ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");
        }
        await (await shopWriter.PutAsync("/alerts/global", Api.JsonBody($$"""{"counter": "shop:x", "above": 1, "webhook": "{{Hook}}"}""")))
            .ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");
        await (await shopWriter.GetAsync("/alerts/global")).ReadProblemAsync(HttpStatusCode.NotFound, "alert_not_found");
        await (await shopWriter.DeleteAsync("/alerts/global")).ReadProblemAsync(HttpStatusCode.NotFound, "alert_not_found");
        await (await shopWriter.GetAsync("/alerts/global/deliveries")).ReadProblemAsync(HttpStatusCode.NotFound, "alert_not_found");
        var listed = JsonNode.Parse(await shopWriter.GetStringAsync("/alerts"))!["items"]!.AsArray().Select(item => (string)item!["id"]!);
        Assert.Equal(["orders", "stock"], listed);

        // Without write: no alert endpoint at all.
        foreach (var client in new[] { shopReader, incrementer })
        {
            await (await client.GetAsync("/alerts")).ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");
            await (await client.GetAsync("/alerts/stock")).ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");
            await (await client.PutAsync("/alerts/x", Api.JsonBody($$"""{"counter": "shop:x", "above": 1, "webhook": "{{Hook}}"}""")))
                .ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");
        }
        await (await app.CreateClientWithKey(null).GetAsync("/alerts")).ReadProblemAsync(HttpStatusCode.Unauthorized, "unauthorized");

        // The admin sees all, and deletes.
        Assert.Equal(3, JsonNode.Parse(await admin.GetStringAsync("/alerts"))!["items"]!.AsArray().Count);
        Assert.Equal(HttpStatusCode.NoContent, (await shopWriter.DeleteAsync("/alerts/stock")).StatusCode);
        await (await admin.GetAsync("/alerts/stock")).ReadProblemAsync(HttpStatusCode.NotFound, "alert_not_found");
    }

    [Fact]
    public async Task TheNumberOfAlertsIsBounded()
    {
        await using var app = new TallyApplication("memory", settings: new Dictionary<string, string?>
        {
            ["Alerts:AllowedHosts"] = "127.0.0.1",
            ["Alerts:MaxAlerts"] = "2",
        });
        var client = app.CreateClient();
        await client.PutAlertAsync("a", $$"""{"counter": "a", "above": 1, "webhook": "{{Hook}}"}""");
        await client.PutAlertAsync("b", $$"""{"counter": "a", "above": 1, "webhook": "{{Hook}}"}""");

        await (await client.PutAsync("/alerts/c", Api.JsonBody($$"""{"counter": "a", "above": 1, "webhook": "{{Hook}}"}""")))
            .ReadProblemAsync(HttpStatusCode.Forbidden, "alert_quota_exceeded");
        await client.PutAlertAsync("b", $$"""{"counter": "a", "above": 2, "webhook": "{{Hook}}"}"""); // replacing is not adding
    }

    [Fact]
    public async Task DeliveriesTakeALimitAndNothingElse()
    {
        await using var app = App();
        var client = app.CreateClient();
        await client.PutAlertAsync("a", $$"""{"counter": "a", "above": 1, "webhook": "{{Hook}}"}""");

        Assert.Empty(await client.DeliveriesAsync("a"));
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/alerts/a/deliveries?limit=5")).StatusCode);
        await (await client.GetAsync("/alerts/a/deliveries?limit=0")).ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_query");
        await (await client.GetAsync("/alerts/a/deliveries?limt=5")).ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_query");
        await (await client.GetAsync("/alerts?x=1")).ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_query");
        await (await client.GetAsync("/alerts/zz/deliveries")).ReadProblemAsync(HttpStatusCode.NotFound, "alert_not_found");
    }
}
