using System.Net;
using System.Text;
using System.Text.Json;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Events;

/// <summary>One Server-Sent Event as a client sees it (EventSource's rules: <c>event</c>, <c>data</c> lines joined, <c>id</c>).</summary>
internal sealed record SseMessage(string? Event, string Data, string? Id)
{
    public CounterJson Counter => JsonSerializer.Deserialize<CounterJson>(Data, Api.Json)!;

    public override string ToString() => $"event: {Event} id: {Id} data: {Data}";
}

/// <summary>
/// An open <c>text/event-stream</c> response read line by line, as a browser's EventSource would. Every read has a
/// deadline, so a test never hangs on a stream that stays silent; what was read is kept for assertion messages.
/// </summary>
internal sealed class EventStreamClient : IAsyncDisposable
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(10);

    private readonly HttpResponseMessage _response;
    private readonly StreamReader _reader;
    private readonly StringBuilder _seen = new();
    private Task<string?>? _pending;

    private EventStreamClient(HttpResponseMessage response, Stream body)
    {
        _response = response;
        _reader = new StreamReader(body, Encoding.UTF8);
    }

    public HttpResponseMessage Response => _response;

    /// <summary>Comment lines seen so far (heartbeats), without the colon.</summary>
    public List<string> Comments { get; } = [];

    /// <summary>Opens the stream and checks it is one (200, <c>text/event-stream</c>); fails with the answer otherwise.</summary>
    public static async Task<EventStreamClient> OpenAsync(HttpClient client, string path, string? lastEventId = null)
    {
        var response = await SendAsync(client, path, lastEventId);
        if (response.StatusCode != HttpStatusCode.OK)
        {
            var text = await response.Content.ReadAsStringAsync();
            response.Dispose();
            Assert.Fail($"GET {path} answered {(int)response.StatusCode}: {text}");
        }
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var body = await response.Content.ReadAsStreamAsync().WaitAsync(DefaultTimeout);
        return new EventStreamClient(response, body);
    }

    /// <summary>The answer to opening a stream, when it is expected not to be one (a problem).</summary>
    public static async Task<HttpResponseMessage> RefusedAsync(HttpClient client, string path)
    {
        var response = await SendAsync(client, path, null);
        Assert.NotEqual(HttpStatusCode.OK, response.StatusCode);
        return response;
    }

    private static Task<HttpResponseMessage> SendAsync(HttpClient client, string path, string? lastEventId)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Accept.ParseAdd("text/event-stream");
        if (lastEventId is not null)
        {
            request.Headers.TryAddWithoutValidation("Last-Event-ID", lastEventId);
        }
        return client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead).WaitAsync(DefaultTimeout);
    }

    /// <summary>The next event (comments before it are kept in <see cref="Comments"/>); fails if none comes within the timeout or the stream ends.</summary>
    public async Task<SseMessage> NextAsync(TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? DefaultTimeout);
        string? type = null;
        string? id = null;
        var data = new List<string>();
        while (true)
        {
            var line = await ReadLineAsync(deadline - DateTime.UtcNow);
            Assert.True(line is not null, $"The stream ended while an event was expected. Read so far:\n{_seen}");
            if (line.Length == 0)
            {
                if (data.Count > 0)
                {
                    return new SseMessage(type, string.Join('\n', data), id);
                }
                type = null;
                continue;
            }
            if (line.StartsWith(':'))
            {
                Comments.Add(line[1..].TrimStart());
                continue;
            }
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            var field = colon < 0 ? line : line[..colon];
            var value = colon < 0 ? string.Empty : line[(colon + 1)..].TrimStart(' ');
            switch (field)
            {
                case "event":
                    type = value;
                    break;
                case "data":
                    data.Add(value);
                    break;
                case "id":
                    id = value;
                    break;
            }
        }
    }

    /// <summary>The next <paramref name="count"/> events.</summary>
    public async Task<List<SseMessage>> NextAsync(int count, TimeSpan? timeout = null)
    {
        var messages = new List<SseMessage>();
        for (var i = 0; i < count; i++)
        {
            messages.Add(await NextAsync(timeout));
        }
        return messages;
    }

    /// <summary>Waits for a comment line; fails if an event comes first or nothing within the timeout.</summary>
    public async Task<string> NextCommentAsync(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var line = await ReadLineAsync(deadline - DateTime.UtcNow);
            Assert.True(line is not null, $"The stream ended while a comment was expected. Read so far:\n{_seen}");
            if (line.StartsWith(':'))
            {
                Comments.Add(line[1..].TrimStart());
                return line[1..].TrimStart();
            }
            Assert.True(line.Length == 0, $"An event came while a comment was expected. Read so far:\n{_seen}");
        }
    }

    /// <summary>Reads to the end of the stream; the events read on the way. Fails if it does not end within the timeout.</summary>
    public async Task<List<SseMessage>> ReadToEndAsync(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        var messages = new List<SseMessage>();
        string? type = null;
        var data = new List<string>();
        while (await ReadLineAsync(deadline - DateTime.UtcNow) is { } line)
        {
            if (line.StartsWith("event:", StringComparison.Ordinal))
            {
                type = line[6..].Trim();
            }
            else if (line.StartsWith("data:", StringComparison.Ordinal))
            {
                data.Add(line[5..].TrimStart(' '));
            }
            else if (line.Length == 0 && data.Count > 0)
            {
                messages.Add(new SseMessage(type, string.Join('\n', data), null));
                data.Clear();
                type = null;
            }
        }
        return messages;
    }

    /// <summary>Asserts that nothing but comments arrives within <paramref name="quiet"/>.</summary>
    public async Task NothingWithinAsync(TimeSpan quiet)
    {
        var deadline = DateTime.UtcNow + quiet;
        while (DateTime.UtcNow < deadline)
        {
            string? line;
            try
            {
                line = await ReadLineAsync(deadline - DateTime.UtcNow);
            }
            catch (TimeoutException)
            {
                return;
            }
            Assert.True(line is not null && (line.Length == 0 || line.StartsWith(':')), $"Expected no event, got '{line}'. Read so far:\n{_seen}");
        }
    }

    public string Describe() => _seen.ToString();

    private async Task<string?> ReadLineAsync(TimeSpan timeout)
    {
        if (timeout <= TimeSpan.Zero)
        {
            throw new TimeoutException($"Nothing more from the stream in time. Read so far:\n{_seen}");
        }
        // A read that timed out stays pending, and the next call goes on waiting for it (a reader allows one read at a time).
        _pending ??= _reader.ReadLineAsync();
        string? line;
        try
        {
            line = await _pending.WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"Nothing more from the stream within {timeout.TotalSeconds:0.#} s. Read so far:\n{_seen}");
        }
        _pending = null;
        _seen.Append(line ?? "<end>").Append('\n');
        return line;
    }

    public ValueTask DisposeAsync()
    {
        _reader.Dispose();
        _response.Dispose();
        return ValueTask.CompletedTask;
    }
}
