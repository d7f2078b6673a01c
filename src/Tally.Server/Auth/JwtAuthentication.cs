using System.Buffers.Text;
using System.Runtime.InteropServices;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Protocols;
using Microsoft.IdentityModel.Protocols.OpenIdConnect;
using Microsoft.IdentityModel.Tokens;
using Tally.Server.Configuration;
using Tally.Server.Http;

namespace Tally.Server.Auth;

/// <summary>
/// JWT bearer tokens beside API keys. The default scheme is a policy scheme that reads the bearer value:
/// a value shaped like a JWT (<see cref="LooksLikeJwt"/>) that is not the configured <c>AdminKey</c> goes to
/// ASP.NET Core's JwtBearer, anything else to the API keys (<see cref="ApiKeyAuthenticationHandler"/>). A validated token becomes the same
/// <see cref="Caller"/> an API key does: scopes from <c>scope</c>/<c>scp</c>, prefix from <c>tally_prefix</c>.
/// </summary>
internal static class JwtAuthentication
{
    /// <summary>The default scheme: forwards to <see cref="JwtScheme"/> or <see cref="ApiKeyAuthenticationHandler.SchemeName"/>.</summary>
    public const string SchemeName = "Tally";

    public const string JwtScheme = JwtBearerDefaults.AuthenticationScheme;

    public const string PrefixClaim = "tally_prefix";

    /// <summary>The OIDC discovery document or its keys could not be fetched: the token was not checked, so not refused either.</summary>
    public const string ProviderUnavailable = "identity_provider_unavailable";

    private const string ScopePrefix = "tally:";

    /// <summary>Why a token was refused, in words that give nothing of the validation away.</summary>
    private const string InvalidToken =
        "The bearer token is not valid here: check that it is unexpired, signed by the configured provider, and for this issuer and audience.";

    public static AuthenticationBuilder AddTallyJwt(this AuthenticationBuilder builder)
    {
        builder.Services.AddSingleton<IValidateOptions<JwtOptions>, JwtOptionsValidator>();
        builder.Services.AddOptions<JwtOptions>().BindConfiguration(JwtOptions.Section).ValidateOnStart();
        builder.Services.AddOptions<JwtBearerOptions>(JwtScheme).Configure<IOptions<JwtOptions>>((bearer, settings) => Configure(bearer, settings.Value));

        builder.AddPolicyScheme(SchemeName, "API key or JWT", policy => policy.ForwardDefaultSelector = SelectScheme);
        return builder.AddJwtBearer(JwtScheme, _ => { });
    }

    private static string SelectScheme(HttpContext context)
    {
        var services = context.RequestServices;
        return services.GetRequiredService<IOptions<JwtOptions>>().Value.Enabled
            && services.GetRequiredService<IOptions<TallyOptions>>().Value.Auth != AuthMode.Off
            && context.Request.Headers.Authorization is { Count: 1 } authorization
            && !context.Request.Headers.ContainsKey(ApiKeyAuthenticationHandler.ApiKeyHeader)
            && authorization[0] is { } value
            && value.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)
            && IsJwt(value.AsSpan("Bearer ".Length).Trim(), services.GetRequiredService<IOptions<TallyOptions>>().Value.AdminKey)
                ? JwtScheme
                : ApiKeyAuthenticationHandler.SchemeName;
    }

    /// <summary>
    /// Whether a bearer value goes to JwtBearer. Issued API keys have no dots, but the configured AdminKey may be any
    /// printable ASCII, even JWT-shaped ("eyJhbGci.x.y"): that one value always stays an API key.
    /// </summary>
    internal static bool IsJwt(ReadOnlySpan<char> token, string? adminKey) =>
        LooksLikeJwt(token) && !IsAdminKey(token, adminKey);

    private static bool IsAdminKey(ReadOnlySpan<char> token, string? adminKey)
    {
        if (string.IsNullOrEmpty(adminKey))
        {
            return false;
        }
        // Both are printable ASCII here (LooksLikeJwt; TallyOptionsValidator), so chars compare as bytes would.
        return CryptographicOperations.FixedTimeEquals(MemoryMarshal.AsBytes(token), MemoryMarshal.AsBytes(adminKey.AsSpan()));
    }

    /// <summary>
    /// A compact JWS: three non-empty base64url segments, the first beginning <c>eyJ</c> (every JOSE header is a JSON
    /// object, <c>{"</c> in base64url). Issued API keys have no dots.
    /// </summary>
    internal static bool LooksLikeJwt(ReadOnlySpan<char> token)
    {
        if (!token.StartsWith("eyJ", StringComparison.Ordinal))
        {
            return false;
        }
        var segments = 0;
        foreach (var range in token.Split('.'))
        {
            var segment = token[range];
            if (++segments > 3 || segment.IsEmpty || !Base64Url.IsValid(segment))
            {
                return false;
            }
        }
        return segments == 3;
    }

    private static void Configure(JwtBearerOptions bearer, JwtOptions settings)
    {
        if (!settings.Enabled)
        {
            return;
        }
        // Claims keep their names (scope, scp, sub, tally_prefix), not WS-Federation URIs.
        bearer.MapInboundClaims = false;
        bearer.IncludeErrorDetails = false;
        bearer.TokenValidationParameters.ValidIssuer = settings.Issuer;
        // Only this issuer: JwtBearer would also accept the one the discovery document names.
        bearer.TokenValidationParameters.IssuerValidator = (issuer, _, _) => issuer == settings.Issuer
            ? issuer
            : throw new SecurityTokenInvalidIssuerException("The token's issuer is not the configured one.");
        bearer.TokenValidationParameters.ValidAudience = settings.Audience;
        bearer.TokenValidationParameters.ValidateIssuer = true;
        bearer.TokenValidationParameters.ValidateAudience = true;
        bearer.TokenValidationParameters.ValidateLifetime = true;
        bearer.TokenValidationParameters.RequireExpirationTime = true;
        bearer.TokenValidationParameters.RequireSignedTokens = true;
        bearer.TokenValidationParameters.ValidateIssuerSigningKey = true;
        bearer.TokenValidationParameters.ValidAlgorithms = JwtOptions.Algorithms;
        bearer.TokenValidationParameters.ClockSkew = JwtOptions.ClockSkew;
        if (!string.IsNullOrWhiteSpace(settings.Authority))
        {
            bearer.Authority = settings.Authority;
            bearer.RequireHttpsMetadata = new Uri(settings.Authority).Scheme == Uri.UriSchemeHttps;
            // A provider that does not answer holds a request this long at most (the default is a minute).
            bearer.BackchannelTimeout = TimeSpan.FromSeconds(10);
        }
        else
        {
            // Checked at start (JwtOptionsValidator): the file is there and has keys.
            bearer.TokenValidationParameters.IssuerSigningKeys = JwtOptions.ReadSigningKeys(settings.SigningKeysFile!).Keys;
        }
        bearer.Events = new JwtBearerEvents
        {
            OnTokenValidated = context =>
            {
                var quotas = context.HttpContext.RequestServices.GetRequiredService<IOptions<QuotaOptions>>().Value;
                if (CallerOf(context.Principal!, quotas, out var problem) is { } principal)
                {
                    context.Principal = principal;
                }
                else
                {
                    context.Fail(problem!);
                }
                return Task.CompletedTask;
            },
            OnChallenge = async context =>
            {
                context.HandleResponse();
                // A provider that cannot be reached shows only as "no signing key for this token": ask the configuration manager,
                // which answers from its cache when it has fetched the keys before, and fails when it never could.
                if (context.AuthenticateFailure is SecurityTokenSignatureKeyNotFoundException && context.Options.ConfigurationManager is { } manager
                    && !await CanFetchKeysAsync(manager, context.HttpContext.RequestAborted))
                {
                    context.Response.Headers.RetryAfter = "5";
                    await Problems.Create(ProviderUnavailable,
                        "The identity provider's signing keys cannot be fetched just now, so the token could not be checked. Retry in a few seconds.")
                        .ExecuteAsync(context.HttpContext);
                    return;
                }
                // RFC 6750: no error attribute when no token was sent at all.
                var failed = context.AuthenticateFailure is not null;
                context.Response.Headers.WWWAuthenticate = failed ? "Bearer realm=\"tally\", error=\"invalid_token\"" : "Bearer realm=\"tally\"";
                var detail = context.AuthenticateFailure is TokenClaimsException claims ? claims.Message : InvalidToken;
                await Problems.Create(Problems.Unauthorized, detail).ExecuteAsync(context.HttpContext);
            },
            OnForbidden = context => Problems.Create(Problems.Forbidden, "This token may not make this request.").ExecuteAsync(context.HttpContext),
        };
    }

    private static async Task<bool> CanFetchKeysAsync(IConfigurationManager<OpenIdConnectConfiguration> manager, CancellationToken cancellationToken)
    {
        try
        {
            await manager.GetConfigurationAsync(cancellationToken);
            return true;
        }
        catch (Exception ex) when (ex is InvalidOperationException or HttpRequestException or IOException)
        {
            return false;
        }
    }

    /// <summary>
    /// The principal of a validated token: its caller id is derived from issuer and subject (so idempotency keys,
    /// counter quotas and the rate limit hold per subject, whatever token it presents); null and a reason
    /// when the claims cannot describe a caller.
    /// </summary>
    internal static ClaimsPrincipal? CallerOf(ClaimsPrincipal token, QuotaOptions quotas, out Exception? problem)
    {
        problem = null;
        var issuer = token.FindFirstValue("iss") ?? string.Empty;
        if (token.FindFirstValue("sub") is not { Length: > 0 } subject)
        {
            problem = new TokenClaimsException("The bearer token has no 'sub' (subject) claim.");
            return null;
        }
        var scopes = ApiScopes.None;
        foreach (var claim in token.FindAll("scope").Concat(token.FindAll("scp")))
        {
            foreach (var scope in claim.Value.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                if (scope.StartsWith(ScopePrefix, StringComparison.Ordinal))
                {
                    scopes |= ApiKey.Parse(scope[ScopePrefix.Length..]);
                }
            }
        }
        var prefixes = token.FindAll(PrefixClaim).Select(claim => claim.Value).Distinct(StringComparer.Ordinal).ToList();
        if (prefixes.Count > 1)
        {
            problem = new TokenClaimsException($"The bearer token has more than one '{PrefixClaim}' claim.");
            return null;
        }
        var prefix = prefixes.SingleOrDefault() ?? string.Empty;
        if (prefix.Length > Counters.CounterName.MaxLength)
        {
            problem = new TokenClaimsException($"The bearer token's '{PrefixClaim}' is longer than a counter name can be ({Counters.CounterName.MaxLength}).");
            return null;
        }
        if (scopes.HasFlag(ApiScopes.Admin) && prefix.Length > 0)
        {
            // As with API keys: admin reaches everything (it could make itself an unrestricted key), so a prefix would promise what it cannot keep.
            problem = new TokenClaimsException($"The bearer token has scope tally:admin and a '{PrefixClaim}': an admin token reaches every counter, so it may not carry a prefix.");
            return null;
        }
        var id = "jwt_" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(issuer + "\n" + subject)).AsSpan(0, 16));
        var limits = scopes.HasFlag(ApiScopes.Admin) ? KeyLimits.None : new KeyLimits(quotas.DefaultMaxCounters, quotas.DefaultMaxAmount);
        return Caller.PrincipalOf(id, subject, scopes, prefix, limits, JwtScheme);
    }

    /// <summary>A signed, valid token whose claims do not make a caller: its message is safe to show.</summary>
    private sealed class TokenClaimsException(string message) : Exception(message);
}
