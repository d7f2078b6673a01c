using Microsoft.AspNetCore.Http.HttpResults;
using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Primitives;
using Tally.Server.Counters;

namespace Tally.Server.Http;

/// <summary>Turns query strings, headers and JSON bodies into command arguments, or a 4xx problem.</summary>
internal static class RequestParsing
{
    private const string AmountRule = "'by' must be an integer from 1 to 9223372036854775807.";

    /// <summary><c>by</c> from the query or a JSON body <c>{"by": n}</c>; neither means 1.</summary>
    public static IResult? ParseAmount(StringValues query, ReadOnlyMemory<byte> body, out long amount)
    {
        amount = 1;
        if (query.Count > 0)
        {
            if (query.Count > 1 || !long.TryParse(query[0], NumberStyles.None, CultureInfo.InvariantCulture, out amount) || amount < 1)
            {
                return Problems.Create(ErrorCodes.InvalidAmount, $"{AmountRule} (query: '{query}')");
            }
        }
        if (body.IsEmpty)
        {
            return null;
        }

        try
        {
            var reader = new Utf8JsonReader(body.Span, new JsonReaderOptions { MaxDepth = 16 });
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return Problems.Create(Problems.InvalidBody, "The body must be a JSON object such as {\"by\": 5}.");
            }
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var isBy = reader.ValueTextEquals("by"u8);
                reader.Read();
                if (!isBy)
                {
                    reader.Skip();
                    continue;
                }
                if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out amount) || amount < 1)
                {
                    return Problems.Create(ErrorCodes.InvalidAmount, AmountRule);
                }
            }
            ExpectEnd(ref reader);
            return null;
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            return InvalidJson(ex);
        }
    }

    /// <summary>The PUT body: <c>value</c>, <c>initial</c>, <c>min</c>, <c>max</c>, all optional; unknown members are refused.</summary>
    public static IResult? ParseFields(ReadOnlyMemory<byte> body, out CounterFields fields)
    {
        fields = default;
        if (body.IsEmpty)
        {
            return null;
        }
        try
        {
            var reader = new Utf8JsonReader(body.Span, new JsonReaderOptions { MaxDepth = 16 });
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return Problems.Create(Problems.InvalidBody, "The body must be a JSON object with any of value, initial, min, max.");
            }
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var member = reader.GetString()!;
                reader.Read();
                if (member is not ("value" or "initial" or "min" or "max"))
                {
                    return Problems.Create(Problems.InvalidBody, $"Unknown member '{member}'; a counter has value, initial, min and max.");
                }
                if (ReadInteger(ref reader, member, nullable: member is "min" or "max", out var number) is { } problem)
                {
                    return problem;
                }
                fields = member switch
                {
                    "value" => fields with { Value = Optional<long>.Of(number!.Value) },
                    "initial" => fields with { Initial = Optional<long>.Of(number!.Value) },
                    "min" => fields with { Min = Optional<long?>.Of(number) },
                    _ => fields with { Max = Optional<long?>.Of(number) },
                };
            }
            ExpectEnd(ref reader);
            return null;
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            return InvalidJson(ex);
        }
    }

    /// <summary>A JSON body parsed whole, or the problem to answer (empty body, invalid JSON). The caller disposes the document.</summary>
    public static ProblemHttpResult? ParseDocument(ReadOnlyMemory<byte> body, int maxDepth, string whatToSend, out JsonDocument document)
    {
        document = null!;
        if (body.IsEmpty)
        {
            return Problems.Create(Problems.InvalidBody, whatToSend);
        }
        try
        {
            document = JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = maxDepth });
            return null;
        }
        catch (JsonException ex)
        {
            return Problems.Create(Problems.InvalidJson, $"The body is not valid JSON: {ex.Message}");
        }
    }

    /// <summary><c>If-Match</c> and <c>If-None-Match: *</c>. ETags are <c>"&lt;version&gt;"</c>; weak tags compare equal.</summary>
    public static IResult? ParsePrecondition(HttpRequest request, out Precondition precondition)
    {
        precondition = Precondition.None;
        var ifNoneMatch = request.Headers.IfNoneMatch;
        if (ifNoneMatch.Count > 0)
        {
            if (ifNoneMatch.ToString().Trim() != "*")
            {
                return Problems.Create(Problems.InvalidPrecondition, "Only If-None-Match: * (create-only) is supported on changes.");
            }
            precondition = new Precondition(PreconditionKind.IfNoneMatchAny);
        }

        var ifMatch = request.Headers.IfMatch;
        if (ifMatch.Count == 0)
        {
            return null;
        }
        if (precondition.Kind != PreconditionKind.None)
        {
            return Problems.Create(Problems.InvalidPrecondition, "Send either If-Match or If-None-Match, not both.");
        }
        var text = ifMatch.ToString().Trim();
        if (text == "*")
        {
            precondition = new Precondition(PreconditionKind.IfMatchAny);
            return null;
        }

        var versions = new List<long>();
        foreach (var part in text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            var tag = part.StartsWith("W/", StringComparison.Ordinal) ? part[2..] : part;
            if (tag.Length < 3 || tag[0] != '"' || tag[^1] != '"'
                || !long.TryParse(tag.AsSpan(1, tag.Length - 2), NumberStyles.None, CultureInfo.InvariantCulture, out var version))
            {
                return Problems.Create(Problems.InvalidPrecondition, $"If-Match takes ETags like \"17\" (a counter's version), got {part}.");
            }
            versions.Add(version);
        }
        if (versions.Count == 0)
        {
            return Problems.Create(Problems.InvalidPrecondition, "If-Match is empty.");
        }
        precondition = Precondition.IfMatch([.. versions]);
        return null;
    }

    private static IResult? ReadInteger(ref Utf8JsonReader reader, string member, bool nullable, out long? value)
    {
        value = null;
        if (reader.TokenType == JsonTokenType.Null && nullable)
        {
            return null;
        }
        if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var number))
        {
            value = number;
            return null;
        }
        if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray)
        {
            reader.Skip();
        }
        var code = member is "min" or "max" ? ErrorCodes.InvalidBounds : ErrorCodes.InvalidValue;
        return Problems.Create(code, nullable
            ? $"'{member}' must be a 64-bit integer or null."
            : $"'{member}' must be a 64-bit integer.");
    }

    private static void ExpectEnd(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.EndObject || reader.Read())
        {
            throw new JsonException("Unexpected content after the JSON object.");
        }
    }

    private static IResult InvalidJson(Exception ex) =>
        Problems.Create(Problems.InvalidJson, $"The body is not valid JSON: {ex.Message}");
}
