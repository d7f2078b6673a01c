using Microsoft.Extensions.Options;

namespace Tally.Server.Configuration;

/// <summary>
/// What one API key, and the store as a whole, may hold: bound from the section <c>Quotas</c>.
/// A key's own <c>maxCounters</c> / <c>maxAmount</c> override the defaults; admin keys have no counter quota.
/// </summary>
internal sealed class QuotaOptions
{
    public const string Section = "Quotas";

    /// <summary>The most live counters the whole store may hold (creating more is <c>403 counter_quota_exceeded</c>).</summary>
    public long MaxCounters { get; set; } = 10_000_000;

    /// <summary>How many live counters a non-admin key may have created, unless the key says otherwise.</summary>
    public long DefaultMaxCounters { get; set; } = 100_000;

    /// <summary>The largest <c>by</c> a non-admin key may send, unless the key says otherwise (null: no limit).</summary>
    public long? DefaultMaxAmount { get; set; }

    /// <summary>The bytes of idempotency records one API key may keep within the retention window.</summary>
    public long IdempotencyBytesPerKey { get; set; } = 64L * 1024 * 1024;
}

internal sealed class QuotaOptionsValidator : IValidateOptions<QuotaOptions>
{
    public ValidateOptionsResult Validate(string? name, QuotaOptions options)
    {
        var errors = new List<string>();
        if (options.MaxCounters < 1)
        {
            errors.Add($"Quotas:MaxCounters must be at least 1 (got {options.MaxCounters}).");
        }
        if (options.DefaultMaxCounters < 1)
        {
            errors.Add($"Quotas:DefaultMaxCounters must be at least 1 (got {options.DefaultMaxCounters}).");
        }
        if (options.DefaultMaxAmount is < 1)
        {
            errors.Add($"Quotas:DefaultMaxAmount must be at least 1 when set (got {options.DefaultMaxAmount}).");
        }
        if (options.IdempotencyBytesPerKey < 4096)
        {
            errors.Add($"Quotas:IdempotencyBytesPerKey must be at least 4096 (got {options.IdempotencyBytesPerKey}).");
        }
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
