using System.Globalization;
using Microsoft.Extensions.Options;

namespace Tally.Server.Alerts;

/// <summary>Threshold alerts and their webhook deliveries: bound from the section <c>Alerts</c>.</summary>
internal sealed class AlertOptions
{
    public const string Section = "Alerts";

    /// <summary>The Standard Webhooks example schedule: ten attempts over about 75 hours.</summary>
    public const string DefaultRetrySchedule = "5s 5m 30m 2h 5h 10h 14h 20h 24h";

    /// <summary>
    /// Webhook hosts that may be private, loopback or link-local (SSRF protection refuses them otherwise), as written
    /// in the URL: names or IP addresses, separated by <c>;</c> or <c>,</c>. Empty: none.
    /// </summary>
    public string AllowedHosts { get; set; } = string.Empty;

    /// <summary>The delays before each retry of a failed delivery, e.g. <c>5s 5m 30m 2h</c> (units ms, s, m, h, d).</summary>
    public string RetrySchedule { get; set; } = DefaultRetrySchedule;

    /// <summary>How long one delivery may take before it counts as failed.</summary>
    public int DeliveryTimeoutSeconds { get; set; } = 15;

    /// <summary>How often the sender looks for due deliveries when nothing wakes it (commits on this instance do).</summary>
    public int PollIntervalMs { get; set; } = 1000;

    /// <summary>The most alert definitions the store holds.</summary>
    public int MaxAlerts { get; set; } = 1000;

    /// <summary>How many days delivery attempts stay listed.</summary>
    public int DeliveryHistoryDays { get; set; } = 7;

    public IReadOnlySet<string> AllowedHostSet => AllowedHosts
        .Split([';', ',', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
        .Select(host => host.Trim('[', ']'))
        .ToHashSet(StringComparer.OrdinalIgnoreCase);

    public TimeSpan DeliveryTimeout => TimeSpan.FromSeconds(DeliveryTimeoutSeconds);

    public TimeSpan PollInterval => TimeSpan.FromMilliseconds(PollIntervalMs);

    /// <summary>How long a sender holds the events it took: longer than any delivery, so only a crashed sender's lease runs out.</summary>
    public TimeSpan Lease => DeliveryTimeout * 2 + TimeSpan.FromSeconds(5);

    public IReadOnlyList<TimeSpan> RetryDelays => ParseSchedule(RetrySchedule, out var delays) is null ? delays : [];

    /// <summary>Null when <paramref name="text"/> is a schedule, else what is wrong with it.</summary>
    public static string? ParseSchedule(string? text, out List<TimeSpan> delays)
    {
        delays = [];
        var parts = (text ?? string.Empty).Split([' ', ',', ';'], StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length is 0 or > 50)
        {
            return "Alerts:RetrySchedule must list 1 to 50 delays, such as \"5s 5m 30m 2h\"";
        }
        foreach (var part in parts)
        {
            var unit = part.EndsWith("ms", StringComparison.Ordinal) ? "ms" : part[^1..];
            var digits = part[..^unit.Length];
            TimeSpan? delay = long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var amount) && amount is > 0 and <= 1_000_000
                ? unit switch
                {
                    "ms" => TimeSpan.FromMilliseconds(amount),
                    "s" => TimeSpan.FromSeconds(amount),
                    "m" => TimeSpan.FromMinutes(amount),
                    "h" => TimeSpan.FromHours(amount),
                    "d" => TimeSpan.FromDays(amount),
                    _ => null,
                }
                : null;
            if (delay is not { } value || value > TimeSpan.FromDays(7))
            {
                return $"Alerts:RetrySchedule has '{part}': each delay is a whole number with ms, s, m, h or d, up to 7 days";
            }
            delays.Add(value);
        }
        return null;
    }
}

internal sealed class AlertOptionsValidator : IValidateOptions<AlertOptions>
{
    public ValidateOptionsResult Validate(string? name, AlertOptions options)
    {
        var errors = new List<string>();
        if (AlertOptions.ParseSchedule(options.RetrySchedule, out _) is { } schedule)
        {
            errors.Add($"{schedule} (got '{options.RetrySchedule}').");
        }
        if (options.DeliveryTimeoutSeconds is < 1 or > 120)
        {
            errors.Add($"Alerts:DeliveryTimeoutSeconds must be from 1 to 120 (got {options.DeliveryTimeoutSeconds}).");
        }
        if (options.PollIntervalMs is < 10 or > 60_000)
        {
            errors.Add($"Alerts:PollIntervalMs must be from 10 to 60000 (got {options.PollIntervalMs}).");
        }
        if (options.MaxAlerts is < 1 or > 100_000)
        {
            errors.Add($"Alerts:MaxAlerts must be from 1 to 100000 (got {options.MaxAlerts}).");
        }
        if (options.DeliveryHistoryDays is < 1 or > 365)
        {
            errors.Add($"Alerts:DeliveryHistoryDays must be from 1 to 365 (got {options.DeliveryHistoryDays}).");
        }
        foreach (var host in options.AllowedHostSet)
        {
            if (Uri.CheckHostName(host) == UriHostNameType.Unknown)
            {
                errors.Add($"Alerts:AllowedHosts has '{host}', which is not a host name or IP address.");
            }
        }
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
