using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;
using Tally.Server.Configuration;
using Tally.Server.Http;

namespace Tally.Server.Auth;

/// <summary>
/// The <c>ApiKey</c> scheme: <c>Authorization: Bearer &lt;key&gt;</c> or <c>X-Api-Key: &lt;key&gt;</c>,
/// looked up in the in-memory <see cref="ApiKeyStore"/>. With <c>Auth=off</c> every request is an
/// anonymous admin, without limits. Challenges answer <c>401 unauthorized</c> with <c>WWW-Authenticate: Bearer</c>.
/// </summary>
internal sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    ApiKeyStore keys,
    IOptions<TallyOptions> tally,
    IOptions<QuotaOptions> quotas)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "ApiKey";
    public const string ApiKeyHeader = "X-Api-Key";

    private const string Challenge = "Bearer realm=\"tally\"";
    private const string MissingKey = "Send an API key: 'Authorization: Bearer <key>' or 'X-Api-Key: <key>'.";

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (tally.Value.Auth == AuthMode.Off)
        {
            return Anonymous;
        }

        var (secret, problem) = ReadKey(Request.Headers);
        if (problem is not null)
        {
            return Task.FromResult(AuthenticateResult.Fail(problem));
        }
        if (secret is null)
        {
            return Task.FromResult(AuthenticateResult.NoResult());
        }
        if (FindKey(secret.Value) is not { } key)
        {
            return Task.FromResult(AuthenticateResult.Fail("The API key is not valid: it is unknown or has been revoked."));
        }
        // TryGetValue first: the factory captures this handler, a delegate allocated on every call.
        return Successes.TryGetValue(key, out var known)
            ? known
            : Successes.GetValue(key, key => Success(Caller.PrincipalOf(key, key.EffectiveLimits(quotas.Value), SchemeName)));
    }

    /// <summary>
    /// One answer per stored key, made at its first request: keys never change (a change is a new key),
    /// nothing in Tally alters a principal or a ticket, and building claims on every request is work on the hot path.
    /// An entry goes with its key once the key is revoked and collected.
    /// </summary>
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<ApiKey, Task<AuthenticateResult>> Successes = [];

    private static readonly Task<AuthenticateResult> Anonymous = Success(
        Caller.PrincipalOf(ApiKey.AnonymousId, "anonymous (Auth=off)", ApiScopes.Admin, string.Empty, KeyLimits.None, SchemeName));

    private static readonly object LastSecretItem = new();

    /// <summary>
    /// The key a secret names. An HTTP/1.x connection sends one request at a time, nearly always with the same key: the
    /// secret's hash is kept with the connection, so a request whose secret is the one before (compared in constant time)
    /// skips the SHA-256. The key itself is looked up by hash every time, so revocation holds at once.
    /// </summary>
    private ApiKey? FindKey(StringSegment secret)
    {
        // HTTP/2 streams of one connection run concurrently: no shared state there.
        var items = HttpProtocol.IsHttp11(Request.Protocol) || HttpProtocol.IsHttp10(Request.Protocol)
            ? Context.Features.Get<IConnectionItemsFeature>()?.Items
            : null;
        if (items is not null && items.TryGetValue(LastSecretItem, out var value) && value is LastSecret last && last.Is(secret.AsSpan()))
        {
            return keys.FindByHash(last.Hash);
        }
        Span<byte> hash = stackalloc byte[System.Security.Cryptography.SHA256.HashSizeInBytes];
        if (!ApiKeyStore.TryHash(secret.AsSpan(), hash))
        {
            return null;
        }
        if (items is not null)
        {
            items[LastSecretItem] = new LastSecret(secret.Value ?? string.Empty, hash.ToArray());
        }
        return keys.FindByHash(hash);
    }

    private sealed class LastSecret(string secret, byte[] hash)
    {
        public byte[] Hash { get; } = hash;

        public bool Is(ReadOnlySpan<char> presented) =>
            System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(
                System.Runtime.InteropServices.MemoryMarshal.AsBytes(secret.AsSpan()), System.Runtime.InteropServices.MemoryMarshal.AsBytes(presented));
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        // RFC 6750: no error attribute when no key was sent at all.
        var failure = (await HandleAuthenticateOnceSafeAsync()).Failure;
        Response.Headers.WWWAuthenticate = failure is null ? Challenge : Challenge + ", error=\"invalid_token\"";
        await Problems.Create(Problems.Unauthorized, failure?.Message ?? MissingKey).ExecuteAsync(Context);
    }

    protected override Task HandleForbiddenAsync(AuthenticationProperties properties) =>
        Problems.Create(Problems.Forbidden, "This API key may not make this request.").ExecuteAsync(Context);

    /// <summary>
    /// The presented secret (null: none), or why the headers cannot be read. Never echoes the secret. The secret is a
    /// segment of the header's value, so reading it allocates nothing.
    /// </summary>
    private static (StringSegment? Secret, string? Problem) ReadKey(IHeaderDictionary headers)
    {
        StringSegment? bearer = null;
        var authorization = headers.Authorization;
        if (authorization.Count > 0)
        {
            if (authorization.Count > 1)
            {
                return (null, "Send one Authorization header.");
            }
            var value = authorization[0] ?? string.Empty;
            if (!value.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
            {
                return (null, "Authorization must use the Bearer scheme: 'Authorization: Bearer <key>'.");
            }
            bearer = new StringSegment(value, "Bearer ".Length, value.Length - "Bearer ".Length).Trim();
        }

        StringSegment? apiKey = null;
        StringValues header = headers[ApiKeyHeader];
        if (header.Count > 1)
        {
            return (null, $"Send one {ApiKeyHeader} header.");
        }
        if (header.Count == 1 && header[0] is { } sent)
        {
            apiKey = new StringSegment(sent).Trim();
        }

        if (bearer is { } b && apiKey is { } k && !b.Equals(k, StringComparison.Ordinal))
        {
            return (null, $"Authorization and {ApiKeyHeader} carry different keys; send one key.");
        }
        var secret = bearer ?? apiKey;
        return secret is { Length: 0 } ? (null, "The API key is empty.") : (secret, null);
    }

    private static Task<AuthenticateResult> Success(System.Security.Claims.ClaimsPrincipal principal) =>
        Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(principal, SchemeName)));
}
