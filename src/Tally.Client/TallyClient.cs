using System.Buffers;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Polly;

namespace Tally.Client;

/// <summary>
/// A typed client for Tally's HTTP API. Register it with
/// <see cref="Microsoft.Extensions.DependencyInjection.TallyClientServiceCollectionExtensions.AddTallyClient"/>, which sets the
/// address, the key and the retries. Every change carries an <c>Idempotency-Key</c> generated once per call and
/// sent again on every retry, so a retry never counts twice. A problem Tally answers is thrown as a
/// <see cref="TallyException"/> (a subclass per kind); a service that cannot be reached as <see cref="HttpRequestException"/>.
/// </summary>
public sealed class TallyClient
{
    /// <summary>The header that makes a change safe to repeat.</summary>
    public const string IdempotencyKeyHeader = "Idempotency-Key";

    /// <summary>Set in the call's resilience context when an attempt was retried after its answer was lost (a dropped
    /// connection, a timeout): the server may have applied that attempt.</summary>
    internal static readonly ResiliencePropertyKey<bool> AnswerLost = new("Tally.Client.AnswerLost");

    private static readonly MediaTypeHeaderValue Json = new("application/json");
    private readonly HttpClient _http;

    /// <summary>A client over an <see cref="HttpClient"/> whose <c>BaseAddress</c> (and authorization) are set.</summary>
    /// <param name="http">
    /// The HttpClient, as the factory configures it. Its <c>BaseAddress</c> may have a path (a service behind a proxy at
    /// <c>https://example.com/tally/</c>): requests go below it. End such a path with a slash here;
    /// <c>AddTallyClient</c> adds it itself.
    /// </param>
    public TallyClient(HttpClient http)
    {
        ArgumentNullException.ThrowIfNull(http);
        _http = http;
    }

    /// <summary>
    /// The address with a trailing slash: the client's paths are relative, and <c>http://host/tally</c> would resolve
    /// them against <c>http://host/</c>, dropping <c>tally</c>.
    /// </summary>
    internal static Uri AsDirectory(Uri address) =>
        address.IsAbsoluteUri && !address.AbsolutePath.EndsWith('/') ? new UriBuilder(address) { Path = address.AbsolutePath + "/" }.Uri : address;

    /// <summary>Reads a counter.</summary>
    /// <param name="name">The counter's name.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="CounterNotFoundException">No such counter.</exception>
    public Task<Counter> GetAsync(string name, CancellationToken cancellationToken = default) =>
        SendAsync(new HttpRequestMessage(HttpMethod.Get, CounterPath(name)), TallyJson.Default.Counter, cancellationToken);

    /// <summary>Creates a counter, or updates the fields given (<c>PUT /counters/{name}</c>).</summary>
    /// <param name="name">The counter's name.</param>
    /// <param name="settings">The fields to send; null or empty creates a counter at 0 (or restates an existing one).</param>
    /// <param name="ifMatch">Apply only at this version (<see cref="VersionMismatchException"/> otherwise).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public Task<Counter> SetAsync(string name, CounterSettings? settings = null, long? ifMatch = null, CancellationToken cancellationToken = default)
    {
        var body = WriteJson(json =>
        {
            json.WriteStartObject();
            settings?.WriteMembers(json);
            json.WriteEndObject();
        });
        return SendAsync(Change(HttpMethod.Put, CounterPath(name), ifMatch, body), TallyJson.Default.Counter, cancellationToken);
    }

    /// <summary>Adds <paramref name="by"/> to a counter (created at 0 if it does not exist).</summary>
    /// <param name="name">The counter's name.</param>
    /// <param name="by">1 to 2^63-1.</param>
    /// <param name="ifMatch">Apply only at this version.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="CounterOutOfRangeException">The result would leave the counter's bounds; nothing changed.</exception>
    public Task<Counter> IncrementAsync(string name, long by = 1, long? ifMatch = null, CancellationToken cancellationToken = default) =>
        SendAsync(Change(HttpMethod.Post, $"{CounterPath(name)}/increment?by={by.ToString(CultureInfo.InvariantCulture)}", ifMatch),
            TallyJson.Default.Counter, cancellationToken);

    /// <summary>Subtracts <paramref name="by"/> from a counter (created at 0 if it does not exist).</summary>
    /// <param name="name">The counter's name.</param>
    /// <param name="by">1 to 2^63-1.</param>
    /// <param name="ifMatch">Apply only at this version.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="CounterOutOfRangeException">The result would leave the counter's bounds; nothing changed.</exception>
    public Task<Counter> DecrementAsync(string name, long by = 1, long? ifMatch = null, CancellationToken cancellationToken = default) =>
        SendAsync(Change(HttpMethod.Post, $"{CounterPath(name)}/decrement?by={by.ToString(CultureInfo.InvariantCulture)}", ifMatch),
            TallyJson.Default.Counter, cancellationToken);

    /// <summary>Sets a counter back to its initial value.</summary>
    /// <param name="name">The counter's name.</param>
    /// <param name="ifMatch">Apply only at this version.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public Task<Counter> ResetAsync(string name, long? ifMatch = null, CancellationToken cancellationToken = default) =>
        SendAsync(Change(HttpMethod.Post, $"{CounterPath(name)}/reset", ifMatch), TallyJson.Default.Counter, cancellationToken);

    /// <summary>Deletes a counter and its history.</summary>
    /// <param name="name">The counter's name.</param>
    /// <param name="ifMatch">Apply only at this version.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public Task DeleteAsync(string name, long? ifMatch = null, CancellationToken cancellationToken = default) =>
        SendAsync(Change(HttpMethod.Delete, CounterPath(name), ifMatch), cancellationToken);

    /// <summary>One page of counters in name order.</summary>
    /// <param name="prefix">Only names starting with it (null: the key's own counters).</param>
    /// <param name="after">The <see cref="CounterPage.Next"/> of the previous page.</param>
    /// <param name="limit">1 to 1000 (default 100).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public Task<CounterPage> ListAsync(string? prefix = null, string? after = null, int? limit = null, CancellationToken cancellationToken = default) =>
        SendAsync(new HttpRequestMessage(HttpMethod.Get, "counters" + Query(("prefix", prefix), ("after", after), ("limit", Number(limit)))),
            TallyJson.Default.CounterPage, cancellationToken);

    /// <summary>Every counter under <paramref name="prefix"/> in name order, page after page.</summary>
    /// <param name="prefix">Only names starting with it.</param>
    /// <param name="pageSize">Counters per request, 1 to 1000.</param>
    /// <param name="cancellationToken">Cancels the enumeration.</param>
    public async IAsyncEnumerable<Counter> ListAllAsync(string? prefix = null, int pageSize = 1000, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        string? after = null;
        do
        {
            var page = await ListAsync(prefix, after, pageSize, cancellationToken).ConfigureAwait(false);
            foreach (var counter in page.Items)
            {
                yield return counter;
            }
            after = page.Next;
        }
        while (after is not null);
    }

    /// <summary>The counters with the highest values under <paramref name="prefix"/>, highest first.</summary>
    /// <param name="prefix">Only names starting with it.</param>
    /// <param name="limit">1 to 1000 (default 100).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public async Task<IReadOnlyList<Counter>> TopAsync(string? prefix = null, int? limit = null, CancellationToken cancellationToken = default)
    {
        var page = await SendAsync(new HttpRequestMessage(HttpMethod.Get,
            "counters" + Query(("prefix", prefix), ("order", "value_desc"), ("limit", Number(limit)))),
            TallyJson.Default.ItemsPageCounter, cancellationToken).ConfigureAwait(false);
        return page.Items;
    }

    /// <summary>Applies up to 1,000 operations in one commit, in order.</summary>
    /// <param name="operations">The operations.</param>
    /// <param name="atomic">All or nothing: a failure throws <see cref="BatchFailedException"/> and nothing applies.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>One result per operation, in order; a failed operation's result carries its problem.</returns>
    public async Task<IReadOnlyList<BatchResult>> BatchAsync(IEnumerable<BatchOperation> operations, bool atomic = false, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(operations);
        var body = WriteJson(json =>
        {
            json.WriteStartObject();
            json.WriteBoolean("atomic", atomic);
            json.WriteStartArray("ops");
            foreach (var operation in operations)
            {
                operation.Write(json);
            }
            json.WriteEndArray();
            json.WriteEndObject();
        });
        using var response = await SendRawAsync(Change(HttpMethod.Post, "batch", null, body), HttpCompletionOption.ResponseContentRead, cancellationToken)
            .ConfigureAwait(false);
        using var document = JsonDocument.Parse(await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false));
        var results = new List<BatchResult>();
        foreach (var result in document.RootElement.GetProperty("results").EnumerateArray())
        {
            var status = result.GetProperty("status").GetInt32();
            var counter = result.TryGetProperty("counter", out var c) && c.ValueKind == JsonValueKind.Object
                ? c.Deserialize(TallyJson.Default.Counter) : null;
            var error = result.TryGetProperty("error", out var e) && e.ValueKind == JsonValueKind.Object ? Problems.From(e, status) : null;
            results.Add(new BatchResult(status, counter, error));
        }
        return results;
    }

    /// <summary>A counter's history: the buckets with activity in [<paramref name="from"/>, <paramref name="to"/>).</summary>
    /// <param name="name">The counter's name.</param>
    /// <param name="interval">Bucket size (default minute).</param>
    /// <param name="from">Start (default: 60 intervals before <paramref name="to"/>).</param>
    /// <param name="to">End, exclusive (default: the end of the current interval).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public Task<CounterHistory> GetHistoryAsync(string name, HistoryInterval interval = HistoryInterval.Minute, DateTimeOffset? from = null,
        DateTimeOffset? to = null, CancellationToken cancellationToken = default) =>
        SendAsync(new HttpRequestMessage(HttpMethod.Get, $"{CounterPath(name)}/history" + Query(
                ("interval", interval.ToString().ToLowerInvariant()), ("from", Time(from)), ("to", Time(to)))),
            TallyJson.Default.CounterHistory, cancellationToken);

    /// <summary>Creates or replaces a threshold alert.</summary>
    /// <param name="id">The alert's id.</param>
    /// <param name="definition">What it watches and where it posts.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The alert; <see cref="Alert.Secret"/> holds the secret when Tally generated one.</returns>
    public Task<Alert> PutAlertAsync(string id, AlertDefinition definition, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(definition);
        var body = new AlertRequestBody(definition.Counter, definition.Prefix, definition.Above, definition.Below, definition.Resolve,
            definition.Webhook, definition.Secret);
        var request = new HttpRequestMessage(HttpMethod.Put, AlertPath(id))
        {
            Content = new ByteArrayContent(JsonSerializer.SerializeToUtf8Bytes(body, TallyJson.Default.AlertRequestBody)) { Headers = { ContentType = Json } },
        };
        return SendAsync(request, TallyJson.Default.Alert, cancellationToken);
    }

    /// <summary>Reads an alert (never its secret).</summary>
    /// <param name="id">The alert's id.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public Task<Alert> GetAlertAsync(string id, CancellationToken cancellationToken = default) =>
        SendAsync(new HttpRequestMessage(HttpMethod.Get, AlertPath(id)), TallyJson.Default.Alert, cancellationToken);

    /// <summary>The alerts this key may manage, in id order.</summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    public async Task<IReadOnlyList<Alert>> ListAlertsAsync(CancellationToken cancellationToken = default) =>
        (await SendAsync(new HttpRequestMessage(HttpMethod.Get, "alerts"), TallyJson.Default.ItemsPageAlert, cancellationToken).ConfigureAwait(false)).Items;

    /// <summary>Deletes an alert with its states, undelivered events and delivery attempts.</summary>
    /// <param name="id">The alert's id.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="AlertNotFoundException">No such alert (not thrown when a retry after a lost answer finds it already deleted).</exception>
    public Task DeleteAlertAsync(string id, CancellationToken cancellationToken = default) =>
        DeleteUnkeyedAsync(AlertPath(id), "alert_not_found", cancellationToken);

    /// <summary>The alert's latest webhook delivery attempts, newest first.</summary>
    /// <param name="id">The alert's id.</param>
    /// <param name="limit">1 to 1000 (default 100).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public async Task<IReadOnlyList<AlertDelivery>> GetDeliveriesAsync(string id, int? limit = null, CancellationToken cancellationToken = default) =>
        (await SendAsync(new HttpRequestMessage(HttpMethod.Get, $"{AlertPath(id)}/deliveries" + Query(("limit", Number(limit)))),
            TallyJson.Default.ItemsPageAlertDelivery, cancellationToken).ConfigureAwait(false)).Items;

    /// <summary>
    /// Live events of one counter: its current state first (if it exists), then its latest state at most every
    /// <c>Events:CoalesceMs</c> of the service (100 ms by default) while it changes; intermediate values may be skipped
    /// (every change is an event only when the service sets <c>Events:CoalesceMs=0</c>). A deletion is always sent.
    /// </summary>
    /// <param name="name">The counter's name.</param>
    /// <param name="lastEventId">Resume after this event id.</param>
    /// <param name="cancellationToken">Ends the stream.</param>
    public IAsyncEnumerable<TallyEvent> WatchAsync(string name, string? lastEventId = null, CancellationToken cancellationToken = default) =>
        StreamAsync($"{CounterPath(name)}/events", lastEventId, cancellationToken);

    /// <summary>
    /// Live events of every counter under a prefix: the first 1,000 counters' states, then the latest state of each counter
    /// that changes, at most every <c>Events:CoalesceMs</c> of the service (100 ms by default); intermediate values may be
    /// skipped (every change is an event only when the service sets <c>Events:CoalesceMs=0</c>). Deletions and alerts are always sent.
    /// </summary>
    /// <param name="prefix">The prefix (null or "": the key's own).</param>
    /// <param name="lastEventId">Resume after this event id.</param>
    /// <param name="cancellationToken">Ends the stream.</param>
    public IAsyncEnumerable<TallyEvent> WatchPrefixAsync(string? prefix = null, string? lastEventId = null, CancellationToken cancellationToken = default) =>
        StreamAsync("events" + Query(("prefix", prefix)), lastEventId, cancellationToken);

    /// <summary>Creates an API key (admin).</summary>
    /// <param name="request">Its name, scopes, prefix and limits.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The key with its secret, shown this once.</returns>
    public Task<CreatedApiKey> CreateKeyAsync(ApiKeyRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var message = new HttpRequestMessage(HttpMethod.Post, "admin/keys")
        {
            Content = new ByteArrayContent(JsonSerializer.SerializeToUtf8Bytes(request, TallyJson.Default.ApiKeyRequest)) { Headers = { ContentType = Json } },
        };
        return SendAsync(message, TallyJson.Default.CreatedApiKey, cancellationToken);
    }

    /// <summary>The stored API keys, oldest first, without secrets (admin).</summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    public async Task<IReadOnlyList<ApiKeyInfo>> ListKeysAsync(CancellationToken cancellationToken = default) =>
        (await SendAsync(new HttpRequestMessage(HttpMethod.Get, "admin/keys"), TallyJson.Default.ItemsPageApiKeyInfo, cancellationToken).ConfigureAwait(false)).Items;

    /// <summary>Revokes an API key (admin).</summary>
    /// <param name="id">The key's id.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="ApiKeyNotFoundException">No such key (not thrown when a retry after a lost answer finds it already revoked).</exception>
    public Task RevokeKeyAsync(string id, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(id);
        return DeleteUnkeyedAsync("admin/keys/" + Uri.EscapeDataString(id), "key_not_found", cancellationToken);
    }

    /// <summary>Writes every counter as JSON lines (<c>GET /admin/export</c>) to <paramref name="destination"/> (admin).</summary>
    /// <param name="destination">Where the lines go.</param>
    /// <param name="progress">Told the bytes written so far.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The bytes written.</returns>
    public Task<long> ExportAsync(Stream destination, IProgress<TransferProgress>? progress = null, CancellationToken cancellationToken = default) =>
        DownloadAsync("admin/export", destination, progress, cancellationToken);

    /// <summary>Every counter of an export, one at a time (admin).</summary>
    /// <param name="cancellationToken">Cancels the enumeration.</param>
    public async IAsyncEnumerable<Counter> ExportCountersAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        using var response = await SendRawAsync(new HttpRequestMessage(HttpMethod.Get, "admin/export"), HttpCompletionOption.ResponseHeadersRead, cancellationToken)
            .ConfigureAwait(false);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false), Encoding.UTF8);
        while (await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false) is { } line)
        {
            if (line.Length > 0)
            {
                yield return JsonSerializer.Deserialize(line, TallyJson.Default.Counter)!;
            }
        }
    }

    /// <summary>Writes the counters of an export (JSON lines) in one atomic commit, versions and times included (admin).</summary>
    /// <param name="source">The export's lines.</param>
    /// <param name="progress">Told the bytes sent so far (and the total when the stream knows its length).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>How many counters were imported.</returns>
    public async Task<int> ImportAsync(Stream source, IProgress<TransferProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        var request = new HttpRequestMessage(HttpMethod.Post, "admin/import") { Content = new ProgressContent(source, progress) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/x-ndjson");
        var result = await SendAsync(request, TallyJson.Default.ImportResult, cancellationToken).ConfigureAwait(false);
        return result.Imported;
    }

    /// <summary>Downloads a consistent copy of the SQLite data file (admin; the embedded store only).</summary>
    /// <param name="destination">Where the file goes.</param>
    /// <param name="progress">Told the bytes written so far and the total.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The bytes written.</returns>
    /// <exception cref="InvalidRequestException"><c>backup_not_supported</c> on another store.</exception>
    public Task<long> BackupAsync(Stream destination, IProgress<TransferProgress>? progress = null, CancellationToken cancellationToken = default) =>
        DownloadAsync("admin/backup", destination, progress, cancellationToken);

    private async Task<long> DownloadAsync(string path, Stream destination, IProgress<TransferProgress>? progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(destination);
        using var response = await SendRawAsync(new HttpRequestMessage(HttpMethod.Get, path), HttpCompletionOption.ResponseHeadersRead, cancellationToken)
            .ConfigureAwait(false);
        var total = response.Content.Headers.ContentLength;
        await using var body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        var buffer = ArrayPool<byte>.Shared.Rent(81920);
        try
        {
            long written = 0;
            progress?.Report(new TransferProgress(0, total));
            int read;
            while ((read = await body.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
            {
                await destination.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
                written += read;
                progress?.Report(new TransferProgress(written, total));
            }
            await destination.FlushAsync(cancellationToken).ConfigureAwait(false);
            return written;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private async IAsyncEnumerable<TallyEvent> StreamAsync(string path, string? lastEventId, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        if (lastEventId is not null)
        {
            request.Headers.TryAddWithoutValidation("Last-Event-ID", lastEventId);
        }
        using var response = await SendRawAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        await using var body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        await foreach (var item in SseParser.Create(body).EnumerateAsync(cancellationToken).ConfigureAwait(false))
        {
            switch (item.EventType)
            {
                case "counter":
                    var counter = JsonSerializer.Deserialize(item.Data, TallyJson.Default.Counter)!;
                    yield return new TallyEvent(TallyEventKind.Counter, item.EventId, counter.Name, counter, item.Data);
                    break;
                case "deleted":
                    var deleted = JsonSerializer.Deserialize(item.Data, TallyJson.Default.CounterNameOnly)!;
                    yield return new TallyEvent(TallyEventKind.Deleted, item.EventId, deleted.Name, null, item.Data);
                    break;
                case "alert":
                    yield return new TallyEvent(TallyEventKind.Alert, item.EventId, AlertCounter(item.Data), null, item.Data);
                    break;
            }
        }
    }

    private static string? AlertCounter(string data)
    {
        using var document = JsonDocument.Parse(data);
        return document.RootElement.TryGetProperty("data", out var inner) && inner.TryGetProperty("counter", out var counter)
            ? counter.GetString() : null;
    }

    private async Task<T> SendAsync<T>(HttpRequestMessage request, JsonTypeInfo<T> type, CancellationToken cancellationToken)
    {
        using var response = await SendRawAsync(request, HttpCompletionOption.ResponseContentRead, cancellationToken).ConfigureAwait(false);
        var body = await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
        return JsonSerializer.Deserialize(body, type) ?? throw new InvalidDataException("Tally answered an empty body.");
    }

    private async Task SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        using var response = await SendRawAsync(request, HttpCompletionOption.ResponseContentRead, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// A DELETE without an Idempotency-Key (alerts, keys). It is retried like any DELETE; when an attempt's answer was
    /// lost, that attempt may have deleted the thing, so the retry's 404 <paramref name="notFoundCode"/> is that success.
    /// </summary>
    private async Task DeleteUnkeyedAsync(string path, string notFoundCode, CancellationToken cancellationToken)
    {
        var context = ResilienceContextPool.Shared.Get(cancellationToken);
        try
        {
            var request = new HttpRequestMessage(HttpMethod.Delete, path);
            // The resilience handler runs its pipeline in this context, so the retry's OnRetry marks it.
            request.SetResilienceContext(context);
            await SendAsync(request, cancellationToken).ConfigureAwait(false);
        }
        catch (NotFoundException problem) when (problem.Code == notFoundCode && context.Properties.GetValue(AnswerLost, false))
        {
            // Deleted by the attempt whose answer was lost.
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
    }

    /// <summary>Sends, and throws the problem of any answer that is not a success.</summary>
    private async Task<HttpResponseMessage> SendRawAsync(HttpRequestMessage request, HttpCompletionOption completion, CancellationToken cancellationToken)
    {
        using (request)
        {
            var response = await _http.SendAsync(request, completion, cancellationToken).ConfigureAwait(false);
            if (response.IsSuccessStatusCode)
            {
                return response;
            }
            using (response)
            {
                throw await Problems.ReadAsync(response, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>A change: it carries a fresh Idempotency-Key, the same on every retry of this request.</summary>
    private static HttpRequestMessage Change(HttpMethod method, string path, long? ifMatch, byte[]? body = null)
    {
        var request = new HttpRequestMessage(method, path);
        request.Headers.TryAddWithoutValidation(IdempotencyKeyHeader, Guid.NewGuid().ToString("N"));
        if (ifMatch is { } version)
        {
            request.Headers.IfMatch.Add(new EntityTagHeaderValue($"\"{version.ToString(CultureInfo.InvariantCulture)}\""));
        }
        if (body is not null)
        {
            request.Content = new ByteArrayContent(body) { Headers = { ContentType = Json } };
        }
        return request;
    }

    private static byte[] WriteJson(Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(buffer))
        {
            write(json);
        }
        return buffer.WrittenSpan.ToArray();
    }

    private static string CounterPath(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        return "counters/" + Uri.EscapeDataString(name);
    }

    private static string AlertPath(string id)
    {
        ArgumentException.ThrowIfNullOrEmpty(id);
        return "alerts/" + Uri.EscapeDataString(id);
    }

    private static string? Number(int? value) => value?.ToString(CultureInfo.InvariantCulture);

    private static string? Time(DateTimeOffset? time) => time?.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);

    private static string Query(params (string Name, string? Value)[] parameters)
    {
        var query = new StringBuilder();
        foreach (var (name, value) in parameters)
        {
            if (value is null)
            {
                continue;
            }
            query.Append(query.Length == 0 ? '?' : '&').Append(name).Append('=').Append(Uri.EscapeDataString(value));
        }
        return query.ToString();
    }
}

/// <summary>How far a transfer is.</summary>
/// <param name="Bytes">Bytes transferred so far.</param>
/// <param name="Total">The total, when known.</param>
public readonly record struct TransferProgress(long Bytes, long? Total);

/// <summary>A request body read from a stream, reporting the bytes sent.</summary>
internal sealed class ProgressContent(Stream source, IProgress<TransferProgress>? progress) : HttpContent
{
    private readonly long? _total = source.CanSeek ? source.Length - source.Position : null;

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
        await SerializeToStreamAsync(stream, context, CancellationToken.None).ConfigureAwait(false);

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(81920);
        try
        {
            long sent = 0;
            progress?.Report(new TransferProgress(0, _total));
            int read;
            while ((read = await source.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
            {
                await stream.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
                sent += read;
                progress?.Report(new TransferProgress(sent, _total));
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    protected override bool TryComputeLength(out long length)
    {
        length = _total ?? 0;
        return _total is not null;
    }
}
