namespace Tally.Server.Pipeline;

/// <summary>
/// Whom a request counts against: the API key that sent it (counters it creates are recorded as its own)
/// and how many live counters that key may have created (null: no limit).
/// </summary>
internal sealed record Requester(string? KeyId, long? MaxCounters)
{
    /// <summary>Work the service does for itself or an unlimited caller; counters it creates belong to no key.</summary>
    public static readonly Requester Unlimited = new(null, null);
}
