using Microsoft.AspNetCore.Http.HttpResults;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Primitives;
using Tally.Server.Counters;
using Tally.Server.Docs;

namespace Tally.Server.Http;

/// <summary>Turns query strings, headers and JSON bodies into command arguments, or a 4xx problem.</summary>
internal static class RequestParsing
{
    private const string AmountRule = "'by' must be an integer from 1 to 9223372036854775807.";

    /// <summary>AmountRequest's one member (<c>by</c>) as UTF-8: compared in place, so an increment allocates no member name.</summary>
    private static readonly byte[] AmountMember = Encoding.UTF8.GetBytes(RequestMembers.Amount.Single());

    /// <summary><c>by</c> from the query or a JSON body <c>{"by": n}</c>, not both; neither means 1.</summary>
    public static IResult? ParseAmount(StringValues query, ReadOnlyMemory<byte> body, out long amount)
    {
        amount = 1;
        if (query.Count > 0)
        {
            if (query.Count > 1 || !TryParseDigits(query[0], out amount) || amount < 1)
            {
                return Problems.Create(ErrorCodes.InvalidAmount, $"{AmountRule} (query: '{Truncate(query.ToString())}')");
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
            var seen = false;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (!reader.ValueTextEquals(AmountMember))
                {
                    return Problems.Create(Problems.InvalidBody, $"Unknown member '{Truncate(reader.GetString()!)}'; the body is {{\"by\": n}}.");
                }
                if (seen)
                {
                    return Problems.Create(Problems.InvalidBody, "The member 'by' appears twice; send it once.");
                }
                if (query.Count > 0)
                {
                    return Problems.Create(ErrorCodes.InvalidAmount, "Send 'by' in the query or in the body, not both.");
                }
                seen = true;
                reader.Read();
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

    /// <summary>
    /// A non-negative decimal integer of ASCII digits only. <c>long.TryParse</c> alone would take
    /// <c>"7\0"</c> (it ignores trailing NULs), so <c>?by=7%00</c> would pass as 7.
    /// </summary>
    public static bool TryParseDigits(string? text, out long value)
    {
        value = 0;
        return !string.IsNullOrEmpty(text) && text.AsSpan().IndexOfAnyExceptInRange('0', '9') < 0
            && long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value);
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
            var seen = new HashSet<string>(4, StringComparer.Ordinal);
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var member = reader.GetString()!;
                reader.Read();
                if (!RequestMembers.CounterFields.Contains(member))
                {
                    return Problems.Create(Problems.InvalidBody, $"Unknown member '{Truncate(member)}'; a counter has value, initial, min and max.");
                }
                if (!seen.Add(member))
                {
                    return Problems.Create(Problems.InvalidBody, $"The member '{member}' appears twice; send it once.");
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
            document = JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = maxDepth, AllowDuplicateProperties = false });
            return null;
        }
        catch (JsonException ex)
        {
            return DuplicateMember(body, maxDepth) is { } duplicate
                ? Problems.Create(Problems.InvalidBody, $"The member '{Truncate(duplicate)}' appears twice in one object; send it once.")
                : InvalidJson(ex);
        }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException)
        {
            // Comparing member names for duplicates decodes them: an escaped lone surrogate ("\ud800") cannot be.
            return NotText();
        }
    }

    /// <summary>An escaped lone surrogate ("\ud800") is valid JSON but not text: reading it as a string throws.</summary>
    public static ProblemHttpResult NotText() =>
        Problems.Create(Problems.InvalidBody, "The body holds a string that is not valid Unicode text (an unpaired surrogate).");

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
                || !TryParseDigits(tag[1..^1], out var version))
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

    /// <summary>
    /// Whether a read's <c>If-None-Match</c> matches the counter's ETag <c>"&lt;version&gt;"</c>: <c>*</c>, or any tag
    /// of the list, weak or strong (RFC 9110 compares weakly here). Tags that are not a version match nothing.
    /// </summary>
    public static bool IfNoneMatchHits(HttpRequest request, long version)
    {
        foreach (var value in request.Headers.IfNoneMatch)
        {
            foreach (var part in (value ?? string.Empty).Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            {
                if (part == "*")
                {
                    return true;
                }
                var tag = part.StartsWith("W/", StringComparison.Ordinal) ? part[2..] : part;
                if (tag.Length >= 3 && tag[0] == '"' && tag[^1] == '"' && TryParseDigits(tag[1..^1], out var tagged) && tagged == version)
                {
                    return true;
                }
            }
        }
        return false;
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

    private static ProblemHttpResult InvalidJson(Exception ex) =>
        Problems.Create(Problems.InvalidJson, DescribeJsonError(ex));

    /// <summary>Plain words for a JSON syntax error: where it is, not the parser's message (which names its internals).</summary>
    public static string DescribeJsonError(Exception ex) =>
        ex is JsonException { BytePositionInLine: { } position, LineNumber: { } line }
            ? line == 0
                ? $"The body is not valid JSON (near byte {position + 1})."
                : $"The body is not valid JSON (near line {line + 1}, byte {position + 1})."
            : "The body is not valid JSON, or not UTF-8.";

    /// <summary>The first member name that appears twice in one object, when the body parses with duplicates allowed.</summary>
    private static string? DuplicateMember(ReadOnlyMemory<byte> body, int maxDepth)
    {
        try
        {
            using var document = JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = maxDepth });
            return DuplicateMember(document.RootElement);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static string? DuplicateMember(JsonElement element)
    {
        if (element.ValueKind == JsonValueKind.Array)
        {
            foreach (var item in element.EnumerateArray())
            {
                if (DuplicateMember(item) is { } found)
                {
                    return found;
                }
            }
        }
        else if (element.ValueKind == JsonValueKind.Object)
        {
            var names = new HashSet<string>(StringComparer.Ordinal);
            foreach (var member in element.EnumerateObject())
            {
                if (!names.Add(member.Name))
                {
                    return member.Name;
                }
                if (DuplicateMember(member.Value) is { } found)
                {
                    return found;
                }
            }
        }
        return null;
    }

    private static string Truncate(string text) => text.Length <= 60 ? text : text[..60] + "…";
}
