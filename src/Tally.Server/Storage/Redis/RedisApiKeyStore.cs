using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using Tally.Server.Auth;
using Tally.Server.Configuration;

namespace Tally.Server.Storage.Redis;

/// <summary>
/// API keys in Redis, shared by every instance. Each instance keeps them in memory (authenticating a request asks
/// Redis nothing) and reloads them when the generation that every key change bumps has moved. It learns of a change
/// two ways: a message on <see cref="ChangedChannel"/>, published by the change itself, which wakes it at once; and a
/// look at the generation every <see cref="PollInterval"/>, because pub/sub is fire-and-forget (a message sent while
/// this instance reconnects is lost). A key created or revoked on one instance holds on every instance within
/// <see cref="PollInterval"/> plus two round trips, usually within one.
/// </summary>
/// <remarks>
/// Layout: <see cref="KeysKey"/>, a hash of key id to the key as JSON (name, scopes, prefix, SHA-256 of the secret,
/// creation time, limits; never the secret); <see cref="AdminKeysKey"/>, a set of the ids of the stored admin keys;
/// <see cref="GenerationKey"/>, an integer. Every change is one Lua script that updates all three and publishes, so
/// Redis decides "insert unless a key exists" and "delete unless it is the last admin key" with no other change in
/// between, whichever instance asks.
/// </remarks>
internal sealed partial class RedisApiKeyStore(IConnectionMultiplexer redis, IOptions<TallyOptions> options, TimeProvider clock, ILogger<RedisApiKeyStore> logger)
    : ApiKeyStore(options, clock)
{
    public const string KeysKey = "tally:keys";
    public const string AdminKeysKey = "tally:keys:admin";
    public const string GenerationKey = "tally:keys:generation";
    public const string ChangedChannel = "tally:keys:changed";

    public static readonly TimeSpan DefaultPollInterval = TimeSpan.FromMilliseconds(250);

    private static readonly RedisKey[] s_keys = [KeysKey, AdminKeysKey, GenerationKey];
    private static readonly RedisChannel s_channel = RedisChannel.Literal(ChangedChannel);

    // KEYS: keys hash, admin set, generation. ARGV: id, key as JSON, "1" for an admin key, "1" to insert only into an
    // empty store, the channel. Returns 1 when inserted, 0 when a key was stored already.
    private const string InsertScript = """
        if ARGV[4] == '1' and redis.call('HLEN', KEYS[1]) > 0 then
            return 0
        end
        redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
        if ARGV[3] == '1' then
            redis.call('SADD', KEYS[2], ARGV[1])
        end
        redis.call('PUBLISH', ARGV[5], redis.call('INCR', KEYS[3]))
        return 1
        """;

    // KEYS as above. ARGV: id, "1" to keep the last admin key, the channel.
    // Returns 1 when deleted, 0 when it was not stored (another instance deleted it), -1 when it is the last admin key.
    private const string DeleteScript = """
        if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
            return 0
        end
        if ARGV[2] == '1' and redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 and redis.call('SCARD', KEYS[2]) < 2 then
            return -1
        end
        redis.call('HDEL', KEYS[1], ARGV[1])
        redis.call('SREM', KEYS[2], ARGV[1])
        redis.call('PUBLISH', ARGV[3], redis.call('INCR', KEYS[3]))
        return 1
        """;

    private RedisChangeWatch? _watch;

    private RedisChangeWatch Watch => _watch ??= new RedisChangeWatch(redis, s_channel, GenerationKey, "API keys", logger, ReloadAsync)
    {
        PollInterval = PollInterval,
    };

    /// <summary>How often the generation is read when no message came; set before the store is opened.</summary>
    public TimeSpan PollInterval { get; set; } = DefaultPollInterval;

    protected override async Task<IReadOnlyList<ApiKey>> LoadAsync(CancellationToken cancellationToken)
    {
        try
        {
            await Watch.SubscribeAsync();
            var (generation, keys) = await ReadAsync();
            Watch.Start(generation);
            return keys;
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            throw new StoreStartupException($"Redis cannot be used to load the API keys ({ex.Message}). Check the Redis configuration string and that the server answers.", ex);
        }
    }

    protected override async Task InsertAsync(ApiKey key, CancellationToken cancellationToken) =>
        await InsertAsync(key, onlyIntoAnEmptyStore: false);

    protected override Task<bool> InsertIfNoneStoredAsync(ApiKey key, CancellationToken cancellationToken) =>
        InsertAsync(key, onlyIntoAnEmptyStore: true);

    protected override async Task DeleteAsync(string id, CancellationToken cancellationToken) =>
        await DeleteAsync(id, keepAnAdminKey: false);

    /// <summary>True also when another instance deleted it first: either way it is gone, as asked.</summary>
    protected override async Task<bool> DeleteUnlessLastAdminAsync(string id, CancellationToken cancellationToken) =>
        await DeleteAsync(id, keepAnAdminKey: true) >= 0;

    public override async ValueTask DisposeAsync()
    {
        if (_watch is not null)
        {
            await _watch.DisposeAsync();
        }
        await base.DisposeAsync();
    }

    private async Task<bool> InsertAsync(ApiKey key, bool onlyIntoAnEmptyStore)
    {
        var stored = new StoredKey(key.Name, ApiKey.Names(key.Scopes), key.Prefix, Convert.ToHexStringLower(key.Hash),
            key.CreatedAt.ToUnixTimeMilliseconds(), key.MaxCounters, key.MaxAmount);
        var inserted = await ChangeAsync(InsertScript,
            [key.Id, JsonSerializer.Serialize(stored, StoredKeyJson.Default.StoredKey), Flag(key.Scopes.HasFlag(ApiScopes.Admin)),
                Flag(onlyIntoAnEmptyStore), ChangedChannel]);
        return inserted == 1;
    }

    private Task<long> DeleteAsync(string id, bool keepAnAdminKey) =>
        ChangeAsync(DeleteScript, [id, Flag(keepAnAdminKey), ChangedChannel]);

    /// <summary>One script, atomic in Redis; in the append-only file before Redis answers when Redis is set up as Tally asks.</summary>
    private async Task<long> ChangeAsync(string script, RedisValue[] arguments)
    {
        try
        {
            var result = (long)await redis.GetDatabase().ScriptEvaluateAsync(script, s_keys, arguments);
            Watch.NoteLocalChange();
            return result;
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            // A timeout leaves it unknown whether Redis applied it; the next reload shows which (and the caller retries).
            throw new ApiKeyStoreException($"The key store could not write ({ex.Message}).", ex);
        }
    }

    private static RedisValue Flag(bool value) => value ? "1" : "0";

    private async Task<(long Generation, IReadOnlyList<ApiKey> Keys)> ReadAsync()
    {
        // One transaction for both, so the keys read belong to the generation read.
        var transaction = redis.GetDatabase().CreateTransaction();
        var generation = transaction.StringGetAsync(GenerationKey);
        var entries = transaction.HashGetAllAsync(KeysKey);
        await transaction.ExecuteAsync();
        var keys = new List<ApiKey>();
        foreach (var entry in await entries)
        {
            if (Parse(entry.Name!, entry.Value!) is { } key)
            {
                keys.Add(key);
            }
        }
        return ((long?)await generation ?? 0, keys);
    }

    /// <summary>A stored key, or null (logged) when the entry was not written by Tally: such a key does not authenticate.</summary>
    private ApiKey? Parse(string id, string json)
    {
        try
        {
            var stored = JsonSerializer.Deserialize(json, StoredKeyJson.Default.StoredKey)
                ?? throw new JsonException("null");
            var scopes = stored.Scopes.Aggregate(ApiScopes.None, (all, name) => all | ApiKey.Parse(name));
            return new ApiKey(id, stored.Name, scopes, stored.Prefix, DateTimeOffset.FromUnixTimeMilliseconds(stored.CreatedAt),
                Convert.FromHexString(stored.Hash), stored.MaxCounters, stored.MaxAmount);
        }
        catch (Exception ex) when (ex is JsonException or FormatException or ArgumentException)
        {
            logger.LogWarning("The API key {KeyId} in the Redis hash {Hash} cannot be read ({Error}); it is ignored", id, KeysKey, ex.Message);
            return null;
        }
    }

    private async Task<long?> ReloadAsync(Func<bool> unchangedHere, CancellationToken stopping)
    {
        var (read, keys) = await ReadAsync();
        return await ReplaceAllAsync(keys, unchangedHere, stopping) ? read : null;
    }

    /// <summary>A key as stored in <see cref="KeysKey"/>: its id is the field, its secret is nowhere.</summary>
    /// <param name="Hash">SHA-256 of the secret, lower-case hex.</param>
    /// <param name="CreatedAt">Milliseconds since the Unix epoch.</param>
    private sealed record StoredKey(string Name, string[] Scopes, string Prefix, string Hash, long CreatedAt, long? MaxCounters, long? MaxAmount);

    [JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
    [JsonSerializable(typeof(StoredKey))]
    private sealed partial class StoredKeyJson : JsonSerializerContext;
}
