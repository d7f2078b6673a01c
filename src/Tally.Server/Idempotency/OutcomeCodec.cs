using System.Buffers;
using System.IO.Compression;
using System.Text;
using Tally.Server.Batch;
using Tally.Server.Counters;
using Tally.Server.Pipeline;

namespace Tally.Server.Idempotency;

/// <summary>
/// The compact form in which a keyed request's outcome is kept for its retries. Names are not stored:
/// a replay is only ever decoded for a request with the same fingerprint, so the same commands, and the
/// names come from them. Numbers are varints, times are offsets from the record's time, and an encoding
/// longer than a few hundred bytes is deflated (repeated details compress to almost nothing).
/// A 1,000-operation batch of new counters costs about 10 KB instead of the ~180 KB of its JSON.
/// </summary>
internal static class OutcomeCodec
{
    private const byte Plain = 1;
    private const byte Deflated = 2;
    private const int CompressAbove = 256;

    private enum Shape : byte
    {
        Single,
        Batch,
        AbortedBatch,
    }

    public static byte[] Encode(in RequestOutcome outcome, long recordedAt)
    {
        var buffer = new ArrayBufferWriter<byte>(64);
        if (outcome.Batch is { } batch)
        {
            buffer.WriteByte((byte)(batch.Aborted ? Shape.AbortedBatch : Shape.Batch));
            buffer.WriteVarint((ulong)batch.Results.Length);
            if (batch.Aborted)
            {
                buffer.WriteVarint((ulong)batch.FailedIndex);
            }
            // An aborted batch has results up to the operation that failed; the rest never ran.
            var written = batch.Aborted ? batch.FailedIndex + 1 : batch.Results.Length;
            for (var i = 0; i < written; i++)
            {
                WriteResult(buffer, batch.Results[i], recordedAt);
            }
        }
        else
        {
            buffer.WriteByte((byte)Shape.Single);
            WriteResult(buffer, outcome.Result, recordedAt);
        }

        var encoded = buffer.WrittenSpan;
        if (encoded.Length > CompressAbove)
        {
            using var compressed = new MemoryStream(encoded.Length / 2);
            compressed.WriteByte(Deflated);
            using (var deflate = new DeflateStream(compressed, CompressionLevel.Fastest, leaveOpen: true))
            {
                deflate.Write(encoded);
            }
            if (compressed.Length < encoded.Length)
            {
                return compressed.ToArray();
            }
        }
        var plain = new byte[encoded.Length + 1];
        plain[0] = Plain;
        encoded.CopyTo(plain.AsSpan(1));
        return plain;
    }

    /// <summary>The outcome of the request that <paramref name="command"/> or <paramref name="batch"/> repeats.</summary>
    /// <exception cref="InvalidDataException">The bytes do not match the request (never for a matching fingerprint).</exception>
    public static RequestOutcome Decode(byte[] stored, CounterCommand? command, BatchCommand? batch, long recordedAt)
    {
        ReadOnlySpan<byte> encoded = stored.AsSpan(1);
        byte[]? inflated = null;
        if (stored[0] == Deflated)
        {
            using var input = new DeflateStream(new MemoryStream(stored, 1, stored.Length - 1), CompressionMode.Decompress);
            using var output = new MemoryStream();
            input.CopyTo(output);
            inflated = output.ToArray();
            encoded = inflated;
        }
        else if (stored[0] != Plain)
        {
            throw new InvalidDataException($"Unknown stored outcome format {stored[0]}.");
        }

        var reader = new SpanReader(encoded);
        var shape = (Shape)reader.ReadByte();
        if (shape == Shape.Single)
        {
            var name = command?.Name ?? throw new InvalidDataException("A single outcome needs its command.");
            return new RequestOutcome(ReadResult(ref reader, name, recordedAt));
        }

        var operations = batch?.Operations ?? throw new InvalidDataException("A batch outcome needs its batch.");
        var count = (int)reader.ReadVarint();
        var failedIndex = shape == Shape.AbortedBatch ? (int)reader.ReadVarint() : -1;
        if (count != operations.Count)
        {
            throw new InvalidDataException("The stored outcome does not match the batch.");
        }
        var results = new CommandResult[count];
        for (var i = 0; i < (failedIndex >= 0 ? failedIndex + 1 : count); i++)
        {
            results[i] = ReadResult(ref reader, operations[i].Name, recordedAt);
        }
        return new RequestOutcome(default, new BatchResult(results, failedIndex));
    }

    private static void WriteResult(ArrayBufferWriter<byte> buffer, in CommandResult result, long recordedAt)
    {
        buffer.WriteByte((byte)result.Status);
        switch (result.Status)
        {
            case CommandStatus.Failed:
                var error = result.Error!;
                buffer.WriteString(error.Code);
                buffer.WriteString(error.Detail);
                buffer.WriteByte(error.Current is null ? (byte)0 : (byte)1);
                if (error.Current is { } current)
                {
                    WriteCounter(buffer, current, recordedAt);
                }
                break;
            case CommandStatus.Deleted:
                break;
            default:
                buffer.WriteByte(result.Changed ? (byte)1 : (byte)0);
                WriteCounter(buffer, result.Counter!, recordedAt);
                break;
        }
    }

    private static CommandResult ReadResult(ref SpanReader reader, string name, long recordedAt)
    {
        var status = (CommandStatus)reader.ReadByte();
        switch (status)
        {
            case CommandStatus.Failed:
                var code = reader.ReadString();
                var detail = reader.ReadString();
                var current = reader.ReadByte() == 1 ? ReadCounter(ref reader, name, recordedAt) : null;
                return CommandResult.Fail(code, detail, current);
            case CommandStatus.Deleted:
                return new CommandResult(CommandStatus.Deleted, null, null, true);
            case CommandStatus.Ok or CommandStatus.Created:
                var changed = reader.ReadByte() == 1;
                return new CommandResult(status, ReadCounter(ref reader, name, recordedAt), null, changed);
            default:
                throw new InvalidDataException($"Unknown stored status {status}.");
        }
    }

    private static void WriteCounter(ArrayBufferWriter<byte> buffer, Counter counter, long recordedAt)
    {
        buffer.WriteByte((byte)((counter.Min is null ? 0 : 1) | (counter.Max is null ? 0 : 2)));
        buffer.WriteSigned(counter.Value);
        buffer.WriteSigned(counter.Initial);
        if (counter.Min is { } min)
        {
            buffer.WriteSigned(min);
        }
        if (counter.Max is { } max)
        {
            buffer.WriteSigned(max);
        }
        buffer.WriteSigned(counter.Version);
        buffer.WriteSigned(unchecked(recordedAt - counter.CreatedAt));
        buffer.WriteSigned(unchecked(recordedAt - counter.UpdatedAt));
    }

    private static Counter ReadCounter(ref SpanReader reader, string name, long recordedAt)
    {
        var bounds = reader.ReadByte();
        var value = reader.ReadSigned();
        var initial = reader.ReadSigned();
        long? min = (bounds & 1) != 0 ? reader.ReadSigned() : null;
        long? max = (bounds & 2) != 0 ? reader.ReadSigned() : null;
        var version = reader.ReadSigned();
        var createdAt = unchecked(recordedAt - reader.ReadSigned());
        var updatedAt = unchecked(recordedAt - reader.ReadSigned());
        return new Counter(name, value, initial, min, max, version, createdAt, updatedAt);
    }

    private static void WriteByte(this ArrayBufferWriter<byte> buffer, byte value)
    {
        buffer.GetSpan(1)[0] = value;
        buffer.Advance(1);
    }

    private static void WriteVarint(this ArrayBufferWriter<byte> buffer, ulong value)
    {
        var span = buffer.GetSpan(10);
        var length = 0;
        while (value >= 0x80)
        {
            span[length++] = (byte)(value | 0x80);
            value >>= 7;
        }
        span[length++] = (byte)value;
        buffer.Advance(length);
    }

    /// <summary>Zigzag, so small negative numbers stay short too.</summary>
    private static void WriteSigned(this ArrayBufferWriter<byte> buffer, long value) =>
        buffer.WriteVarint(unchecked((ulong)((value << 1) ^ (value >> 63))));

    private static void WriteString(this ArrayBufferWriter<byte> buffer, string text)
    {
        var length = Encoding.UTF8.GetByteCount(text);
        buffer.WriteVarint((ulong)length);
        buffer.Advance(Encoding.UTF8.GetBytes(text, buffer.GetSpan(length)));
    }

    private ref struct SpanReader(ReadOnlySpan<byte> span)
    {
        private readonly ReadOnlySpan<byte> _span = span;
        private int _position;

        public byte ReadByte() => _position < _span.Length ? _span[_position++] : throw Truncated();

        public ulong ReadVarint()
        {
            ulong value = 0;
            for (var shift = 0; shift < 70; shift += 7)
            {
                var next = ReadByte();
                value |= (ulong)(next & 0x7F) << shift;
                if (next < 0x80)
                {
                    return value;
                }
            }
            throw new InvalidDataException("A stored number is too long.");
        }

        public long ReadSigned()
        {
            var raw = ReadVarint();
            return unchecked((long)(raw >> 1) ^ -(long)(raw & 1));
        }

        public string ReadString()
        {
            var length = (int)ReadVarint();
            if (length > _span.Length - _position)
            {
                throw Truncated();
            }
            var text = Encoding.UTF8.GetString(_span.Slice(_position, length));
            _position += length;
            return text;
        }

        private static InvalidDataException Truncated() => new("The stored outcome is truncated.");
    }
}
