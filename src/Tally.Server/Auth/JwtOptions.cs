using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;

namespace Tally.Server.Auth;

/// <summary>
/// JWT bearer tokens from an identity provider, bound from <c>Auth:Jwt</c>: the provider's signing keys come from
/// OIDC discovery (<see cref="Authority"/>) or from a JWKS file (<see cref="SigningKeysFile"/>, for offline use).
/// Neither set: JWTs are not accepted (API keys only).
/// </summary>
internal sealed class JwtOptions
{
    public const string Section = "Auth:Jwt";

    /// <summary>The OIDC provider's base address; its <c>/.well-known/openid-configuration</c> names the signing keys. https (http only on loopback).</summary>
    public string? Authority { get; set; }

    /// <summary>A JSON Web Key Set file with the public keys tokens are signed with.</summary>
    public string? SigningKeysFile { get; set; }

    /// <summary>The <c>iss</c> every token must carry.</summary>
    public string? Issuer { get; set; }

    /// <summary>The <c>aud</c> every token must carry (one of them).</summary>
    public string? Audience { get; set; }

    public bool Enabled => !string.IsNullOrWhiteSpace(Authority) || !string.IsNullOrWhiteSpace(SigningKeysFile);

    /// <summary>The tolerance for clocks that differ between the provider and Tally, on <c>exp</c> and <c>nbf</c>.</summary>
    public static readonly TimeSpan ClockSkew = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Asymmetric signatures only: the provider signs, Tally only verifies. No HMAC (a public key read as an HMAC secret
    /// is the classic key-confusion attack) and never <c>none</c>.
    /// </summary>
    public static readonly string[] Algorithms =
    [
        SecurityAlgorithms.RsaSha256, SecurityAlgorithms.RsaSha384, SecurityAlgorithms.RsaSha512,
        SecurityAlgorithms.RsaSsaPssSha256, SecurityAlgorithms.RsaSsaPssSha384, SecurityAlgorithms.RsaSsaPssSha512,
        SecurityAlgorithms.EcdsaSha256, SecurityAlgorithms.EcdsaSha384, SecurityAlgorithms.EcdsaSha512,
    ];

    /// <summary>The signing keys of <see cref="SigningKeysFile"/>, or why they cannot be used (one sentence).</summary>
    public static (IReadOnlyList<SecurityKey> Keys, string? Problem) ReadSigningKeys(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            return ([], $"{Section}:SigningKeysFile cannot be read ('{path}': {(ex is FileNotFoundException or DirectoryNotFoundException ? "no such file" : ex.Message)})");
        }
        JsonWebKeySet set;
        try
        {
            set = new JsonWebKeySet(text) { SkipUnresolvedJsonWebKeys = true };
        }
        catch (ArgumentException)
        {
            return ([], $"{Section}:SigningKeysFile '{path}' is not a JSON Web Key Set (a JSON object with a \"keys\" array)");
        }
        var keys = set.GetSigningKeys().Where(key => key is not SymmetricSecurityKey).ToList();
        return keys.Count == 0
            ? ([], $"{Section}:SigningKeysFile '{path}' has no usable public signing key (RSA or EC, \"use\": \"sig\" or no \"use\")")
            : (keys, null);
    }
}

internal sealed class JwtOptionsValidator : IValidateOptions<JwtOptions>
{
    private const string S = JwtOptions.Section;

    public ValidateOptionsResult Validate(string? name, JwtOptions options)
    {
        var authority = !string.IsNullOrWhiteSpace(options.Authority);
        var file = !string.IsNullOrWhiteSpace(options.SigningKeysFile);
        if (!authority && !file)
        {
            return string.IsNullOrWhiteSpace(options.Issuer) && string.IsNullOrWhiteSpace(options.Audience)
                ? ValidateOptionsResult.Success
                : ValidateOptionsResult.Fail($"{S}:Issuer and {S}:Audience are set but neither {S}:Authority nor {S}:SigningKeysFile: set one of them to accept JWTs");
        }
        var errors = new List<string>();
        if (authority && file)
        {
            errors.Add($"{S}:Authority and {S}:SigningKeysFile are both set: the signing keys come from one of them, set only one");
        }
        if (string.IsNullOrWhiteSpace(options.Issuer))
        {
            errors.Add($"{S}:Issuer is required with {(authority ? $"{S}:Authority" : $"{S}:SigningKeysFile")} (the iss every token must carry)");
        }
        if (string.IsNullOrWhiteSpace(options.Audience))
        {
            errors.Add($"{S}:Audience is required with {(authority ? $"{S}:Authority" : $"{S}:SigningKeysFile")} (the aud every token must carry)");
        }
        if (authority && AuthorityProblem(options.Authority!) is { } problem)
        {
            errors.Add(problem);
        }
        if (file && !authority && JwtOptions.ReadSigningKeys(options.SigningKeysFile!).Problem is { } fileProblem)
        {
            errors.Add(fileProblem);
        }
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    private static string? AuthorityProblem(string authority) =>
        !Uri.TryCreate(authority, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttps && uri.Scheme != Uri.UriSchemeHttp)
            ? $"{S}:Authority must be an absolute https address (got '{authority}')"
            : uri.Scheme == Uri.UriSchemeHttp && !uri.IsLoopback
                ? $"{S}:Authority must use https (http only on a loopback address; got '{authority}')"
                : null;
}
