using System.Security.Cryptography;
using System.Text;

namespace Tally.Server.Alerts;

/// <summary>
/// Standard Webhooks symmetric signing: the secret is <c>whsec_</c> and the base64 of 24 to 64 random bytes; the
/// signature of a message is <c>v1,</c> and the base64 of HMAC-SHA256 over <c>{id}.{timestamp}.{body}</c>, keyed with
/// the secret's decoded bytes.
/// </summary>
internal static class WebhookSecret
{
    public const string Prefix = "whsec_";
    public const int MinBytes = 24;
    public const int MaxBytes = 64;

    /// <summary>A new secret of 32 random bytes.</summary>
    public static string Generate() => Prefix + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));

    /// <summary>Null when <paramref name="secret"/> is a usable secret, else why not (never quoting it).</summary>
    public static string? Check(string secret)
    {
        if (!secret.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return $"'secret' must start with '{Prefix}' followed by base64 (omit it, or send null, to have one generated).";
        }
        var key = KeyOf(secret);
        return key is { Length: >= MinBytes and <= MaxBytes }
            ? null
            : $"'secret' must be '{Prefix}' and the base64 of {MinBytes} to {MaxBytes} random bytes (omit it, or send null, to have one generated).";
    }

    /// <summary>The <c>webhook-signature</c> header value for one attempt.</summary>
    public static string Sign(string secret, string id, long timestamp, string body)
    {
        var key = KeyOf(secret) ?? throw new ArgumentException("Not a whsec_ secret.", nameof(secret));
        var content = Encoding.UTF8.GetBytes(FormattableString.Invariant($"{id}.{timestamp}.{body}"));
        return "v1," + Convert.ToBase64String(HMACSHA256.HashData(key, content));
    }

    private static byte[]? KeyOf(string secret)
    {
        try
        {
            return Convert.FromBase64String(secret[Prefix.Length..]);
        }
        catch (FormatException)
        {
            return null;
        }
    }
}
