using System.ComponentModel;
using System.ComponentModel.DataAnnotations;
using System.Text.Json.Serialization;
using Tally.Server.Docs;

namespace Tally.Server.Auth;

/// <summary>The body of <c>POST /admin/keys</c>: the member list of <see cref="AdminKeyEndpoints.ParseRequest"/> and the document's schema.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
internal sealed record CreateApiKeyRequest
{
    [MinLength(1)]
    [Description("Who or what the key is for: printable text, at most 100 characters.")]
    public required string Name { get; init; }

    [MinLength(1)]
    [Description("What the key may do.")]
    public required IReadOnlyList<ApiScopeName> Scopes { get; init; }

    [Description("The counter-name prefix the key may touch; \"\" (the default) is every counter. An admin key has none.")]
    public string Prefix { get; init; } = string.Empty;

    [IntegerRange(1, long.MaxValue)]
    [Description("How many live counters the key may have created; null or absent: Quotas:DefaultMaxCounters.")]
    public long? MaxCounters { get; init; }

    [IntegerRange(1, long.MaxValue)]
    [Description("The largest 'by' the key may send; null or absent: no limit.")]
    public long? MaxAmount { get; init; }
}

/// <summary>The scopes by name: the one list (<see cref="ApiKey.ScopeNames"/> reads it); each member is named as its <see cref="ApiScopes"/> flag.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<ApiScopeName>))]
internal enum ApiScopeName
{
    [JsonStringEnumMemberName("read")] Read,
    [JsonStringEnumMemberName("increment")] Increment,
    [JsonStringEnumMemberName("write")] Write,
    [JsonStringEnumMemberName("admin")] Admin,
}
