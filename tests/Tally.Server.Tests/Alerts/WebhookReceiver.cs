using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Tally.Server.Tests.Alerts;

/// <summary>One POST a <see cref="WebhookReceiver"/> got: the Standard Webhooks headers, the body as sent, and when.</summary>
public sealed record ReceivedWebhook(string? Id, string? Timestamp, string? Signature, string? ContentType, string Body, DateTimeOffset At, int Answered)
{
    public JsonNode Payload => JsonNode.Parse(Body)!;

    public string Type => (string)Payload["type"]!;

    public string Counter => (string)Payload["data"]!["counter"]!;

    public override string ToString() => $"{Id} {Answered} {Body}";
}

/// <summary>
/// A real HTTP receiver for Tally's webhooks: Kestrel on 127.0.0.1 (a free port, or a given one, so a test can stop it
/// and start another where it was), recording every POST and answering what <see cref="Respond"/> says (204 by default).
/// </summary>
public sealed class WebhookReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentQueue<ReceivedWebhook> _received = new();

    private WebhookReceiver(WebApplication app, int port)
    {
        _app = app;
        Port = port;
    }

    public int Port { get; }

    public string Url => $"http://127.0.0.1:{Port}/hooks/tally";

    /// <summary>The status to answer a delivery with (it is recorded either way).</summary>
    public Func<ReceivedWebhook, int> Respond { get; set; } = _ => StatusCodes.Status204NoContent;

    public IReadOnlyList<ReceivedWebhook> Received => [.. _received];

    /// <summary>Starts a receiver on <paramref name="port"/> (0: a free one).</summary>
    public static async Task<WebhookReceiver> StartAsync(int port = 0, Func<ReceivedWebhook, int>? respond = null)
    {
        if (port == 0)
        {
            port = FreePort();
        }
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, port));
        var app = builder.Build();
        var receiver = new WebhookReceiver(app, port);
        if (respond is not null)
        {
            receiver.Respond = respond;
        }
        app.MapPost("/hooks/{**rest}", async (HttpContext context) =>
        {
            using var reader = new StreamReader(context.Request.Body, Encoding.UTF8);
            var body = await reader.ReadToEndAsync();
            var headers = context.Request.Headers;
            var pending = new ReceivedWebhook(headers["webhook-id"], headers["webhook-timestamp"], headers["webhook-signature"],
                context.Request.ContentType, body, DateTimeOffset.UtcNow, 0);
            var status = receiver.Respond(pending);
            receiver._received.Enqueue(pending with { Answered = status });
            context.Response.StatusCode = status;
        });
        await app.StartAsync();
        return receiver;
    }

    /// <summary>Waits until <paramref name="count"/> deliveries satisfy <paramref name="match"/> (all by default); fails with what arrived.</summary>
    public async Task<IReadOnlyList<ReceivedWebhook>> WaitForAsync(int count, Func<ReceivedWebhook, bool>? match = null, TimeSpan? timeout = null)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var matching = Received.Where(match ?? (_ => true)).ToList();
            if (matching.Count >= count)
            {
                return matching;
            }
            if (clock.Elapsed > (timeout ?? TimeSpan.FromSeconds(20)))
            {
                Assert.Fail($"Expected {count} matching deliveries within {clock.Elapsed.TotalSeconds:F0} s; received:\n  {string.Join("\n  ", Received)}");
            }
            await Task.Delay(25);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>
/// The Standard Webhooks verification, written here from the specification (spec/standard-webhooks.md, "Verifying
/// signatures"), not taken from Tally: the signed content is <c>msg_id.timestamp.payload</c>; the key is the
/// base64-decoded part of the secret after <c>whsec_</c>; the header is a space-delimited list of <c>v1,&lt;base64
/// HMAC-SHA256&gt;</c> signatures, compared in constant time; the timestamp must be within a tolerance of now.
/// </summary>
public static class StandardWebhooks
{
    public static readonly TimeSpan Tolerance = TimeSpan.FromMinutes(5);

    public static bool Verify(string secret, ReceivedWebhook delivery) =>
        Verify(secret, delivery.Id, delivery.Timestamp, delivery.Signature, delivery.Body, DateTimeOffset.UtcNow);

    public static bool Verify(string secret, string? id, string? timestamp, string? signatures, string body, DateTimeOffset now)
    {
        if (id is null || timestamp is null || signatures is null || !secret.StartsWith("whsec_", StringComparison.Ordinal))
        {
            return false;
        }
        // Neither the id nor the timestamp may hold a '.', which would make the signed content ambiguous.
        if (id.Contains('.', StringComparison.Ordinal) || !long.TryParse(timestamp, out var seconds))
        {
            return false;
        }
        if ((now - DateTimeOffset.FromUnixTimeSeconds(seconds)).Duration() > Tolerance)
        {
            return false;
        }
        var key = Convert.FromBase64String(secret["whsec_".Length..]);
        var expected = HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(id + "." + timestamp + "." + body));
        foreach (var signature in signatures.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var comma = signature.IndexOf(',', StringComparison.Ordinal);
            if (comma < 0 || signature[..comma] != "v1")
            {
                continue;
            }
            byte[] given;
            try
            {
                given = Convert.FromBase64String(signature[(comma + 1)..]);
            }
            catch (FormatException)
            {
                continue;
            }
            if (CryptographicOperations.FixedTimeEquals(given, expected))
            {
                return true;
            }
        }
        return false;
    }
}
