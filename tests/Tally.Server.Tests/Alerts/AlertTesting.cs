using System.Net;
using System.Text.Json.Nodes;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Alerts;

internal static class AlertTesting
{
    /// <summary>
    /// Settings for a Tally whose webhooks go to a receiver on 127.0.0.1, with delays short enough for a test: retries
    /// after 200 ms (five of them), the outbox looked at every 50 ms.
    /// </summary>
    public static Dictionary<string, string?> Settings(string retrySchedule = "200ms 200ms 200ms 200ms 200ms", IReadOnlyDictionary<string, string?>? more = null)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Alerts:AllowedHosts"] = "127.0.0.1",
            ["Alerts:RetrySchedule"] = retrySchedule,
            ["Alerts:PollIntervalMs"] = "50",
            ["Alerts:DeliveryTimeoutSeconds"] = "5",
        };
        foreach (var (key, value) in more ?? new Dictionary<string, string?>())
        {
            settings[key] = value;
        }
        return settings;
    }

    /// <summary>The same settings as command-line arguments for <see cref="Process.TallyProcess"/>.</summary>
    public static string[] Arguments(string retrySchedule = "200ms 200ms 200ms 200ms 200ms") =>
        [.. Settings(retrySchedule).SelectMany(setting => new[] { "--" + setting.Key, setting.Value! })];

    /// <summary>PUT /alerts/{id}; asserts 201 or 200 and returns the answer (with its secret, when one was generated).</summary>
    public static async Task<JsonObject> PutAlertAsync(this HttpClient client, string id, string body)
    {
        var response = await client.PutAsync($"/alerts/{id}", Api.JsonBody(body));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode is HttpStatusCode.Created or HttpStatusCode.OK, $"PUT /alerts/{id} {body} answered {(int)response.StatusCode}: {text}");
        return JsonNode.Parse(text)!.AsObject();
    }

    /// <summary>Creates an alert to <paramref name="webhook"/> and returns its generated secret.</summary>
    public static async Task<string> CreateAlertAsync(this HttpClient client, string id, string watch, string webhook)
    {
        var created = await client.PutAlertAsync(id, $$"""{ {{watch}}, "webhook": "{{webhook}}" }""");
        return (string)created["secret"]!;
    }

    public static async Task<JsonArray> DeliveriesAsync(this HttpClient client, string id)
    {
        var response = await client.GetAsync($"/alerts/{id}/deliveries");
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"GET /alerts/{id}/deliveries answered {(int)response.StatusCode}: {text}");
        return JsonNode.Parse(text)!["items"]!.AsArray();
    }

    /// <summary>Polls the alert's deliveries until one satisfies <paramref name="match"/>.</summary>
    public static async Task<JsonArray> WaitForDeliveriesAsync(this HttpClient client, string id, Func<JsonArray, bool> match, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(20));
        while (true)
        {
            var deliveries = await client.DeliveriesAsync(id);
            if (match(deliveries))
            {
                return deliveries;
            }
            Assert.True(DateTime.UtcNow < deadline, $"The deliveries of {id} never matched: {deliveries.ToJsonString()}");
            await Task.Delay(50);
        }
    }

    public static async Task SetAsync(this HttpClient client, string name, long value) =>
        await client.SetUpCounterAsync(name, $$"""{"value": {{value}}}""");

    public static async Task AddAsync(this HttpClient client, string name, long by)
    {
        var response = by >= 0
            ? await client.IncrementAsync(name, $$"""{"by": {{by}}}""")
            : await client.DecrementAsync(name, $$"""{"by": {{-by}}}""");
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{name} by {by}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
    }
}
