using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Tally.Server.Tests.Auth;

/// <summary>
/// A stand-in identity provider: an RSA key of its own, its public half as a JWKS document, and tokens it signs
/// (or forges: expired, for another audience or issuer, signed by another key, <c>alg: none</c>).
/// </summary>
internal sealed class JwtIssuer : IDisposable
{
    public const string DefaultIssuer = "https://id.tally.test";
    public const string DefaultAudience = "tally-api";

    private readonly RSA _rsa = RSA.Create(2048);

    public JwtIssuer(string issuer = DefaultIssuer, string audience = DefaultAudience, string keyId = "test-key-1")
    {
        Issuer = issuer;
        Audience = audience;
        KeyId = keyId;
        Key = new RsaSecurityKey(_rsa) { KeyId = keyId };
    }

    public string Issuer { get; }

    public string Audience { get; }

    public string KeyId { get; }

    public RsaSecurityKey Key { get; }

    /// <summary>The public key as a JSON Web Key Set.</summary>
    public string Jwks()
    {
        var parameters = _rsa.ExportParameters(includePrivateParameters: false);
        return JsonSerializer.Serialize(new
        {
            keys = new[]
            {
                new { kty = "RSA", use = "sig", alg = "RS256", kid = KeyId, n = Base64Url.EncodeToString(parameters.Modulus), e = Base64Url.EncodeToString(parameters.Exponent) },
            },
        });
    }

    /// <summary>Writes <see cref="Jwks"/> into <paramref name="directory"/> and returns the settings that make Tally trust it.</summary>
    public Dictionary<string, string?> SettingsWithKeysFile(string directory)
    {
        var path = Path.Combine(directory, "jwks.json");
        File.WriteAllText(path, Jwks());
        return new Dictionary<string, string?>
        {
            ["Auth:Jwt:SigningKeysFile"] = path,
            ["Auth:Jwt:Issuer"] = Issuer,
            ["Auth:Jwt:Audience"] = Audience,
        };
    }

    /// <summary>A token for <paramref name="subject"/> with a space-separated <c>scope</c> claim (and more claims, if given).</summary>
    public string Token(string subject, string scope, string? prefix = null, DateTime? expires = null, string? audience = null, string? issuer = null,
        SecurityKey? signWith = null, IDictionary<string, object>? claims = null, bool withExpiry = true, DateTime? notBefore = null)
    {
        var now = DateTime.UtcNow;
        var all = new Dictionary<string, object>(claims ?? new Dictionary<string, object>()) { ["sub"] = subject, ["jti"] = Guid.NewGuid().ToString("N") };
        if (scope.Length > 0)
        {
            all["scope"] = scope;
        }
        if (prefix is not null)
        {
            all["tally_prefix"] = prefix;
        }
        var descriptor = new SecurityTokenDescriptor
        {
            Issuer = issuer ?? Issuer,
            Audience = audience ?? Audience,
            Claims = all,
            IssuedAt = notBefore ?? now.AddMinutes(-10),
            NotBefore = notBefore ?? now.AddMinutes(-10),
            Expires = withExpiry ? expires ?? now.AddMinutes(10) : null,
            SigningCredentials = new SigningCredentials(signWith ?? Key, SecurityAlgorithms.RsaSha256),
        };
        return new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(descriptor);
    }

    /// <summary>An unsigned token (<c>alg: none</c>) with valid claims, with an empty signature or with <paramref name="signature"/>.</summary>
    public string UnsignedToken(string subject, string scope, string signature = "")
    {
        var now = DateTimeOffset.UtcNow;
        var header = JsonSerializer.Serialize(new { alg = "none", typ = "JWT", kid = KeyId });
        var payload = JsonSerializer.Serialize(new
        {
            iss = Issuer, aud = Audience, sub = subject, scope,
            nbf = now.AddMinutes(-1).ToUnixTimeSeconds(), iat = now.AddMinutes(-1).ToUnixTimeSeconds(), exp = now.AddMinutes(10).ToUnixTimeSeconds(),
        });
        return $"{Encode(header)}.{Encode(payload)}.{signature}";
    }

    private static string Encode(string json) => Base64Url.EncodeToString(Encoding.UTF8.GetBytes(json));

    public void Dispose() => _rsa.Dispose();
}
