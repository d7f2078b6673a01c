using System.Buffers;
using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using Tally.Server.Alerts;
using Tally.Server.Counters;
using Tally.Server.History;
using Tally.Server.Pipeline;

namespace Tally.Server.Storage.Redis;

/// <summary>
/// Writes one commit as the JSON document the <c>tally_v1_commit</c> function reads (tally.lua). Every
/// 64-bit number travels as a decimal string, since Lua would round it to a double; an absent value is
/// <c>false</c>, never <c>null</c> (cjson's null is truthy in Lua).
/// </summary>
internal sealed class RedisCommitWriter
{
    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, SkipValidation = true };

    private const int ShrinkAbove = 4 * 1024 * 1024;

    private ArrayBufferWriter<byte> _buffer = new(16 * 1024);

    /// <summary>The document for <paramref name="batch"/>; valid until the next call.</summary>
    /// <param name="alerts">The alerts that watch a name of the batch (exact ones, then prefixes, each in id order), or null.</param>
    public ReadOnlyMemory<byte> Write(
        IReadOnlyList<PendingRequest> batch, long now, long retentionMs, long maxCounters, long recordBytesPerKey, HistoryOptions history,
        IReadOnlyList<AlertDefinition>? alerts = null, string? commitId = null)
    {
        if (_buffer.Capacity > ShrinkAbove)
        {
            _buffer = new ArrayBufferWriter<byte>(16 * 1024); // a huge commit (an import) must not leave a huge buffer behind
        }
        _buffer.ResetWrittenCount();
        using var json = new Utf8JsonWriter(_buffer, WriterOptions);
        json.WriteStartObject();
        if (commitId is not null)
        {
            json.WriteString("commit", commitId);
        }
        WriteNumber(json, "now", now);
        WriteNumber(json, "retention", retentionMs);
        WriteNumber(json, "maxCounters", maxCounters);
        WriteNumber(json, "recordBytes", recordBytesPerKey);
        json.WriteStartArray("requests");
        foreach (var request in batch)
        {
            json.WriteStartObject();
            if (request.Idempotency is { } idempotency)
            {
                json.WriteString("caller", idempotency.Caller);
                json.WriteString("key", idempotency.Key);
                json.WriteString("fingerprint", Convert.ToHexString(idempotency.Fingerprint));
            }
            if (request.Requester.KeyId is { } owner)
            {
                json.WriteString("owner", owner);
            }
            if (request.Requester.MaxCounters is { } limit)
            {
                WriteNumber(json, "maxCounters", limit);
            }
            json.WriteBoolean("batch", request.Batch is not null);
            json.WriteBoolean("atomic", request.Batch?.Atomic == true);
            json.WriteStartArray("ops");
            if (request.Command is { } command)
            {
                WriteOperation(json, command);
            }
            else
            {
                foreach (var operation in request.Batch!.Operations)
                {
                    WriteOperation(json, operation);
                }
            }
            json.WriteEndArray();
            json.WriteEndObject();
        }
        json.WriteEndArray();
        WriteHistory(json, now, history);
        if (alerts is { Count: > 0 })
        {
            WriteAlerts(json, alerts, now);
        }
        json.WriteEndObject();
        json.Flush();
        return _buffer.WrittenMemory;
    }

    /// <summary>
    /// "history": whether to record, and per period [p, bucket start, chunk start, chunk TTL, chunk expiry], all computed
    /// here (HistoryIntervals, RedisHistory) for the commit's one time, so that tally.lua does no bucketing of its own.
    /// </summary>
    private static void WriteHistory(Utf8JsonWriter json, long now, HistoryOptions history)
    {
        json.WriteStartObject("history");
        json.WriteBoolean("record", history.Enabled);
        json.WriteStartArray("periods");
        if (history.Enabled)
        {
            foreach (var interval in HistoryIntervals.All)
            {
                var start = HistoryIntervals.StartOf(interval, now);
                var chunk = RedisHistory.ChunkOf(interval, start);
                var ttl = RedisHistory.TtlOf(interval, chunk, now, history);
                json.WriteStartArray();
                json.WriteStringValue(RedisHistory.LetterOf(interval));
                WriteNumberValue(json, start);
                WriteNumberValue(json, chunk);
                WriteNumberValue(json, ttl);
                WriteNumberValue(json, now + ttl);
                json.WriteEndArray();
            }
        }
        json.WriteEndArray();
        json.WriteEndObject();
    }

    /// <summary>
    /// <c>"iso"</c>: the commit's time as the payloads show it; <c>"alerts"</c>: each as tally.lua's evaluate_alerts reads it,
    /// [id, revision, direction, threshold, resolve level, "1" when its webhook is enabled, counter or false, prefix or false].
    /// </summary>
    private static void WriteAlerts(Utf8JsonWriter json, IReadOnlyList<AlertDefinition> alerts, long now)
    {
        json.WriteString("iso", AlertPayload.Timestamp(now));
        json.WriteStartArray("alerts");
        foreach (var alert in alerts)
        {
            json.WriteStartArray();
            json.WriteStringValue(alert.Id);
            WriteNumberValue(json, alert.Revision);
            json.WriteStringValue(alert.Direction == AlertDirection.Above ? "above" : "below");
            WriteNumberValue(json, alert.Threshold);
            WriteNumberValue(json, alert.ResolveLevel);
            json.WriteStringValue(alert.WebhookEnabled ? "1" : "0");
            if (alert.Counter is { } counter)
            {
                json.WriteStringValue(counter);
                json.WriteBooleanValue(false);
            }
            else
            {
                json.WriteBooleanValue(false);
                json.WriteStringValue(alert.Prefix);
            }
            json.WriteEndArray();
        }
        json.WriteEndArray();
    }

    /// <summary>[kind, name, argument, precondition], as tally.lua's apply_rules reads it.</summary>
    private static void WriteOperation(Utf8JsonWriter json, CounterCommand command)
    {
        json.WriteStartArray();
        json.WriteStringValue(command.Kind switch
        {
            CommandKind.Increment => "i",
            CommandKind.Decrement => "d",
            CommandKind.Put => "p",
            CommandKind.Get => "g",
            CommandKind.Reset => "r",
            CommandKind.Delete => "x",
            CommandKind.Import => "m",
            _ => throw new ArgumentOutOfRangeException(nameof(command), command.Kind, "Unknown command kind."),
        });
        json.WriteStringValue(command.Name);
        switch (command.Kind)
        {
            case CommandKind.Increment or CommandKind.Decrement:
                WriteNumberValue(json, command.Amount);
                break;
            case CommandKind.Put:
                json.WriteStartArray();
                WriteField(json, command.Fields.Value.IsSet, command.Fields.Value.Value);
                WriteField(json, command.Fields.Initial.IsSet, command.Fields.Initial.Value);
                WriteField(json, command.Fields.Min.IsSet, command.Fields.Min.Value);
                WriteField(json, command.Fields.Max.IsSet, command.Fields.Max.Value);
                json.WriteEndArray();
                break;
            case CommandKind.Import:
                var state = command.State!;
                json.WriteStartArray();
                WriteNumberValue(json, state.Value);
                WriteNumberValue(json, state.Initial);
                WriteBound(json, state.Min);
                WriteBound(json, state.Max);
                WriteNumberValue(json, state.Version);
                WriteNumberValue(json, state.CreatedAt);
                WriteNumberValue(json, state.UpdatedAt);
                json.WriteEndArray();
                break;
            default:
                json.WriteBooleanValue(false);
                break;
        }
        switch (command.Precondition.Kind)
        {
            case PreconditionKind.IfMatchAny:
                json.WriteStringValue("*");
                break;
            case PreconditionKind.IfNoneMatchAny:
                json.WriteStringValue("!");
                break;
            case PreconditionKind.IfMatch:
                json.WriteStartArray();
                foreach (var version in command.Precondition.Versions!)
                {
                    WriteNumberValue(json, version);
                }
                json.WriteEndArray();
                break;
            default:
                json.WriteBooleanValue(false);
                break;
        }
        json.WriteEndArray();
    }

    /// <summary>A PUT field: false when absent, "" when set to null (unbounded), else the number.</summary>
    private static void WriteField(Utf8JsonWriter json, bool isSet, long? value)
    {
        if (!isSet)
        {
            json.WriteBooleanValue(false);
        }
        else
        {
            WriteBound(json, value);
        }
    }

    private static void WriteBound(Utf8JsonWriter json, long? bound)
    {
        if (bound is { } value)
        {
            WriteNumberValue(json, value);
        }
        else
        {
            json.WriteStringValue(string.Empty);
        }
    }

    private static void WriteNumber(Utf8JsonWriter json, string name, long value)
    {
        json.WritePropertyName(name);
        WriteNumberValue(json, value);
    }

    private static void WriteNumberValue(Utf8JsonWriter json, long value)
    {
        Span<byte> digits = stackalloc byte[20];
        value.TryFormat(digits, out var written, default, CultureInfo.InvariantCulture);
        json.WriteStringValue(digits[..written]);
    }
}
