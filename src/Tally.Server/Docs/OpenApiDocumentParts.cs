using System.Buffers;
using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.OpenApi;
using Tally.Server.Counters;
using Tally.Server.Http;
using Tally.Server.Pipeline;

namespace Tally.Server.Docs;

/// <summary>
/// Document transformer: the title, a fixed relative server (never the request's Host header), the two security
/// schemes, the one problem schema with every code of the catalog, and the probes the framework does not describe.
/// </summary>
internal static class OpenApiDocumentParts
{
    public const string ProblemSchema = "ProblemDetails";

    private static readonly Dictionary<string, string> TagDescriptions = new()
    {
        ["Counters"] = "Counters: read, create, change, delete, list; batches of operations.",
        ["History"] = "A counter's activity in time buckets.",
        ["Events"] = "Live changes as Server-Sent Events.",
        ["Alerts"] = "Threshold alerts delivered to webhooks.",
        ["Admin"] = "API keys, backup, export and import (admin scope).",
        ["Operations"] = "Probes and metrics, open without a key.",
        ["Health"] = "Liveness and readiness probes, open without a key.",
    };

    public static Task TransformAsync(OpenApiDocument document, OpenApiDocumentTransformerContext context, CancellationToken cancellationToken)
    {
        document.Info.Title = "Tally";
        document.Info.Description = "Exact, durable counters over HTTP. Every error is application/problem+json with a stable `code` (see the ProblemDetails schema).";
        document.Info.License = new OpenApiLicense { Name = "MIT", Identifier = "MIT" };
        // The framework fills servers from the request's Host header: an answer anyone could steer. Paths are relative to the document.
        document.Servers = [new OpenApiServer { Url = "/", Description = "The server that serves this document" }];

        document.Components ??= new OpenApiComponents();
        document.Components.SecuritySchemes = new Dictionary<string, IOpenApiSecurityScheme>
        {
            [OpenApiOperations.BearerScheme] = new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.Http,
                Scheme = "bearer",
                BearerFormat = "API key or JWT",
                Description = "Authorization: Bearer <API key or JWT>. A key has scopes read, increment, write or admin and a counter-name prefix.",
            },
            [OpenApiOperations.ApiKeyScheme] = new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.ApiKey,
                Name = "X-Api-Key",
                In = ParameterLocation.Header,
                Description = "The same API key in the X-Api-Key header.",
            },
        };
        // Secured unless an operation says otherwise (the probes and /metrics: [{}], no key needed).
        document.Security =
        [
            new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(OpenApiOperations.BearerScheme, document)] = [] },
            new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(OpenApiOperations.ApiKeyScheme, document)] = [] },
        ];
        document.Components.Schemas ??= new Dictionary<string, IOpenApiSchema>();
        document.Components.Schemas[ProblemSchema] = Problem();

        document.Tags ??= new HashSet<OpenApiTag>();
        foreach (var tag in document.Tags)
        {
            if (tag.Name is { } name && TagDescriptions.TryGetValue(name, out var description))
            {
                tag.Description = description;
            }
        }

        document.Paths["/healthz"] = Probe(document, "Liveness: the process answers", "Healthy", ready: false);
        document.Paths["/readyz"] = Probe(document, "Readiness: the store answers", "Healthy", ready: true);
        if (document.Paths.TryGetValue("/metrics", out var metrics) && metrics.Operations?.GetValueOrDefault(HttpMethod.Get) is { } scrape)
        {
            scrape.Description = "Open without a key and never rate limited.";
            scrape.Responses = new OpenApiResponses
            {
                ["200"] = new OpenApiResponse
                {
                    Description = "Prometheus text exposition format 0.0.4.",
                    Content = new Dictionary<string, OpenApiMediaType> { ["text/plain"] = new() { Schema = OpenApiSetup.Text() } },
                },
            };
        }
        return Task.CompletedTask;
    }

    /// <summary>A problem response: the one problem schema, and the codes of the catalog that have this status.</summary>
    public static OpenApiResponse ProblemResponse(int status, OpenApiDocument document)
    {
        var codes = Problems.Catalog.Values.Where(type => type.Status == status).Select(type => type.Code).Order(StringComparer.Ordinal);
        var response = new OpenApiResponse
        {
            Description = $"{ReasonPhrases.GetReasonPhrase(status)}: a problem with code {string.Join(", ", codes)}.",
            Content = new Dictionary<string, OpenApiMediaType>
            {
                ["application/problem+json"] = new() { Schema = new OpenApiSchemaReference(ProblemSchema, document) },
            },
        };
        switch (status)
        {
            case StatusCodes.Status401Unauthorized:
                response.Headers = new Dictionary<string, IOpenApiHeader>
                {
                    ["WWW-Authenticate"] = OpenApiOperations.ResponseHeader("Bearer: send an API key (or a JWT) as a bearer token."),
                };
                break;
            case StatusCodes.Status429TooManyRequests or StatusCodes.Status503ServiceUnavailable:
                response.Headers = new Dictionary<string, IOpenApiHeader>
                {
                    ["Retry-After"] = OpenApiOperations.ResponseHeader("Seconds to wait before retrying."),
                };
                break;
        }
        return response;
    }

    /// <summary>RFC 9457 with Tally's members: <c>code</c> from the catalog, and the documented extensions.</summary>
    private static OpenApiSchema Problem()
    {
        var nullableInteger = new OpenApiSchema { Type = JsonSchemaType.Integer | JsonSchemaType.Null, Format = "int64" };
        return new OpenApiSchema
        {
            Type = JsonSchemaType.Object,
            Description = "An error (RFC 9457). `code` is stable; `detail` is for a person.",
            Required = new HashSet<string> { "type", "title", "status", "detail", "code" },
            Properties = new Dictionary<string, IOpenApiSchema>
            {
                ["type"] = OpenApiSetup.Text("urn:tally:problem:<code>", "^urn:tally:problem:[a-z_]+$"),
                ["title"] = OpenApiSetup.Text("The code's title, the same for every occurrence."),
                ["status"] = new OpenApiSchema { Type = JsonSchemaType.Integer, Minimum = "400", Maximum = "599" },
                ["detail"] = OpenApiSetup.Text("What happened, in plain words."),
                ["code"] = new OpenApiSchema
                {
                    Type = JsonSchemaType.String,
                    Description = "The stable error code (docs/api.md lists them).",
                    Enum = [.. Problems.Catalog.Keys.Order(StringComparer.Ordinal).Select(code => OpenApiSetup.Json($"\"{code}\""))],
                },
                ["index"] = new OpenApiSchema { Type = JsonSchemaType.Integer, Minimum = "0", Description = "Batch: the operation that failed." },
                ["value"] = new OpenApiSchema { Type = JsonSchemaType.Integer, Format = "int64", Description = "out_of_range: the counter's value (to a caller that may read it)." },
                ["min"] = nullableInteger,
                ["max"] = nullableInteger,
                ["version"] = new OpenApiSchema { Type = JsonSchemaType.Integer, Format = "int64", Description = "version_mismatch: the counter's version." },
                ["error"] = new OpenApiSchemaReference(ProblemSchema),
            },
            AdditionalPropertiesAllowed = false,
            Examples = [ProblemExample()],
        };
    }

    /// <summary>
    /// The server's own answer to an increment past a bound, rendered as it would be sent: the catalog's title and
    /// status, <see cref="CounterFailures"/>' words, so the example cannot drift from what a client gets.
    /// </summary>
    internal static JsonNode ProblemExample()
    {
        var counter = new Counter("downloads:v2", Value: 998, Initial: 0, Min: null, Max: 1000, Version: 17, CreatedAt: 0, UpdatedAt: 0);
        var body = new ArrayBufferWriter<byte>();
        ResponseRenderer.Write(new RequestOutcome(CounterFailures.OutOfRange(counter.Name, 5, negate: false, counter)), body, mayRead: true);
        return JsonNode.Parse(body.WrittenSpan)!;
    }

    private static OpenApiPathItem Probe(OpenApiDocument document, string summary, string healthy, bool ready)
    {
        var responses = new OpenApiResponses
        {
            ["200"] = new OpenApiResponse
            {
                Description = healthy,
                Content = new Dictionary<string, OpenApiMediaType> { ["text/plain"] = new() { Schema = OpenApiSetup.Text(), Example = OpenApiSetup.Json("\"Healthy\"") } },
            },
        };
        if (ready)
        {
            responses["503"] = new OpenApiResponse
            {
                Description = "The store does not answer.",
                Content = new Dictionary<string, OpenApiMediaType> { ["text/plain"] = new() { Schema = OpenApiSetup.Text(), Example = OpenApiSetup.Json("\"Unhealthy\"") } },
            };
        }
        var operation = new OpenApiOperation
        {
            OperationId = ready ? "Ready" : "Live",
            Summary = summary,
            Description = "Open without a key and never rate limited.",
            Tags = new HashSet<OpenApiTagReference> { new("Health", document) },
            Responses = responses,
            Security = [new OpenApiSecurityRequirement()], // open: no key needed
        };
        return new OpenApiPathItem { Operations = new Dictionary<HttpMethod, OpenApiOperation> { [HttpMethod.Get] = operation } };
    }
}
