using System.Text.Json;
using System.Text.Json.Serialization;
using Tally.Server.Auth;
using Tally.Server.Batch;
using Tally.Server.Counters;

namespace Tally.Server.Docs;

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
