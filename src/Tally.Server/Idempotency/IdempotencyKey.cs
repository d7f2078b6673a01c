using System.Security.Cryptography;
using System.Text;

namespace Tally.Server.Idempotency;

/// <summary>
/// An <c>Idempotency-Key</c> as the caller sent it, scoped to the caller (the API key that sent it),
/// with a fingerprint of the request it guards: the same key on a different request is refused.
/// </summary>
internal sealed record IdempotencyKey(string Caller, string Key, byte[] Fingerprint)
{
    public const string Header = "Idempotency-Key";
    public const int MaxLength = 255;

    /// <summary>
    /// The key a header value names: 1–255 printable ASCII characters, sent bare (<c>8e03</c>) or as the
    /// quoted sf-string of the IETF draft (<c>"8e03"</c>, with <c>\"</c> and <c>\\</c> escapes), which names
    /// the same key. False for anything else, such as an unterminated or badly escaped quoted string.
    /// </summary>
    public static bool TryParse(string? header, out string key)
    {
        key = string.Empty;
        if (header is null || header.Length == 0 || !IsPrintableAscii(header))
        {
            return false;
        }
        if (header[0] != '"')
        {
            key = header;
            return header.Length <= MaxLength;
        }

        var unquoted = new StringBuilder(header.Length);
        for (var i = 1; i < header.Length; i++)
        {
            var c = header[i];
            if (c == '\\')
            {
                if (++i == header.Length || header[i] is not ('"' or '\\'))
                {
                    return false; // only \" and \\ are escapes in an sf-string
                }
                unquoted.Append(header[i]);
            }
            else if (c == '"')
            {
                if (i != header.Length - 1)
                {
                    return false; // something after the closing quote
                }
                key = unquoted.ToString();
                return key.Length is > 0 and <= MaxLength;
            }
            else
            {
                unquoted.Append(c);
            }
        }
        return false; // no closing quote
    }

    private static bool IsPrintableAscii(string text)
    {
        foreach (var c in text)
        {
            if (c is < (char)0x20 or > (char)0x7E)
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>SHA-256 over method, path, query and body.</summary>
    public static byte[] FingerprintOf(string method, string path, string query, ReadOnlySpan<byte> body)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(Encoding.UTF8.GetBytes($"{method}\n{path}\n{query}\n"));
        hash.AppendData(body);
        return hash.GetHashAndReset();
    }

    public bool SameRequest(byte[] fingerprint) => CryptographicOperations.FixedTimeEquals(Fingerprint, fingerprint);
}
