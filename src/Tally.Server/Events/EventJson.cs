using System.Buffers;
using System.Text;
using System.Text.Json;
using Tally.Server.Counters;
using Tally.Server.Http;

namespace Tally.Server.Events;

/// <summary>The data of the events: a counter exactly as <c>GET /counters/{name}</c> shows it, or the name of one deleted.</summary>
internal static class EventJson
{
    public static string Counter(Counter counter)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(buffer))
        {
            ResponseRenderer.WriteCounter(json, counter);
        }
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    public static string Deleted(string name)
    {
        var buffer = new ArrayBufferWriter<byte>(64);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("name"u8, name);
            json.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }
}
