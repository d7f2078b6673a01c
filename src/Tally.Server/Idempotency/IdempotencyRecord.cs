namespace Tally.Server.Idempotency;

/// <summary>
/// A stored idempotency record: the key, its request's fingerprint, and the first request's outcome in
/// the compact form of <see cref="OutcomeCodec"/>. What one API key may keep is counted in <see cref="Size"/>.
/// </summary>
internal sealed record IdempotencyRecord(string Caller, string Key, byte[] Fingerprint, byte[] Outcome, long CreatedAt)
{
    /// <summary>Records written before the compact form (schema 3) kept the rendered response; they are replayed as they are.</summary>
    public StoredResponse? Legacy { get; init; }

    /// <summary>The bytes this record costs against its API key's quota: its fields and a fixed per-row overhead.</summary>
    public long Size => SizeOf(Caller, Key, Fingerprint.Length + (Legacy?.Body.Length ?? Outcome.Length));

    public static long SizeOf(string caller, string key, int payloadBytes) => caller.Length + key.Length + payloadBytes + 64;
}

/// <summary>A rendered response, as records kept it before the compact form.</summary>
internal sealed record StoredResponse(int Status, string? ETag, byte[] Body);
