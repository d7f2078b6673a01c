using System.Collections.Frozen;
using System.Text.Json.Serialization.Metadata;

namespace Tally.Server.Docs;

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
