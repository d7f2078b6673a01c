using System.Buffers;
using System.Text;
using System.Text.Json;
using Tally.Server.Counters;

namespace Tally.Server.Events;

/// <summary>
/// How a commit's states travel to the other instances (a PostgreSQL notification, a Redis message):
/// <c>{"i":"&lt;instance&gt;","s":[["name",value,initial,min,max,version,createdAt,updatedAt],["deleted-name"],…]}</c>.
/// The instance lets each one skip its own commits, which it published already. Compact, and split into several
/// messages only when one would pass <c>maxBytes</c> (PostgreSQL's payloads stop short of 8000 bytes).
/// </summary>
internal static class ChangeMessage
{
    public static List<string> Encode(string instance, IEnumerable<KeyValuePair<string, Counter?>> states, int maxBytes)
    {
        var head = $"{{\"i\":{JsonSerializer.Serialize(instance, TallyJsonContext.Default.String)},\"s\":[";
        const string Tail = "]}";
        var messages = new List<string>();
        var message = new StringBuilder(head);
        var entries = 0;
        foreach (var (name, state) in states)
        {
            var entry = Entry(name, state);
            if (entries > 0 && message.Length + 1 + entry.Length + Tail.Length > maxBytes)
            {
                messages.Add(message.Append(Tail).ToString());
                message.Clear().Append(head);
                entries = 0;
            }
            if (entries > 0)
            {
                message.Append(',');
            }
            message.Append(entry);
            entries++;
        }
        if (entries > 0)
        {
            messages.Add(message.Append(Tail).ToString());
        }
        return messages;
    }

    /// <summary>Reads a message; false (and nothing) for anything that is not one.</summary>
    public static bool TryDecode(string payload, out string instance, out List<KeyValuePair<string, Counter?>> states)
    {
        instance = string.Empty;
        states = [];
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
            instance = id.GetString()!;
            return true;
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException)
        {
            states = [];
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
