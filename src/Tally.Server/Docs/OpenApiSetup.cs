using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Mvc;
using Tally.Server.Counters;

namespace Tally.Server.Docs;

/// <summary>The OpenAPI document at <c>/openapi/v1.json</c> and a page to read it at <c>/docs</c>.</summary>
internal static class OpenApiSetup
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

    private const string ProblemExample = """
        {"type":"urn:tally:problem:out_of_range","title":"Out of range","status":409,"detail":"Incrementing 'downloads:v2' by 5 would leave its range [-2^63, 1000]; the value stays 998.",
         "code":"out_of_range","value":998,"min":null,"max":1000}
        """;

    public static IServiceCollection AddTallyOpenApi(this IServiceCollection services)
    {
        services.AddOpenApi("v1", options =>
        {
            options.AddDocumentTransformer((document, _, _) =>
            {
                document.Info.Title = "Tally";
                document.Info.Description = "Exact, durable counters over HTTP. Every error is application/problem+json with a stable `code`.";
                // The framework fills servers from the request's Host header: an answer anyone could steer. Paths are relative.
                document.Servers?.Clear();
                return Task.CompletedTask;
            });
            options.AddSchemaTransformer((schema, context, _) =>
            {
                var type = context.JsonTypeInfo.Type;
                var example = type == typeof(CounterResponse) ? JsonNode.Parse(CounterExample)
                    : type == typeof(ProblemDetails) || type == typeof(HttpValidationProblemDetails) ? JsonNode.Parse(ProblemExample)
                    : type == typeof(AmountRequest) ? JsonNode.Parse("""{"by": 5}""")
                    : type == typeof(CounterFieldsRequest) ? JsonNode.Parse("""{"value": 0, "min": 0, "max": 1000}""")
                    : type == typeof(BatchRequest) ? JsonNode.Parse("""{"atomic": false, "ops": [{"op": "increment", "name": "a", "by": 2}, {"op": "get", "name": "b"}]}""")
                    : type == typeof(History.HistoryResponse) ? JsonNode.Parse(HistoryExample)
                    : null;
                if (example is not null)
                {
                    schema.Examples = [example];
                }
                return Task.CompletedTask;
            });
        });
        return services;
    }

    public static WebApplication MapTallyDocs(this WebApplication app)
    {
        app.MapOpenApi();
        app.UseSwaggerUI(options =>
        {
            options.RoutePrefix = "docs";
            options.SwaggerEndpoint("/openapi/v1.json", "Tally v1");
            options.DocumentTitle = "Tally API";
        });
        return app;
    }

    /// <summary>Documents a counter response and the problems an endpoint may answer.</summary>
    public static RouteHandlerBuilder ProducesCounter(this RouteHandlerBuilder route, int status, params int[] problems)
    {
        route.Produces<CounterResponse>(status);
        foreach (var problem in problems)
        {
            route.ProducesProblem(problem);
        }
        return route;
    }
}

/// <summary>For the OpenAPI document: the body of increment and decrement.</summary>
internal sealed record AmountRequest(long By);

/// <summary>For the OpenAPI document: the body of PUT; every member optional, min/max may be null.</summary>
internal sealed record CounterFieldsRequest(long? Value, long? Initial, long? Min, long? Max);

/// <summary>For the OpenAPI document: one operation of a batch.</summary>
internal sealed record BatchOperationRequest(string Op, string Name, long? By, long? Value, long? Initial, long? Min, long? Max, long? IfMatch);

/// <summary>For the OpenAPI document: the body of POST /batch.</summary>
internal sealed record BatchRequest(bool Atomic, IReadOnlyList<BatchOperationRequest> Ops);
