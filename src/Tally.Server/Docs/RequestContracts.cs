using System.Collections.Frozen;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Tally.Server.Auth;
using Tally.Server.Batch;
using Tally.Server.Counters;

namespace Tally.Server.Docs;

/// <summary>An integer's inclusive range, written into the schema (<c>minimum</c>, <c>maximum</c>) exactly, as 64-bit integers.</summary>
[AttributeUsage(AttributeTargets.Property)]
internal sealed class IntegerRangeAttribute(long minimum, long maximum) : Attribute
{
    public long Minimum { get; } = minimum;

    public long Maximum { get; } = maximum;
}

/// <summary>A counter name: the schema gets <see cref="CounterNamePattern.Pattern"/>.</summary>
[AttributeUsage(AttributeTargets.Property)]
internal sealed class CounterNamePatternAttribute : Attribute;

internal static class CounterNamePattern
{
    /// <summary>What <see cref="CounterName.IsValid"/> accepts, as the document states it.</summary>
    public const string Pattern = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$";
}

/// <summary>
/// The request bodies, source-generated as the document sees them: numbers only as JSON numbers, unknown members
/// refused (<c>additionalProperties: false</c>), duplicate members refused. The hand parsers take their member lists
/// from here (<see cref="RequestMembers"/>), so what they accept and what the document says cannot drift apart.
/// </summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web,
    NumberHandling = JsonNumberHandling.Strict,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    AllowDuplicateProperties = false)]
[JsonSerializable(typeof(AmountRequest))]
[JsonSerializable(typeof(CounterFieldsRequest))]
[JsonSerializable(typeof(BatchRequest))]
[JsonSerializable(typeof(IncrementOperation))]
[JsonSerializable(typeof(DecrementOperation))]
[JsonSerializable(typeof(SetOperation))]
[JsonSerializable(typeof(GetOperation))]
[JsonSerializable(typeof(ResetOperation))]
[JsonSerializable(typeof(DeleteOperation))]
[JsonSerializable(typeof(BatchResponse))]
[JsonSerializable(typeof(CreateApiKeyRequest))]
internal sealed partial class RequestJsonContext : JsonSerializerContext;

/// <summary>The JSON member names a request type declares, as its source-generated contract names them.</summary>
internal static class RequestMembers
{
    public static readonly FrozenSet<string> Amount = Of(RequestJsonContext.Default.AmountRequest);
    public static readonly FrozenSet<string> CounterFields = Of(RequestJsonContext.Default.CounterFieldsRequest);
    public static readonly FrozenSet<string> Batch = Of(RequestJsonContext.Default.BatchRequest);
    public static readonly FrozenSet<string> CreateApiKey = Of(RequestJsonContext.Default.CreateApiKeyRequest);

    /// <summary>Per batch <c>op</c>: the members that operation takes, <c>op</c> included.</summary>
    public static readonly FrozenDictionary<string, FrozenSet<string>> BatchOperations =
        RequestJsonContext.Default.BatchOperation.PolymorphismOptions!.DerivedTypes.ToFrozenDictionary(
            derived => (string)derived.TypeDiscriminator!,
            derived => Of(RequestJsonContext.Default.GetTypeInfo(derived.DerivedType)!, "op"),
            StringComparer.Ordinal);

    private static FrozenSet<string> Of(JsonTypeInfo type, params string[] more) =>
        type.Properties.Select(property => property.Name).Concat(more).ToFrozenSet(StringComparer.Ordinal);
}
