using System.Buffers;
using System.Text.Json;
using Tally.Server.Batch;
using Tally.Server.Counters;
using Tally.Server.Pipeline;

namespace Tally.Server.Http;

/// <summary>
/// Turns an outcome into its HTTP status, ETag and JSON body. Deterministic (no trace ids, no
/// clock), so a keyed request's first response and its replays are byte for byte the same.
/// A problem shows the counter's state (value, bounds, version) only to a caller that may read it:
/// it never tells more than a GET would.
/// </summary>
internal static class ResponseRenderer
{
    public const string BatchFailed = "batch_failed";

    // Relaxed escaping keeps details readable ('name' rather than \u0027name\u0027); bodies are JSON, never HTML.
    private static readonly JsonWriterOptions WriterOptions = new() { SkipValidation = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Writes the body; returns the status and the ETag (null when no counter is shown).</summary>
    /// <param name="mayRead">Whether the caller may read the counters (scope read, write or admin).</param>
    public static (int Status, string? ETag) Write(in RequestOutcome outcome, IBufferWriter<byte> output, bool mayRead)
    {
        using var json = new Utf8JsonWriter(output, WriterOptions);
        if (outcome.Batch is { } batch)
        {
            return (WriteBatch(json, batch, mayRead), null);
        }
        var result = outcome.Result;
        switch (result.Status)
        {
            case CommandStatus.Failed:
                WriteProblem(json, result.Error!, mayRead);
                return (Problems.StatusOf(result.Error!.Code), null);
            case CommandStatus.Deleted:
                return (StatusCodes.Status204NoContent, null);
            default:
                WriteCounter(json, result.Counter!);
                return (result.Status == CommandStatus.Created ? StatusCodes.Status201Created : StatusCodes.Status200OK, ETagOf(result.Counter!));
        }
    }

    public static string ETagOf(Counter counter) => $"\"{counter.Version}\"";

    private static int WriteBatch(Utf8JsonWriter json, BatchResult batch, bool mayRead)
    {
        if (batch.Aborted)
        {
            var failed = batch.Results[batch.FailedIndex].Error!;
            json.WriteStartObject();
            json.WriteString("type", Problems.TypeOf(BatchFailed));
            json.WriteString("title", Problems.TitleOf(BatchFailed));
            json.WriteNumber("status", StatusCodes.Status409Conflict);
            json.WriteString("detail", $"Operation {batch.FailedIndex} failed ({failed.Code}), so no operation of the atomic batch was applied.");
            json.WriteString("code", BatchFailed);
            json.WriteNumber("index", batch.FailedIndex);
            json.WritePropertyName("error");
            WriteProblem(json, failed, mayRead);
            json.WriteEndObject();
            return StatusCodes.Status409Conflict;
        }

        json.WriteStartObject();
        json.WriteStartArray("results");
        foreach (var result in batch.Results)
        {
            json.WriteStartObject();
            switch (result.Status)
            {
                case CommandStatus.Failed:
                    json.WriteNumber("status", Problems.StatusOf(result.Error!.Code));
                    json.WritePropertyName("error");
                    WriteProblem(json, result.Error, mayRead);
                    break;
                case CommandStatus.Deleted:
                    json.WriteNumber("status", StatusCodes.Status204NoContent);
                    break;
                default:
                    json.WriteNumber("status", result.Status == CommandStatus.Created ? StatusCodes.Status201Created : StatusCodes.Status200OK);
                    json.WritePropertyName("counter");
                    WriteCounter(json, result.Counter!);
                    break;
            }
            json.WriteEndObject();
        }
        json.WriteEndArray();
        json.WriteEndObject();
        return StatusCodes.Status200OK;
    }

    public static void WriteCounter(Utf8JsonWriter json, Counter counter)
    {
        json.WriteStartObject();
        json.WriteString("name"u8, counter.Name);
        json.WriteNumber("value"u8, counter.Value);
        json.WriteNumber("initial"u8, counter.Initial);
        WriteBound(json, "min"u8, counter.Min);
        WriteBound(json, "max"u8, counter.Max);
        json.WriteNumber("version"u8, counter.Version);
        json.WriteString("createdAt"u8, DateTime.UnixEpoch.AddMilliseconds(counter.CreatedAt));
        json.WriteString("updatedAt"u8, DateTime.UnixEpoch.AddMilliseconds(counter.UpdatedAt));
        json.WriteEndObject();
    }

    private static void WriteProblem(Utf8JsonWriter json, CounterError error, bool mayRead)
    {
        json.WriteStartObject();
        json.WriteString("type"u8, Problems.TypeOf(error.Code));
        json.WriteString("title"u8, Problems.TitleOf(error.Code));
        json.WriteNumber("status"u8, Problems.StatusOf(error.Code));
        json.WriteString("detail"u8, error.Detail);
        json.WriteString("code"u8, error.Code);
        if (mayRead && error.Current is { } current)
        {
            switch (error.Code)
            {
                case ErrorCodes.OutOfRange:
                    json.WriteNumber("value"u8, current.Value);
                    WriteBound(json, "min"u8, current.Min);
                    WriteBound(json, "max"u8, current.Max);
                    break;
                case ErrorCodes.VersionMismatch:
                    json.WriteNumber("version"u8, current.Version);
                    break;
            }
        }
        json.WriteEndObject();
    }

    private static void WriteBound(Utf8JsonWriter json, ReadOnlySpan<byte> name, long? bound)
    {
        if (bound is { } value)
        {
            json.WriteNumber(name, value);
        }
        else
        {
            json.WriteNull(name);
        }
    }
}
