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

    /// <summary>1–255 printable ASCII characters.</summary>
    public static bool IsValid(string? key)
    {
        if (key is null || key.Length is 0 or > MaxLength)
        {
            return false;
        }
        foreach (var c in key)
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
