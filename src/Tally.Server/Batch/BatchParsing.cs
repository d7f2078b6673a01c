using System.Collections.Frozen;
using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Tally.Server.Counters;
using Tally.Server.Docs;
using Tally.Server.Http;

namespace Tally.Server.Batch;

/// <summary>
/// Reads <c>{"atomic": false, "ops": [{"op": "increment", "name": "a", "by": 2}, …]}</c>.
/// Any malformed operation refuses the whole request (400, with its index): nothing is applied.
/// </summary>
internal static class BatchParsing
{
    public const string TooManyOperations = "too_many_operations";

    public static IResult? Parse(ReadOnlyMemory<byte> body, out BatchCommand batch)
    {
        batch = new BatchCommand([], false);
        if (RequestParsing.ParseDocument(body, 8, "Send {\"ops\": [...]} with 1 to 1000 operations.", out var document) is { } invalid)
        {
            return invalid;
        }

        using (document)
        {
            try
            {
                return ParseRoot(document.RootElement, out batch);
            }
            catch (InvalidOperationException)
            {
                return RequestParsing.NotText();
            }
        }
    }

    private static IResult? ParseRoot(JsonElement root, out BatchCommand batch)
    {
        batch = new BatchCommand([], false);
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("ops", out var ops) || ops.ValueKind != JsonValueKind.Array)
        {
            return Problems.Create(Problems.InvalidBody, "The body must be an object with an array 'ops'.");
        }
        foreach (var member in root.EnumerateObject())
        {
            if (!RequestMembers.Batch.Contains(member.Name))
            {
                return Problems.Create(Problems.InvalidBody, $"Unknown member '{Shown(member.Name)}'; a batch has 'ops' and 'atomic'.");
            }
        }
        var atomic = false;
        if (root.TryGetProperty("atomic", out var atomicElement))
        {
            if (atomicElement.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
            {
                return Problems.Create(Problems.InvalidBody, "'atomic' must be true or false.");
            }
            atomic = atomicElement.GetBoolean();
        }
        var count = ops.GetArrayLength();
        if (count > BatchCommand.MaxOperations)
        {
            return Problems.Create(TooManyOperations, $"A batch holds at most {BatchCommand.MaxOperations} operations (got {count}).");
        }
        if (count == 0)
        {
            return Problems.Create(Problems.InvalidBody, "'ops' is empty.");
        }

        var commands = new CounterCommand[count];
        var index = 0;
        foreach (var op in ops.EnumerateArray())
        {
            if (ParseOperation(op, index, out commands[index]) is { } problem)
            {
                return problem;
            }
            index++;
        }
        batch = new BatchCommand(commands, atomic);
        return null;
    }

    /// <summary>What <c>out</c> holds when an operation is refused (the batch is then never built): one instance, not one per operation.</summary>
    private static readonly CounterCommand Refused = CounterCommand.Get(string.Empty);

    private static IResult? ParseOperation(JsonElement op, int index, out CounterCommand command)
    {
        command = Refused;
        if (op.ValueKind != JsonValueKind.Object)
        {
            return Invalid(Problems.InvalidBody, index, "each operation must be an object.");
        }
        var kind = op.TryGetProperty("op", out var kindElement) && kindElement.ValueKind == JsonValueKind.String ? KindOf(kindElement) : null;
        var name = op.TryGetProperty("name", out var nameElement) && nameElement.ValueKind == JsonValueKind.String ? nameElement.GetString() : null;
        if (!CounterName.IsValid(name))
        {
            return Invalid(ErrorCodes.InvalidName, index, $"'name' must match {CounterName.Pattern}.");
        }
        if (kind is not null && OperationMembers.ContainsKey(kind) && UnknownMember(op, kind) is { } unknown)
        {
            return Invalid(Problems.InvalidBody, index, $"unknown member '{Shown(unknown)}' for op '{kind}'.");
        }

        var precondition = Precondition.None;
        if (op.TryGetProperty("ifMatch", out var ifMatch))
        {
            // As If-Match: "<version>": a version is an integer from 1 up; anything else is malformed, not a mismatch.
            if (ifMatch.ValueKind != JsonValueKind.Number || !ifMatch.TryGetInt64(out var version) || version < 1)
            {
                return Invalid(Problems.InvalidPrecondition, index, "'ifMatch' must be a counter version (an integer from 1 to 9223372036854775807).");
            }
            precondition = Precondition.IfMatch(version);
        }

        switch (kind)
        {
            case "increment" or "decrement":
                var by = 1L;
                if (op.TryGetProperty("by", out var byElement)
                    && (byElement.ValueKind != JsonValueKind.Number || !byElement.TryGetInt64(out by) || by < 1))
                {
                    return Invalid(ErrorCodes.InvalidAmount, index, "'by' must be an integer from 1 to 9223372036854775807.");
                }
                command = kind == "increment" ? CounterCommand.Increment(name!, by, precondition) : CounterCommand.Decrement(name!, by, precondition);
                return null;
            case "set":
                if (RequestParsing.ParseFields(System.Text.Encoding.UTF8.GetBytes(WithoutOpMembers(op)), out var fields) is { } problem)
                {
                    // PUT's problem, with the operation's index like every other malformed operation.
                    return problem is ProblemHttpResult { ProblemDetails: var details } && details.Extensions.TryGetValue("code", out var code) && code is string fieldsCode
                        ? Invalid(fieldsCode, index, details.Detail ?? "invalid counter fields.")
                        : problem;
                }
                command = CounterCommand.Put(name!, fields, precondition);
                return null;
            case "get":
                command = CounterCommand.Get(name!);
                return null;
            case "reset":
                command = CounterCommand.Reset(name!, precondition);
                return null;
            case "delete":
                command = CounterCommand.Delete(name!, precondition);
                return null;
            default:
                return Invalid(Problems.InvalidBody, index, "'op' must be one of increment, decrement, set, get, reset, delete.");
        }
    }

    /// <summary>Per <c>op</c>, the members it takes in UTF-8: compared in the body's bytes, no string made per member.</summary>
    private static readonly FrozenDictionary<string, byte[][]> OperationMembers = RequestMembers.BatchOperations.ToFrozenDictionary(
        entry => entry.Key, entry => entry.Value.Select(System.Text.Encoding.UTF8.GetBytes).ToArray(), StringComparer.Ordinal);

    private static readonly (string Kind, byte[] Utf8)[] Kinds = [.. OperationMembers.Keys.Select(kind => (kind, System.Text.Encoding.UTF8.GetBytes(kind)))];

    /// <summary>The <c>op</c> value: one of the known kinds without allocating, else the string as sent.</summary>
    private static string? KindOf(JsonElement element)
    {
        foreach (var (kind, utf8) in Kinds)
        {
            if (element.ValueEquals(utf8))
            {
                return kind;
            }
        }
        return element.GetString();
    }

    /// <summary>The first member an operation of this kind does not take: its members are those of its type in <see cref="BatchRequest"/>.</summary>
    private static string? UnknownMember(JsonElement op, string kind)
    {
        var members = OperationMembers[kind];
        foreach (var member in op.EnumerateObject())
        {
            if (!Takes(members, member))
            {
                return member.Name;
            }
        }
        return null;
    }

    private static bool Takes(byte[][] members, JsonProperty member)
    {
        foreach (var name in members)
        {
            if (member.NameEquals(name))
            {
                return true;
            }
        }
        return false;
    }

    private static string Shown(string name) => name.Length <= 60 ? name : name[..60] + "…";

    /// <summary>The operation's counter fields only, so "set" reuses PUT's parsing and its checks.</summary>
    private static string WithoutOpMembers(JsonElement op)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            foreach (var member in op.EnumerateObject())
            {
                if (member.Name is not ("op" or "name" or "ifMatch"))
                {
                    member.WriteTo(json);
                }
            }
            json.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }

    private static IResult Invalid(string code, int index, string detail) =>
        Problems.Create(code, $"ops[{index}]: {detail}", new Dictionary<string, object?> { ["index"] = index });
}
