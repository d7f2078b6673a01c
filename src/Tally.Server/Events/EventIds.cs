using System.Globalization;

namespace Tally.Server.Events;

/// <summary>
/// An event id is <c>&lt;instance&gt;-&lt;sequence&gt;</c>: the id this process drew at random when it started, and the
/// number its <see cref="EventHub"/> gave the event. A <c>Last-Event-ID</c> of this instance whose events are still in
/// its ring resumes exactly; any other (another instance's, one from before a restart, one too old, a made-up one)
/// starts the stream again from the current state. The events of a stream's initial state carry
/// <c>&lt;instance&gt;-&lt;sequence&gt;-&lt;n&gt;</c> but the last, which carries the plain form: only a client that received the
/// whole initial state may resume from it.
/// </summary>
internal static class EventIds
{
    public static string Format(string instance, long sequence) =>
        string.Create(CultureInfo.InvariantCulture, $"{instance}-{sequence}");

    /// <summary>The id of the <paramref name="part"/>th event (from 1) of an initial state, not a point to resume from.</summary>
    public static string Format(string instance, long sequence, int part) =>
        string.Create(CultureInfo.InvariantCulture, $"{instance}-{sequence}-{part}");

    /// <summary>Reads an id in the plain form; false for anything else (a part of an initial state included).</summary>
    public static bool TryParse(string? id, out string instance, out long sequence)
    {
        instance = string.Empty;
        sequence = 0;
        if (string.IsNullOrEmpty(id) || id.Length > 64)
        {
            return false;
        }
        var dash = id.IndexOf('-', StringComparison.Ordinal);
        if (dash < 1)
        {
            return false;
        }
        var digits = id.AsSpan(dash + 1);
        if (digits.Length is 0 or > 18 || digits.ContainsAnyExceptInRange('0', '9'))
        {
            return false;
        }
        instance = id[..dash];
        sequence = long.Parse(digits, NumberStyles.None, CultureInfo.InvariantCulture);
        return true;
    }
}
