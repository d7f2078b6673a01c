using System.Globalization;
using System.Reflection;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;
using Tally.Server.Auth;
using Tally.Server.Batch;
using Tally.Server.Counters;
using Tally.Server.History;

namespace Tally.Server.Docs;

/// <summary>Schema transformer: exact integer ranges, the name pattern, integers only as numbers, and examples.</summary>
internal static class OpenApiSchemas
{
    private const string CounterExample = """
        {"name":"downloads:v2","value":42,"initial":0,"min":null,"max":1000,"version":17,
         "createdAt":"2026-11-21T22:00:00Z","updatedAt":"2026-11-21T22:05:00Z"}
        """;

    private const string HistoryExample = """
        {"name":"signups","interval":"hour","buckets":[
         {"start":"2026-11-21T21:00:00Z","increments":12,"decrements":3,"sets":0,"value":100},
         {"start":"2026-11-21T22:00:00Z","increments":9,"decrements":0,"sets":1,"value":0}]}
        """;

    public static Task TransformAsync(OpenApiSchema schema, OpenApiSchemaTransformerContext context, CancellationToken cancellationToken)
    {
        // The web defaults would let a number be read from a string, so the framework types every integer "integer or
        // string". Tally reads numbers only as JSON numbers (RequestParsing) and always writes them as numbers.
        if (schema.Type is { } type && type.HasFlag(JsonSchemaType.Integer) && type.HasFlag(JsonSchemaType.String))
        {
            schema.Type = type & ~JsonSchemaType.String;
            schema.Pattern = null;
        }

        if (context.JsonPropertyInfo?.AttributeProvider is ICustomAttributeProvider attributes)
        {
            if (attributes.GetCustomAttributes(typeof(IntegerRangeAttribute), inherit: true) is [IntegerRangeAttribute range, ..])
            {
                schema.Minimum = range.Minimum.ToString(CultureInfo.InvariantCulture);
                schema.Maximum = range.Maximum.ToString(CultureInfo.InvariantCulture);
            }
            if (attributes.GetCustomAttributes(typeof(CounterNamePatternAttribute), inherit: true) is [_, ..])
            {
                schema.Pattern = CounterName.Pattern;
            }
        }

        var clrType = context.JsonTypeInfo.Type;
        if (typeof(BatchOperation).IsAssignableFrom(clrType) && !clrType.IsAbstract)
        {
            schema.Required ??= new HashSet<string>();
            schema.Required.Add("op"); // the discriminator: an operation without one is refused
        }
        // Tally's own records, requests and answers alike, have exactly the members they declare.
        // (Also where the schema is first met as a member's: the component is that same schema.)
        if (clrType.Namespace?.StartsWith("Tally.Server", StringComparison.Ordinal) == true
            && schema.Properties is { Count: > 0 } && schema.AnyOf is null)
        {
            schema.AdditionalPropertiesAllowed = false;
        }

        if (clrType == typeof(Alerts.AlertRequest))
        {
            // A positional record reads as "every member required"; the parser needs only the webhook (and one of
            // counter/prefix, one of above/below, which JSON Schema's required cannot say).
            schema.Required = new HashSet<string> { "webhook" };
        }

        var example = clrType switch
        {
            var t when t == typeof(CounterResponse) => CounterExample,
            var t when t == typeof(CounterPageResponse) => $$"""{"items":[{{CounterExample}}],"next":"downloads:v2"}""",
            var t when t == typeof(CounterTopResponse) => $$"""{"items":[{{CounterExample}}]}""",
            var t when t == typeof(AmountRequest) => """{"by": 5}""",
            var t when t == typeof(CounterFieldsRequest) => """{"value": 0, "min": 0, "max": 1000}""",
            var t when t == typeof(BatchRequest) =>
                """{"atomic": false, "ops": [{"op": "increment", "name": "a", "by": 2}, {"op": "set", "name": "c", "value": 5}, {"op": "get", "name": "b"}]}""",
            var t when t == typeof(BatchResponse) => $$"""{"results": [{"status": 200, "counter": {{CounterExample}}}]}""",
            var t when t == typeof(CreateApiKeyRequest) => """{"name": "ci", "scopes": ["read", "write"], "prefix": "shop:"}""",
            var t when t == typeof(HistoryResponse) => HistoryExample,
            _ => null,
        };
        if (example is not null)
        {
            schema.Examples = [OpenApiSetup.Json(example)];
        }
        return Task.CompletedTask;
    }
}
