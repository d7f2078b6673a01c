using System.Collections.Frozen;
using System.Reflection;
using System.Security.Cryptography;
using System.Text.Json.Serialization;
using System.Text;
using Tally.Server.Configuration;

namespace Tally.Server.Auth;

/// <summary>What a key may do. <c>admin</c> includes everything; <c>write</c> includes <c>increment</c>.</summary>
[Flags]
internal enum ApiScopes
{
    None = 0,
    /// <summary>GET endpoints.</summary>
    Read = 1,
    /// <summary>Increment only: safe to ship in a web page.</summary>
    Increment = 2,
    /// <summary>Every counter mutation.</summary>
    Write = 4,
    /// <summary>Everything, and <c>/admin/*</c>.</summary>
    Admin = 8,
}

/// <summary>
/// A stored API key. The secret itself is never kept: only its SHA-256 <see cref="Hash"/>
/// (a fast hash is right for 256-bit random secrets; there is nothing to brute-force).
/// </summary>
/// <param name="Prefix">The counter names the key may touch ("" = all).</param>
/// <param name="MaxCounters">The key's own limit on the live counters it has created (null: the default).</param>
/// <param name="MaxAmount">The key's own limit on <c>by</c> (null: the default).</param>
internal sealed record ApiKey(string Id, string Name, ApiScopes Scopes, string Prefix, DateTimeOffset CreatedAt, byte[] Hash,
    long? MaxCounters = null, long? MaxAmount = null)
{
    /// <summary>The id of the configured <c>AdminKey</c>: stable, so idempotency keys survive restarts.</summary>
    public const string ConfiguredAdminId = "config-admin";

    /// <summary>The caller's id with <c>Auth=off</c>.</summary>
    public const string AnonymousId = "anonymous";

    /// <summary>
    /// The scope names as the API spells them, in order: taken from <see cref="ApiScopeName"/>, the enum the request
    /// schema shows, so the document and the parser share one list. Each maps to the <see cref="ApiScopes"/> flag of the same name.
    /// </summary>
    public static readonly string[] ScopeNames = [.. Enum.GetValues<ApiScopeName>().Select(NameOf)];

    private static readonly FrozenDictionary<string, ApiScopes> ScopesByName =
        Enum.GetValues<ApiScopeName>().ToFrozenDictionary(NameOf, scope => Enum.Parse<ApiScopes>(scope.ToString()), StringComparer.Ordinal);

    /// <summary>Scopes with what they imply: admin grants everything, write grants increment.</summary>
    // Bit tests rather than HasFlag, which boxes until the method is fully optimized: this runs for every request and batch operation.
    public static ApiScopes Effective(ApiScopes scopes) =>
        (scopes & ApiScopes.Admin) != 0 ? ApiScopes.Read | ApiScopes.Increment | ApiScopes.Write | ApiScopes.Admin
        : (scopes & ApiScopes.Write) != 0 ? scopes | ApiScopes.Increment
        : scopes;

    /// <summary>
    /// The limits that hold for this key: its own, else, for a key without the admin scope, the
    /// configured defaults. Admin keys have no default limits (they could lift them anyway).
    /// </summary>
    public KeyLimits EffectiveLimits(QuotaOptions quotas) => Scopes.HasFlag(ApiScopes.Admin)
        ? new KeyLimits(MaxCounters, MaxAmount)
        : new KeyLimits(MaxCounters ?? quotas.DefaultMaxCounters, MaxAmount ?? quotas.DefaultMaxAmount);

    public static string[] Names(ApiScopes scopes) =>
        [.. ScopeNames.Where(name => scopes.HasFlag(Parse(name)))];

    /// <summary>One scope name (<c>read</c>, <c>increment</c>, <c>write</c>, <c>admin</c>), or <see cref="ApiScopes.None"/>.</summary>
    public static ApiScopes Parse(string? name) =>
        name is not null && ScopesByName.TryGetValue(name, out var scope) ? scope : ApiScopes.None;

    private static string NameOf(ApiScopeName scope) =>
        typeof(ApiScopeName).GetField(scope.ToString())!.GetCustomAttribute<JsonStringEnumMemberNameAttribute>()!.Name;
}

/// <summary>How far a key may go; null means no limit.</summary>
/// <param name="MaxCounters">How many live counters the key may have created.</param>
/// <param name="MaxAmount">The largest <c>by</c> of one increment or decrement.</param>
internal readonly record struct KeyLimits(long? MaxCounters, long? MaxAmount)
{
    public static readonly KeyLimits None = default;
}

/// <summary>Making and checking secrets: <c>tly_</c> and 32 random bytes, base64url.</summary>
internal static class ApiKeySecret
{
    public const string Marker = "tly_";

    /// <summary>Longer presented keys are refused without hashing them.</summary>
    public const int MaxLength = 256;

    public static string Generate() => Marker + System.Buffers.Text.Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(32));

    public static string NewId() => "key_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));

    public static byte[] Hash(string secret) => SHA256.HashData(Encoding.UTF8.GetBytes(secret));
}
