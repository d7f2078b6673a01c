using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using Tally.Server.Configuration;

namespace Tally.Server.Auth;

/// <summary>
/// Every valid key, in memory by the hash of its secret, so authenticating a request costs at most one
/// SHA-256 (none for the same key again on an HTTP/1.x connection) and no I/O. Changes (rare) are written to the store first, then to the cache, so a
/// revoked key stops working the moment its deletion is durable.
/// </summary>
internal abstract class ApiKeyStore : IAsyncDisposable
{
    private readonly ConcurrentDictionary<KeyHash, ApiKey> _byHash = new();
    private readonly SemaphoreSlim _writes = new(1, 1);
    private readonly ApiKey? _configured;
    private readonly TimeProvider _clock;

    protected ApiKeyStore(IOptions<TallyOptions> options, TimeProvider clock)
    {
        _clock = clock;
        if (options.Value.AdminKey is { Length: > 0 } adminKey)
        {
            _configured = new ApiKey(ApiKey.ConfiguredAdminId, "AdminKey setting", ApiScopes.Admin, string.Empty,
                DateTimeOffset.UnixEpoch, ApiKeySecret.Hash(adminKey));
        }
    }

    /// <summary>Whether the <c>AdminKey</c> setting names a key.</summary>
    public bool HasConfiguredAdminKey => _configured is not null;

    /// <summary>Stored keys (the configured admin key is not stored).</summary>
    public int Count => _byHash.Count;

    public async Task OpenAsync(CancellationToken cancellationToken)
    {
        foreach (var key in await LoadAsync(cancellationToken))
        {
            _byHash[KeyHash.Of(key.Hash)] = key;
        }
    }

    /// <summary>The key whose secret this is, or null. The hashes are compared in constant time.</summary>
    public ApiKey? Find(string secret) => Find(secret.AsSpan());

    /// <inheritdoc cref="Find(string)"/>
    public ApiKey? Find(ReadOnlySpan<char> secret)
    {
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        return TryHash(secret, hash) ? FindByHash(hash) : null;
    }

    /// <summary>
    /// The SHA-256 of a presented secret, the form keys are looked up by; false when it cannot be a key (empty or too long).
    /// </summary>
    public static bool TryHash(ReadOnlySpan<char> secret, Span<byte> hash)
    {
        if (secret.Length is 0 or > ApiKeySecret.MaxLength)
        {
            return false;
        }
        Span<byte> utf8 = stackalloc byte[ApiKeySecret.MaxLength * 3];
        SHA256.HashData(utf8[..Encoding.UTF8.GetBytes(secret, utf8)], hash);
        return true;
    }

    /// <summary>The key whose secret has this hash (<see cref="TryHash"/>), or null: looked up every time, so a revoked key is never found.</summary>
    public ApiKey? FindByHash(ReadOnlySpan<byte> hash)
    {
        // The lookup by hash leaks at most how the hash of a guess compares to stored hashes, which
        // says nothing useful about a 256-bit secret; the final comparison is constant-time anyway.
        ApiKey? found = null;
        if (_configured is not null && CryptographicOperations.FixedTimeEquals(hash, _configured.Hash))
        {
            found = _configured;
        }
        if (_byHash.TryGetValue(KeyHash.Of(hash), out var stored) && CryptographicOperations.FixedTimeEquals(hash, stored.Hash))
        {
            found = stored;
        }
        return found;
    }

    /// <summary>Stored keys, oldest first.</summary>
    public IReadOnlyList<ApiKey> List() =>
        [.. _byHash.Values.OrderBy(key => key.CreatedAt).ThenBy(key => key.Id, StringComparer.Ordinal)];

    /// <summary>Creates and stores a key; returns it with its secret, which exists nowhere else.</summary>
    /// <param name="limits">The key's own limits (null members: the defaults).</param>
    public async Task<(ApiKey Key, string Secret)> CreateAsync(string name, ApiScopes scopes, string prefix, KeyLimits limits, CancellationToken cancellationToken)
    {
        var secret = ApiKeySecret.Generate();
        var createdAt = DateTimeOffset.FromUnixTimeMilliseconds(_clock.GetUtcNow().ToUnixTimeMilliseconds());
        var key = new ApiKey(ApiKeySecret.NewId(), name, scopes, prefix, createdAt, ApiKeySecret.Hash(secret), limits.MaxCounters, limits.MaxAmount);
        await _writes.WaitAsync(cancellationToken);
        try
        {
            await InsertAsync(key, cancellationToken);
            _byHash[KeyHash.Of(key.Hash)] = key;
        }
        finally
        {
            _writes.Release();
        }
        return (key, secret);
    }

    /// <summary>
    /// Creates the first admin key, unless a key is stored already (with a shared store, perhaps just now by
    /// another instance: exactly one creates it). Returns it with its secret, or null.
    /// </summary>
    public async Task<(ApiKey Key, string Secret)?> CreateFirstAdminAsync(CancellationToken cancellationToken)
    {
        var secret = ApiKeySecret.Generate();
        var createdAt = DateTimeOffset.FromUnixTimeMilliseconds(_clock.GetUtcNow().ToUnixTimeMilliseconds());
        var key = new ApiKey(ApiKeySecret.NewId(), "first admin key", ApiScopes.Admin, string.Empty, createdAt, ApiKeySecret.Hash(secret), null, null);
        await _writes.WaitAsync(cancellationToken);
        try
        {
            if (!await InsertIfNoneStoredAsync(key, cancellationToken))
            {
                return null;
            }
            _byHash[KeyHash.Of(key.Hash)] = key;
        }
        finally
        {
            _writes.Release();
        }
        return (key, secret);
    }

    /// <summary>
    /// Deletes a stored key; it stops working at once. With <paramref name="keepAnAdminKey"/> and no
    /// <c>AdminKey</c> setting, the last stored admin key is kept: without it nobody could manage keys.
    /// </summary>
    public async Task<Revocation> RevokeAsync(string id, bool keepAnAdminKey, CancellationToken cancellationToken)
    {
        await _writes.WaitAsync(cancellationToken);
        try
        {
            var (hash, key) = _byHash.FirstOrDefault(entry => entry.Value.Id == id);
            if (key is null)
            {
                return new Revocation(RevocationOutcome.NotFound, null);
            }
            // Decided under the write lock, so two admin keys revoked at once cannot both go.
            if (keepAnAdminKey && _configured is null && key.Scopes.HasFlag(ApiScopes.Admin)
                && !_byHash.Values.Any(other => other.Id != id && other.Scopes.HasFlag(ApiScopes.Admin)))
            {
                return new Revocation(RevocationOutcome.LastAdminKey, key);
            }
            if (keepAnAdminKey && _configured is null && key.Scopes.HasFlag(ApiScopes.Admin))
            {
                if (!await DeleteUnlessLastAdminAsync(id, cancellationToken))
                {
                    return new Revocation(RevocationOutcome.LastAdminKey, key);
                }
            }
            else
            {
                await DeleteAsync(id, cancellationToken);
            }
            _byHash.TryRemove(hash, out _);
            return new Revocation(RevocationOutcome.Revoked, key);
        }
        finally
        {
            _writes.Release();
        }
    }

    public virtual ValueTask DisposeAsync()
    {
        _writes.Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// Makes the cache what the store holds now (a shared store changed by other instances), unless
    /// <paramref name="stillCurrent"/> says a change made here since the read may be missing from it. Decided
    /// under the write lock, so no local change can slip in between.
    /// </summary>
    protected async Task<bool> ReplaceAllAsync(IReadOnlyList<ApiKey> keys, Func<bool> stillCurrent, CancellationToken cancellationToken)
    {
        await _writes.WaitAsync(cancellationToken);
        try
        {
            if (!stillCurrent())
            {
                return false;
            }
            ReplaceAll(keys);
            return true;
        }
        finally
        {
            _writes.Release();
        }
    }

    private void ReplaceAll(IReadOnlyList<ApiKey> keys)
    {
        var current = keys.ToDictionary(key => KeyHash.Of(key.Hash));
        foreach (var hash in _byHash.Keys)
        {
            if (!current.ContainsKey(hash))
            {
                _byHash.TryRemove(hash, out _);
            }
        }
        foreach (var (hash, key) in current)
        {
            _byHash[hash] = key;
        }
    }

    /// <summary>Inserts the key if no key is stored. A shared store decides this in the store itself.</summary>
    protected virtual async Task<bool> InsertIfNoneStoredAsync(ApiKey key, CancellationToken cancellationToken)
    {
        if (!_byHash.IsEmpty)
        {
            return false;
        }
        await InsertAsync(key, cancellationToken);
        return true;
    }

    /// <summary>Deletes an admin key unless it is the last one. A shared store decides this in the store itself.</summary>
    protected virtual async Task<bool> DeleteUnlessLastAdminAsync(string id, CancellationToken cancellationToken)
    {
        await DeleteAsync(id, cancellationToken);
        return true;
    }

    protected abstract Task<IReadOnlyList<ApiKey>> LoadAsync(CancellationToken cancellationToken);

    protected abstract Task InsertAsync(ApiKey key, CancellationToken cancellationToken);

    protected abstract Task DeleteAsync(string id, CancellationToken cancellationToken);
}

/// <summary>
/// A SHA-256 as a dictionary key: four words compared and hashed in place, so looking a presented key up
/// allocates nothing (a hex string of the hash used to be made per request).
/// </summary>
internal readonly record struct KeyHash(ulong A, ulong B, ulong C, ulong D)
{
    public static KeyHash Of(ReadOnlySpan<byte> sha256)
    {
        if (sha256.Length != SHA256.HashSizeInBytes)
        {
            throw new ArgumentException("A SHA-256 hash is 32 bytes.", nameof(sha256));
        }
        return new KeyHash(
            System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(sha256),
            System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(sha256[8..]),
            System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(sha256[16..]),
            System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(sha256[24..]));
    }
}

internal enum RevocationOutcome
{
    Revoked,
    NotFound,
    /// <summary>Refused: it is the only admin key and no <c>AdminKey</c> is configured.</summary>
    LastAdminKey,
}

/// <summary>What <see cref="ApiKeyStore.RevokeAsync"/> did, and to which key (null when there is none).</summary>
internal readonly record struct Revocation(RevocationOutcome Outcome, ApiKey? Key);

/// <summary>A key change could not be made durable; nothing changed.</summary>
internal sealed class ApiKeyStoreException(string message, Exception inner) : Exception(message, inner);
