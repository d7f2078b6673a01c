using Microsoft.Extensions.Options;

namespace Tally.Server.Configuration;

/// <summary>
/// The token bucket every API key gets (every client address, for requests without a valid key),
/// bound from the section <c>RateLimit</c>.
/// </summary>
internal sealed class RateLimitOptions
{
    public const string Section = "RateLimit";

    /// <summary>Requests per second a key may sustain; 0 turns rate limiting off.</summary>
    public int PermitsPerSecond { get; set; } = 1000;

    /// <summary>The bucket's size: how many requests a key may send at once. Unset: one second's worth.</summary>
    public int? Burst { get; set; }

    public bool Enabled => PermitsPerSecond > 0;

    public int BucketSize => Burst ?? PermitsPerSecond;
}

internal sealed class RateLimitOptionsValidator : IValidateOptions<RateLimitOptions>
{
    public ValidateOptionsResult Validate(string? name, RateLimitOptions options)
    {
        var errors = new List<string>();
        if (options.PermitsPerSecond is < 0 or > 10_000_000)
        {
            errors.Add($"RateLimit:PermitsPerSecond must be from 0 (off) to 10000000 (got {options.PermitsPerSecond}).");
        }
        if (options.Burst is < 1 or > 100_000_000)
        {
            errors.Add($"RateLimit:Burst must be from 1 to 100000000 (got {options.Burst}).");
        }
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
