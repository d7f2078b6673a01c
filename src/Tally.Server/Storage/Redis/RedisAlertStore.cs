using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using StackExchange.Redis;
using Tally.Server.Alerts;

namespace Tally.Server.Storage.Redis;

/// <summary>
/// Alerts in Redis, shared by every instance. Definitions: the hash <see cref="AlertsKey"/> (id → JSON, secret
/// included), reloaded on every instance when the generation every change bumps has moved (a message on
/// <see cref="ChangedChannel"/> wakes it at once; the generation is also read every <see cref="PollInterval"/>, as for
/// the API keys). Outbox: the stream <see cref="OutboxKey"/>, which tally_v1_commit appends to in the commit itself,
/// read through the consumer group <see cref="Group"/>: an entry read is pending for this instance's consumer (its
/// lease) until tally_v1_alert_finish acknowledges it; one idle longer than the lease (a crashed sender's) is taken over
/// with <c>XAUTOCLAIM</c>. A failed attempt leaves the stream for the sorted set <c>tally:alerts:retry</c>, and
/// tally_v1_alert_due puts it back when it is due. Attempts: a list per alert, newest first, the last 10,000.
/// </summary>
internal sealed partial class RedisAlertStore(IConnectionMultiplexer redis, AlertCatalog catalog, ILogger<RedisAlertStore> logger)
    : AlertRegistry(catalog), IAlertOutbox
{
    public const string AlertsKey = "tally:alerts";
    public const string GenerationKey = "tally:alerts:generation";
    public const string ChangedChannel = "tally:alerts:changed";
    public const string OutboxKey = "tally:alerts:outbox";
    public const string RetryKey = "tally:alerts:retry";
    public const string Group = "senders";

    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(250);

    private static readonly RedisChannel s_channel = RedisChannel.Literal(ChangedChannel);

    // KEYS: alerts hash, generation. ARGV: id, document, expected document ('' : any), channel. Returns 1 when saved.
    private const string SaveScript = """
        if ARGV[3] ~= '' and redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[3] then
            return 0
        end
        redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
        redis.call('PUBLISH', ARGV[4], redis.call('INCR', KEYS[2]))
        return 1
        """;

    // KEYS: alerts hash, generation, the alert's attempts list. ARGV: id, channel. Returns 1 when it existed.
    private const string DeleteScript = """
        local existed = redis.call('HDEL', KEYS[1], ARGV[1])
        redis.call('DEL', KEYS[3])
        redis.call('PUBLISH', ARGV[2], redis.call('INCR', KEYS[2]))
        return existed
        """;

    // KEYS: an attempts list. ARGV: before. Drops the attempts older than that from its old end.
    private const string PruneScript = """
        while true do
            local last = redis.call('LINDEX', KEYS[1], -1)
            if not last or tonumber(cjson.decode(last).at) >= tonumber(ARGV[1]) then
                return 0
            end
            redis.call('RPOP', KEYS[1])
        end
        """;

    private readonly string _consumer = "tally-" + Guid.NewGuid().ToString("N");
    private RedisChangeWatch? _watch;

    private IDatabase Database => redis.GetDatabase();

    private RedisChangeWatch Watch => _watch ??= new RedisChangeWatch(redis, s_channel, GenerationKey, "alerts", logger, ReloadAsync)
    {
        PollInterval = PollInterval,
    };

    public async Task<IReadOnlyList<OutboxEvent>> LeaseAsync(int max, long now, TimeSpan lease, CancellationToken cancellationToken)
    {
        try
        {
            return await LeaseOnceAsync(max, now, lease);
        }
        catch (RedisServerException ex) when (ex.Message.StartsWith("NOGROUP", StringComparison.Ordinal))
        {
            // Redis lost the stream and its group (emptied, or restarted without its data): make them again.
            await CreateGroupAsync();
            return await LeaseOnceAsync(max, now, lease);
        }
    }

    private async Task CreateGroupAsync()
    {
        try
        {
            await Database.StreamCreateConsumerGroupAsync(OutboxKey, Group, "0-0", createStream: true);
        }
        catch (RedisServerException ex) when (ex.Message.StartsWith("BUSYGROUP", StringComparison.Ordinal))
        {
            // Created by another instance, or at an earlier start.
        }
    }

    private async Task<IReadOnlyList<OutboxEvent>> LeaseOnceAsync(int max, long now, TimeSpan lease)
    {
        await CallAsync(RedisLibrary.AlertDue, now.ToString(CultureInfo.InvariantCulture), max.ToString(CultureInfo.InvariantCulture));
        var leased = new List<OutboxEvent>();
        var claimed = await Database.StreamAutoClaimAsync(OutboxKey, Group, _consumer, (long)lease.TotalMilliseconds, "0-0", max);
        foreach (var entry in claimed.ClaimedEntries)
        {
            AddEntry(leased, entry);
        }
        if (leased.Count < max)
        {
            foreach (var entry in await Database.StreamReadGroupAsync(OutboxKey, Group, _consumer, ">", max - leased.Count))
            {
                AddEntry(leased, entry);
            }
        }
        return leased;
    }

    public async Task FinishAsync(OutboxEvent leased, DeliveryAttempt? attempt, long? retryAt, CancellationToken cancellationToken)
    {
        var listed = attempt is null ? string.Empty : JsonSerializer.Serialize(StoredAttempt.From(attempt), StoredAttemptJson.Default.StoredAttempt);
        await CallAsync(RedisLibrary.AlertFinish, leased.Lease, _consumer, leased.Id,
            (attempt?.Attempt ?? leased.Attempts).ToString(CultureInfo.InvariantCulture),
            retryAt?.ToString(CultureInfo.InvariantCulture) ?? string.Empty, listed, leased.AlertId);
    }

    public async Task<IReadOnlyList<DeliveryAttempt>> ListDeliveriesAsync(string alertId, int limit, CancellationToken cancellationToken)
    {
        try
        {
            var entries = await Database.ListRangeAsync(AttemptsKey(alertId), 0, limit - 1);
            return [.. entries.Select(entry => JsonSerializer.Deserialize((string)entry!, StoredAttemptJson.Default.StoredAttempt)!.ToAttempt(alertId))];
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            throw new StoreUnavailableException($"Redis does not answer ({ex.Message}).", ex);
        }
    }

    public async Task<long> CountAsync(CancellationToken cancellationToken)
    {
        var transaction = Database.CreateTransaction();
        var stream = transaction.StreamLengthAsync(OutboxKey);
        var retries = transaction.SortedSetLengthAsync(RetryKey);
        await transaction.ExecuteAsync();
        return await stream + await retries;
    }

    public async Task PruneDeliveriesAsync(long before, CancellationToken cancellationToken)
    {
        foreach (var alert in Current.All)
        {
            await Database.ScriptEvaluateAsync(PruneScript, [AttemptsKey(alert.Id)], [before]);
        }
    }

    protected override async Task<IReadOnlyList<AlertDefinition>> LoadAsync(CancellationToken cancellationToken)
    {
        try
        {
            await Watch.SubscribeAsync();
            await CreateGroupAsync();
            var (generation, alerts) = await ReadAsync();
            Watch.Start(generation);
            return alerts;
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            throw new StoreStartupException($"Redis cannot be used to load the alerts ({ex.Message}). Check the Redis configuration string and that the server answers.", ex);
        }
    }

    protected override async Task<bool> SaveAsync(AlertDefinition alert, AlertDefinition? expected, CancellationToken cancellationToken) =>
        await ChangeAsync(SaveScript, [AlertsKey, GenerationKey], [alert.Id, alert.ToDocument(), expected?.ToDocument() ?? string.Empty, ChangedChannel]) == 1;

    /// <summary>Its undelivered events are dropped by the senders as they come due (the stream is not searched by alert).</summary>
    protected override async Task<bool> DeleteAsync(string id, CancellationToken cancellationToken) =>
        await ChangeAsync(DeleteScript, [AlertsKey, GenerationKey, AttemptsKey(id)], [id, ChangedChannel]) == 1;

    protected override async ValueTask DisposeCoreAsync()
    {
        if (_watch is not null)
        {
            await _watch.DisposeAsync();
        }
        try
        {
            // A consumer with nothing pending leaves the group; one with entries stays until another sender takes them over.
            await Database.ExecuteAsync("EVAL", """
                local consumers = redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
                for _, c in ipairs(consumers) do
                    if c[2] == ARGV[2] and c[4] == 0 then
                        redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
                    end
                end
                return 0
                """, 1, OutboxKey, Group, _consumer);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException)
        {
            // The connection is going too.
        }
    }

    private static RedisKey AttemptsKey(string alertId) => "tally:alerts:d:" + alertId;

    private static void AddEntry(List<OutboxEvent> leased, StreamEntry entry)
    {
        if (entry.IsNull)
        {
            return; // deleted meanwhile
        }
        var id = entry["id"];
        leased.Add(new OutboxEvent(
            id.IsNull ? "evt_" + entry.Id : (string)id!,
            (string)entry["alert"]!,
            AlertEvent.ParseType((string)entry["type"]!),
            (string)entry["payload"]!,
            (long)entry["at"],
            (int)entry["attempts"],
            Lease: (string)entry.Id!));
    }

    /// <summary>FCALL; if Redis lost its functions, loads them again once.</summary>
    private async Task<RedisResult> CallAsync(string function, params object[] arguments)
    {
        object[] command = [function, 0, .. arguments];
        try
        {
            return await Database.ExecuteAsync("FCALL", command);
        }
        catch (RedisServerException ex) when (RedisLibrary.IsMissing(ex))
        {
            await RedisLibrary.LoadAsync(Database);
            return await Database.ExecuteAsync("FCALL", command);
        }
    }

    private async Task<long> ChangeAsync(string script, RedisKey[] keys, RedisValue[] arguments)
    {
        try
        {
            var result = (long)await Database.ScriptEvaluateAsync(script, keys, arguments);
            Watch.NoteLocalChange();
            return result;
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            throw new AlertStoreException($"The alert store could not write ({ex.Message}).", ex);
        }
    }

    private async Task<(long Generation, IReadOnlyList<AlertDefinition> Alerts)> ReadAsync()
    {
        // One transaction for both, so the alerts read belong to the generation read.
        var transaction = Database.CreateTransaction();
        var generation = transaction.StringGetAsync(GenerationKey);
        var entries = transaction.HashGetAllAsync(AlertsKey);
        await transaction.ExecuteAsync();
        var alerts = new List<AlertDefinition>();
        foreach (var entry in await entries)
        {
            try
            {
                alerts.Add(AlertDefinition.FromDocument(entry.Value!));
            }
            catch (JsonException ex)
            {
                logger.LogWarning("The alert {AlertId} in the Redis hash {Hash} cannot be read ({Error}); it is ignored", (string?)entry.Name, AlertsKey, ex.Message);
            }
        }
        return ((long?)await generation ?? 0, alerts);
    }

    private async Task<long?> ReloadAsync(Func<bool> unchangedHere, CancellationToken stopping)
    {
        var (read, alerts) = await ReadAsync();
        return await ReplaceAllAsync(alerts, unchangedHere, stopping) ? read : null;
    }

    /// <summary>An attempt as listed in Redis (the alert is the list's).</summary>
    private sealed record StoredAttempt(string Event, string Type, int Attempt, long At, int? Status, string? Error, string Outcome)
    {
        public static StoredAttempt From(DeliveryAttempt attempt) => new(attempt.EventId, attempt.TypeName, attempt.Attempt, attempt.At, attempt.Status,
            attempt.Error, DeliveryAttempt.OutcomeName(attempt.Outcome));

        public DeliveryAttempt ToAttempt(string alertId) =>
            new(alertId, Event, AlertEvent.ParseType(Type), Attempt, At, Status, Error, DeliveryAttempt.ParseOutcome(Outcome));
    }

    [JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
    [JsonSerializable(typeof(StoredAttempt))]
    private sealed partial class StoredAttemptJson : JsonSerializerContext;
}
