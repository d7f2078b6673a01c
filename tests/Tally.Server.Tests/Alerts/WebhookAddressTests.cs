using System.Net;
using Tally.Server.Alerts;

namespace Tally.Server.Tests.Alerts;

/// <summary>SSRF protection's pieces: which addresses are not public, which URLs are refused, the retry schedule setting.</summary>
public class WebhookAddressTests
{
    [Theory]
    [InlineData("127.0.0.1", "loopback")]
    [InlineData("127.255.255.254", "loopback")]
    [InlineData("0.0.0.0", "this network")]
    [InlineData("0.1.2.3", "this network")]
    [InlineData("10.1.2.3", "private")]
    [InlineData("172.16.0.1", "private")]
    [InlineData("172.31.255.255", "private")]
    [InlineData("192.168.1.1", "private")]
    [InlineData("100.64.0.1", "carrier-grade NAT")]
    [InlineData("100.127.255.255", "carrier-grade NAT")]
    [InlineData("169.254.169.254", "link-local")]
    [InlineData("224.0.0.1", "multicast")]
    [InlineData("255.255.255.255", "broadcast")]
    [InlineData("::1", "loopback")]
    [InlineData("::", "unspecified")]
    [InlineData("fe80::1", "link-local")]
    [InlineData("febf::1", "link-local")]
    [InlineData("fc00::1", "unique local")]
    [InlineData("fd12:3456::1", "unique local")]
    [InlineData("ff02::1", "multicast")]
    [InlineData("::ffff:127.0.0.1", "loopback")]
    [InlineData("::ffff:10.0.0.1", "private")]
    [InlineData("::ffff:169.254.169.254", "link-local")]
    [InlineData("::127.0.0.1", "loopback")]
    [InlineData("64:ff9b::a00:1", "private")]
    [InlineData("2002:c0a8:0101::1", "private")]
    public void NonPublicAddressesAreNamedForWhatTheyAre(string address, string kind) =>
        Assert.Contains(kind, WebhookAddress.NotPublic(IPAddress.Parse(address)), StringComparison.Ordinal);

    [Theory]
    [InlineData("93.184.215.14")]
    [InlineData("8.8.8.8")]
    [InlineData("172.32.0.1")]
    [InlineData("100.128.0.1")]
    [InlineData("192.169.0.1")]
    [InlineData("2606:2800:21f:cb07:6820:80da:af6b:8b2c")]
    [InlineData("::ffff:8.8.8.8")]
    [InlineData("2002:0808:0808::1")]
    public void PublicAddressesAreAllowed(string address) =>
        Assert.Null(WebhookAddress.NotPublic(IPAddress.Parse(address)));

    [Theory]
    [InlineData("ftp://example.com/hook", "scheme 'ftp'")]
    [InlineData("file:///etc/passwd", "scheme 'file'")]
    [InlineData("gopher://example.com/", "scheme 'gopher'")]
    [InlineData("javascript:alert(1)", "scheme 'javascript'")]
    [InlineData("/hooks/tally", "http or https")]
    [InlineData("https://user:pass@example.com/hook", "user name or password")]
    [InlineData("https://example.com/hook#part", "fragment")]
    [InlineData("", "absolute")]
    public void OnlyPlainHttpAndHttpsUrlsAreTaken(string url, string why)
    {
        Assert.Null(WebhookAddress.Parse(url, out var problem));
        Assert.Contains(why, problem, StringComparison.Ordinal);
    }

    [Fact]
    public void NumericHostSpellingsAreReadAsTheAddressTheyAre()
    {
        // http://2130706433/ and http://0x7f.1/ are 127.0.0.1 to a resolver; the URL parser makes them so before any check.
        foreach (var url in new[] { "http://2130706433/", "http://0x7f000001/", "http://127.1/", "http://[::ffff:7f00:1]/" })
        {
            var uri = WebhookAddress.Parse(url, out _)!;
            Assert.NotNull(WebhookAddress.NotPublic(IPAddress.Parse(uri.IdnHost.Trim('[', ']'))));
        }
    }

    [Fact]
    public async Task AHostIsCheckedByEveryAddressItResolvesToUnlessAllowed()
    {
        Assert.Contains("loopback", await WebhookAddress.CheckHostAsync("localhost", new HashSet<string>(), CancellationToken.None), StringComparison.Ordinal);
        Assert.Contains("private", await WebhookAddress.CheckHostAsync("10.0.0.7", new HashSet<string>(), CancellationToken.None), StringComparison.Ordinal);
        Assert.Null(await WebhookAddress.CheckHostAsync("localhost", new HashSet<string>(StringComparer.OrdinalIgnoreCase) { "LOCALHOST" }, CancellationToken.None));
        Assert.Null(await WebhookAddress.CheckHostAsync("[::1]", new HashSet<string> { "::1" }, CancellationToken.None));
    }

    [Theory]
    [InlineData("5s 5m 30m 2h", new[] { 5_000.0, 300_000, 1_800_000, 7_200_000 })]
    [InlineData("250ms,1s;1d", new[] { 250.0, 1_000, 86_400_000 })]
    public void TheRetryScheduleReadsDelaysWithUnits(string schedule, double[] milliseconds)
    {
        Assert.Null(AlertOptions.ParseSchedule(schedule, out var delays));
        Assert.Equal(milliseconds, delays.Select(delay => delay.TotalMilliseconds));
    }

    [Theory]
    [InlineData("")]
    [InlineData("5")]
    [InlineData("5x")]
    [InlineData("-5s")]
    [InlineData("0s")]
    [InlineData("8d")]
    public void ABadRetryScheduleIsRefused(string schedule) =>
        Assert.NotNull(AlertOptions.ParseSchedule(schedule, out _));

    [Fact]
    public void TheDefaultScheduleRetriesForMoreThanADay()
    {
        var delays = new AlertOptions().RetryDelays;
        Assert.True(delays.Aggregate(TimeSpan.Zero, (sum, delay) => sum + delay) * 0.8 > TimeSpan.FromHours(24));
        Assert.True(delays.Zip(delays.Skip(1)).All(pair => pair.Second > pair.First), "the delays grow");
    }

    [Fact]
    public void SecretsAreWhsecAndTheBase64OfEnoughBytes()
    {
        var generated = WebhookSecret.Generate();
        Assert.StartsWith("whsec_", generated, StringComparison.Ordinal);
        Assert.Equal(32, Convert.FromBase64String(generated["whsec_".Length..]).Length);
        Assert.Null(WebhookSecret.Check(generated));
        Assert.NotNull(WebhookSecret.Check("whsec_" + Convert.ToBase64String(new byte[23])));
        Assert.NotNull(WebhookSecret.Check("whsec_" + Convert.ToBase64String(new byte[65])));
        Assert.NotNull(WebhookSecret.Check("whsec_not base64!"));
        Assert.NotNull(WebhookSecret.Check(Convert.ToBase64String(new byte[32])));
    }

    [Fact]
    public void TheSignatureVerifiesWithTheSpecificationsAlgorithmWrittenInTheTest()
    {
        var secret = WebhookSecret.Generate();
        const string body = """{"type":"alert.firing"}""";
        var now = DateTimeOffset.UtcNow;
        var signature = WebhookSecret.Sign(secret, "evt_1", now.ToUnixTimeSeconds(), body);

        var delivery = new ReceivedWebhook("evt_1", now.ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture), signature, null, body, now, 0);
        Assert.True(StandardWebhooks.Verify(secret, delivery));
        Assert.False(StandardWebhooks.Verify(secret, delivery with { Body = body + " " }));
        Assert.False(StandardWebhooks.Verify(WebhookSecret.Generate(), delivery));
        Assert.False(StandardWebhooks.Verify(secret, delivery with { Id = "evt_2" }));
    }
}
