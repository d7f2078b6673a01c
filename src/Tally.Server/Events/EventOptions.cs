using Microsoft.Extensions.Options;

namespace Tally.Server.Events;

/// <summary>Live events (Server-Sent Events), bound from the section <c>Events</c>.</summary>
internal sealed class EventOptions
{
    public const string Section = "Events";

    /// <summary>Streams one API key may hold open on one instance; one more is <c>429 too_many_streams</c>.</summary>
    public int MaxStreamsPerKey { get; set; } = 100;

    /// <summary>Streams one instance holds open at most, whatever the keys.</summary>
    public int MaxStreams { get; set; } = 10_000;

    /// <summary>How often an idle stream gets a comment line, so proxies and clients see it is alive.</summary>
    public int HeartbeatIntervalMs { get; set; } = 15_000;

    /// <summary>
    /// Events waiting for one stream's client: with conflation, the counters with a newer state not yet sent plus the
    /// deleted and alert events; without (<see cref="CoalesceMs"/> 0), every event. Past it the stream is dropped.
    /// </summary>
    public int StreamBuffer { get; set; } = 1000;

    /// <summary>
    /// A stream sends what is pending at most this often: of a counter the latest state then (intermediate ones may be
    /// skipped), deleted and alert events all. 0: no conflation, every event is sent.
    /// </summary>
    /// <remarks>
    /// A write to a stream (a copy of the event's frame, made once for all streams, and a send on its socket) is what a
    /// stream costs, some 10 µs of CPU: at 100 ms, 1,000 streams on hot counters cost 10,000 writes a second, however
    /// fast the counters change (bench/README.md, the events group).
    /// </remarks>
    public int CoalesceMs { get; set; } = 100;

    /// <summary>A stream whose client has not taken a write for this long is dropped (checked when an event for it comes).</summary>
    public int WriteTimeoutMs { get; set; } = 30_000;

    /// <summary>Recent events an instance keeps for <c>Last-Event-ID</c>; 0: never resume, always start with the current state.</summary>
    public int ResumeBuffer { get; set; } = 10_000;
}

internal sealed class EventOptionsValidator : IValidateOptions<EventOptions>
{
    public ValidateOptionsResult Validate(string? name, EventOptions options)
    {
        var errors = new List<string>();
        Check(errors, nameof(EventOptions.MaxStreamsPerKey), options.MaxStreamsPerKey, 1, 1_000_000);
        Check(errors, nameof(EventOptions.MaxStreams), options.MaxStreams, 1, 1_000_000);
        Check(errors, nameof(EventOptions.HeartbeatIntervalMs), options.HeartbeatIntervalMs, 100, 3_600_000);
        Check(errors, nameof(EventOptions.StreamBuffer), options.StreamBuffer, 1, 1_000_000);
        Check(errors, nameof(EventOptions.ResumeBuffer), options.ResumeBuffer, 0, 1_000_000);
        Check(errors, nameof(EventOptions.CoalesceMs), options.CoalesceMs, 0, 60_000);
        Check(errors, nameof(EventOptions.WriteTimeoutMs), options.WriteTimeoutMs, 100, 3_600_000);
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    private static void Check(List<string> errors, string setting, int value, int min, int max)
    {
        if (value < min || value > max)
        {
            errors.Add($"{EventOptions.Section}:{setting} must be from {min} to {max} (got {value}).");
        }
    }
}
