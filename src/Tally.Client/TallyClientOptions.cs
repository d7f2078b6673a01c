namespace Tally.Client;

/// <summary>Where Tally is and how to talk to it.</summary>
public sealed class TallyClientOptions
{
    /// <summary>The service's address, e.g. <c>http://127.0.0.1:5000</c>.</summary>
    public Uri? BaseAddress { get; set; }

    /// <summary>The API key, sent as <c>Authorization: Bearer</c>; null sends none.</summary>
    public string? ApiKey { get; set; }

    /// <summary>How many times a transient failure (503, 429 with Retry-After, a lost connection, a timeout) is retried; 0 turns retries off. Default 3.</summary>
    public int MaxRetryAttempts { get; set; } = 3;

    /// <summary>The delay before the first retry, doubled for each further one (with jitter) when Tally sent no <c>Retry-After</c>. Default 2 s.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>The longest <c>Retry-After</c> the client waits out by itself; a longer one is not retried but thrown. Default 30 s.</summary>
    public TimeSpan MaxRetryAfter { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long one attempt may take until the response headers arrive. Default 100 s (an import of a big file takes a while).</summary>
    public TimeSpan AttemptTimeout { get; set; } = TimeSpan.FromSeconds(100);
}
