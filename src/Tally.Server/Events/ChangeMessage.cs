using System.Buffers;
using System.Text;
using System.Text.Json;
using Tally.Server.Counters;

namespace Tally.Server.Events;

/// <summary>
/// How a commit's states and alert events travel to the other instances (a PostgreSQL notification, a Redis message):
/// <c>{"i":"&lt;instance&gt;","s":[["name",value,initial,min,max,version,createdAt,updatedAt],["deleted-name"],…]}</c>,
/// then, if it raised alert events, <c>{"i":"&lt;instance&gt;","s":[],"a":[["name",{alert payload}],…]}</c>: a message
/// of their own, so an instance of an earlier version (which knows no <c>"a"</c>) still reads every state.
/// The instance lets each one skip its own commits, which it published already. Compact, and split into several
/// messages only when one would pass <c>maxBytes</c> (PostgreSQL's payloads stop short of 8000 bytes).
/// </summary>
internal static class ChangeMessage
{
    public static List<string> Encode(string instance, IEnumerable<KeyValuePair<string, Counter?>> states, int maxBytes,
        IEnumerable<RemoteAlert>? alerts = null)
    {
        var id = JsonSerializer.Serialize(instance, TallyJsonContext.Default.String);
        var messages = new List<string>();
        Pack($"{{\"i\":{id},\"s\":[", states.Select(state => Entry(state.Key, state.Value)), maxBytes, messages);
        Pack($"{{\"i\":{id},\"s\":[],\"a\":[", (alerts ?? []).Select(AlertEntry), maxBytes, messages);
        return messages;
    }

    /// <summary>The entries as few messages as fit in <paramref name="maxBytes"/> each, all starting with <paramref name="head"/>.</summary>
    private static void Pack(string head, IEnumerable<string> entries, int maxBytes, List<string> messages)
    {
        const string Tail = "]}";
        var message = new StringBuilder(head);
        var count = 0;
        foreach (var entry in entries)
        {
            if (count > 0 && message.Length + 1 + entry.Length + Tail.Length > maxBytes)
            {
                messages.Add(message.Append(Tail).ToString());
                message.Clear().Append(head);
                count = 0;
            }
            if (count > 0)
            {
                message.Append(',');
            }
            message.Append(entry);
            count++;
        }
        if (count > 0)
        {
            messages.Add(message.Append(Tail).ToString());
        }
    }

    /// <summary>Reads a message; false (and nothing) for anything that is not one.</summary>
    public static bool TryDecode(string payload, out string instance, out List<KeyValuePair<string, Counter?>> states, out List<RemoteAlert> alerts)
    {
        instance = string.Empty;
        states = [];
        alerts = [];
        try
        {
            using var document = JsonDocument.Parse(payload);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object
                || !root.TryGetProperty("i", out var id) || id.ValueKind != JsonValueKind.String
                || !root.TryGetProperty("s", out var entries) || entries.ValueKind != JsonValueKind.Array)
            {
                return false;
            }
            foreach (var entry in entries.EnumerateArray())
            {
                if (entry.ValueKind != JsonValueKind.Array || entry.GetArrayLength() is not (1 or 8) || entry[0].GetString() is not { } name
                    || !CounterName.IsValid(name))
                {
                    return false;
                }
                states.Add(new(name, entry.GetArrayLength() == 1 ? null : new Counter(
                    name, entry[1].GetInt64(), entry[2].GetInt64(), Bound(entry[3]), Bound(entry[4]),
                    entry[5].GetInt64(), entry[6].GetInt64(), entry[7].GetInt64())));
            }
            if (root.TryGetProperty("a", out var raised))
            {
                if (raised.ValueKind != JsonValueKind.Array)
                {
                    return false;
                }
                foreach (var entry in raised.EnumerateArray())
                {
                    if (entry.ValueKind != JsonValueKind.Array || entry.GetArrayLength() != 2 || entry[0].GetString() is not { } name
                        || !CounterName.IsValid(name) || entry[1].ValueKind != JsonValueKind.Object)
                    {
                        return false;
                    }
                    alerts.Add(new RemoteAlert(name, entry[1].GetRawText()));
                }
            }
            instance = id.GetString()!;
            return true;
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException)
        {
            states = [];
            alerts = [];
            return false;
        }
    }

    private static string Entry(string name, Counter? state)
    {
        var buffer = new ArrayBufferWriter<byte>(128);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartArray();
            json.WriteStringValue(name);
            if (state is not null)
            {
                json.WriteNumberValue(state.Value);
                json.WriteNumberValue(state.Initial);
                WriteBound(json, state.Min);
                WriteBound(json, state.Max);
                json.WriteNumberValue(state.Version);
                json.WriteNumberValue(state.CreatedAt);
                json.WriteNumberValue(state.UpdatedAt);
            }
            json.WriteEndArray();
        }
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static string AlertEntry(RemoteAlert alert)
    {
        var buffer = new ArrayBufferWriter<byte>(alert.Payload.Length + alert.Counter.Length + 8);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartArray();
            json.WriteStringValue(alert.Counter);
            json.WriteRawValue(alert.Payload);
            json.WriteEndArray();
        }
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static void WriteBound(Utf8JsonWriter json, long? bound)
    {
        if (bound is { } value)
        {
            json.WriteNumberValue(value);
        }
        else
        {
            json.WriteNullValue();
        }
    }

    private static long? Bound(JsonElement element) => element.ValueKind == JsonValueKind.Null ? null : element.GetInt64();
}

/// <summary>An alert event another instance committed: the counter it is about and its payload (the webhook's body, a JSON object).</summary>
internal sealed record RemoteAlert(string Counter, string Payload);
