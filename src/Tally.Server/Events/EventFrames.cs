using System.Buffers;
using System.Text;

namespace Tally.Server.Events;

/// <summary>Events in the <c>text/event-stream</c> format: <c>event:</c>, <c>id:</c>, a <c>data:</c> line per line of data, a blank line.</summary>
internal static class EventFrames
{
    public static byte[] Of(string type, string id, string data)
    {
        var buffer = new ArrayBufferWriter<byte>(data.Length + type.Length + id.Length + 32);
        Write(buffer, type, id, data);
        return buffer.WrittenSpan.ToArray();
    }

    public static void Write(IBufferWriter<byte> output, string type, string? id, string data)
    {
        Append(output, "event: ");
        Append(output, type);
        if (id is not null)
        {
            Append(output, "\nid: ");
            Append(output, id);
        }
        foreach (var range in data.AsSpan().Split('\n'))
        {
            Append(output, "\ndata: ");
            Append(output, data.AsSpan(range).TrimEnd('\r'));
        }
        Append(output, "\n\n");
    }

    private static void Append(IBufferWriter<byte> output, ReadOnlySpan<char> text)
    {
        var written = Encoding.UTF8.GetBytes(text, output.GetSpan(Encoding.UTF8.GetMaxByteCount(text.Length)));
        output.Advance(written);
    }
}
