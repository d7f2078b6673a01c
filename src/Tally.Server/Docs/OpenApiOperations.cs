using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;
using Tally.Server.Alerts;
using Tally.Server.Counters;
using Tally.Server.Http;

namespace Tally.Server.Docs;

/// <summary>
/// Operation transformer: what an endpoint reads or answers outside its handler's signature — the security it
/// requires, the query parameters and headers it parses by hand, and every problem status it may answer.
/// </summary>
internal static class OpenApiOperations
{
    public const string BearerScheme = "bearer";
    public const string ApiKeyScheme = "apiKey";

    /// <summary>Operations that change a counter: If-Match, Idempotency-Key.</summary>
    private static readonly HashSet<string> CounterChanges = ["PutCounter", "IncrementCounter", "DecrementCounter", "ResetCounter", "DeleteCounter"];

    /// <summary>Operations that answer a counter, with its ETag.</summary>
    private static readonly HashSet<string> CounterAnswers = ["GetCounter", "PutCounter", "IncrementCounter", "DecrementCounter", "ResetCounter"];

    public static async Task TransformAsync(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken cancellationToken)
    {
        var document = context.Document!;
        var metadata = context.Description.ActionDescriptor.EndpointMetadata;
        var id = operation.OperationId ?? string.Empty;
        operation.Parameters ??= [];
        operation.Responses ??= [];

        if (metadata.OfType<DocumentedBody>().LastOrDefault() is { } body)
        {
            var name = body.Type.Name;
            document.AddComponent(name, await context.GetOrCreateSchemaAsync(body.Type, null, cancellationToken));
            operation.RequestBody = new OpenApiRequestBody
            {
                Required = true,
                Description = body.ContentType == "application/x-ndjson" ? "One JSON object per line." : null,
                Content = new Dictionary<string, OpenApiMediaType> { [body.ContentType] = new() { Schema = new OpenApiSchemaReference(name, document) } },
            };
        }

        // Every path parameter called name is a counter name.
        foreach (var parameter in operation.Parameters.OfType<OpenApiParameter>())
        {
            if (parameter is { In: ParameterLocation.Path, Name: "name" })
            {
                parameter.Schema = OpenApiSetup.Text("A counter name.", CounterName.Pattern);
            }
        }

        // Query parameters the handler reads itself (AllowQuery), with the rules it applies.
        if (metadata.OfType<AllowedQuery>().LastOrDefault() is { } allowed)
        {
            foreach (var name in allowed.Names)
            {
                var parameter = operation.Parameters.OfType<OpenApiParameter>().FirstOrDefault(p => p.In == ParameterLocation.Query && p.Name == name);
                if (parameter is null)
                {
                    parameter = new OpenApiParameter { Name = name, In = ParameterLocation.Query };
                    operation.Parameters.Add(parameter);
                }
                QueryRule(id, name, parameter);
            }
        }

        if (CounterChanges.Contains(id))
        {
            operation.Parameters.Add(Header("If-Match",
                "Apply the change only at this version: one or more ETags such as \"17\" (weak tags compare equal), or *. Otherwise 412 version_mismatch."));
        }
        if (id is "GetCounter")
        {
            operation.Parameters.Add(Header("If-None-Match", "ETags such as \"17\", or *: a match answers 304 Not Modified without a body."));
        }
        if (id is "PutCounter")
        {
            operation.Parameters.Add(Header("If-None-Match", "Only *: create the counter only if it does not exist (else 412 counter_exists).", pattern: "^\\s*\\*\\s*$"));
        }
        var idempotent = CounterChanges.Contains(id) || id is "Batch";
        if (idempotent)
        {
            operation.Parameters.Add(Header("Idempotency-Key",
                "1 to 255 printable ASCII characters, bare or as a quoted string. A repeat within the retention window answers the first response, with Idempotent-Replayed: true.",
                pattern: "^[\\x21-\\x7E]([\\x20-\\x7E]{0,253}[\\x21-\\x7E])?$"));
        }
        if (id is "CounterEvents" or "PrefixEvents")
        {
            operation.Parameters.Add(Header("Last-Event-ID", "Resume after this event id, if it is still recent; otherwise the stream starts with the current state."));
        }

        foreach (var (status, response) in operation.Responses)
        {
            if (response is OpenApiResponse concrete && status.StartsWith('2') && status != "204")
            {
                if (CounterAnswers.Contains(id))
                {
                    concrete.Headers ??= new Dictionary<string, IOpenApiHeader>();
                    concrete.Headers["ETag"] = ResponseHeader("The counter's version, as \"<version>\".");
                }
                if (idempotent)
                {
                    concrete.Headers ??= new Dictionary<string, IOpenApiHeader>();
                    concrete.Headers["Idempotent-Replayed"] = ResponseHeader("true when this is the stored answer to an earlier request with the same Idempotency-Key.");
                }
            }
        }
        if (id is "GetCounter" && operation.Responses.TryGetValue("304", out var notModified) && notModified is OpenApiResponse concrete304)
        {
            concrete304.Description = "Not modified: the counter's version matches If-None-Match.";
            concrete304.Headers = new Dictionary<string, IOpenApiHeader> { ["ETag"] = ResponseHeader("The counter's version, as \"<version>\".") };
        }

        // Problems the pipeline answers around the handler.
        var statuses = operation.Responses.Keys.Where(key => key[0] is '4' or '5').Select(int.Parse).ToHashSet();
        var secured = metadata.OfType<IAuthorizeData>().Any() && !metadata.OfType<IAllowAnonymous>().Any();
        if (secured)
        {
            operation.Security =
            [
                new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(BearerScheme, document)] = [] },
                new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(ApiKeyScheme, document)] = [] },
            ];
            statuses.UnionWith([401, 403, 503]);
        }
        else
        {
            operation.Security = [new OpenApiSecurityRequirement()]; // open: no key needed
        }
        statuses.Add(429); // the rate limit: every operation but the probes and /metrics, which are not here
        if (metadata.OfType<RefusesUnknownQuery>().Any() || operation.Parameters.Count > 0)
        {
            statuses.Add(400);
        }
        if (operation.RequestBody is not null || id is "ResetCounter" or "DeleteCounter")
        {
            statuses.UnionWith([400, 408, 413, 415]);
        }
        if (idempotent)
        {
            statuses.UnionWith([409, 422]);
        }
        foreach (var status in statuses)
        {
            operation.Responses[status.ToString(System.Globalization.CultureInfo.InvariantCulture)] = OpenApiDocumentParts.ProblemResponse(status, document);
        }

        if (id is "Backup" && operation.Responses["200"] is OpenApiResponse backup)
        {
            backup.Description = "A consistent copy of the SQLite data file.";
            backup.Content = new Dictionary<string, OpenApiMediaType>
            {
                ["application/vnd.sqlite3"] = new() { Schema = new OpenApiSchema { Type = JsonSchemaType.String, Format = "binary" } },
            };
        }
        if (id is "ListCounters" && operation.Responses["200"] is OpenApiResponse { Content: { } listed } && listed.TryGetValue("application/json", out var page))
        {
            // Two shapes for one status: a page in name order ({items, next}) or the top by value ({items}).
            var top = await context.GetOrCreateSchemaAsync(typeof(CounterTopResponse), null, cancellationToken);
            document.AddComponent(nameof(CounterTopResponse), top);
            page.Schema = new OpenApiSchema { OneOf = [page.Schema!, new OpenApiSchemaReference(nameof(CounterTopResponse), document)] };
        }
    }

    private static void QueryRule(string id, string name, OpenApiParameter parameter)
    {
        switch (name)
        {
            case "by":
                parameter.Description = "The amount, instead of a body (not both); default 1.";
                parameter.Schema = OpenApiSetup.Integer(1, long.MaxValue);
                break;
            case "limit" when id is "ListCounters":
                parameter.Description = "Page size; default 100 (order=value_desc: how many of the top).";
                parameter.Schema = OpenApiSetup.Integer(1, CounterEndpoints.MaxPageSize);
                break;
            case "limit":
                parameter.Description = "How many of the latest attempts; default 100.";
                parameter.Schema = OpenApiSetup.Integer(1, AlertEndpoints.MaxDeliveries);
                break;
            case "order":
                parameter.Description = "name (the default; pages with after/next) or value_desc (the top counters, one page).";
                parameter.Schema = new OpenApiSchema { Type = JsonSchemaType.String, Enum = [OpenApiSetup.Json("\"name\""), OpenApiSetup.Json("\"value_desc\"")] };
                break;
            case "after":
                parameter.Description = "The 'next' of the previous page: list names after this one.";
                parameter.Schema = OpenApiSetup.Text(pattern: CounterName.Pattern);
                break;
            case "prefix":
                parameter.Description = "Only counters whose names start with this (a key with a prefix lists inside it).";
                parameter.Schema = OpenApiSetup.Text(pattern: CounterName.PrefixPattern);
                break;
        }
    }

    private static OpenApiParameter Header(string name, string description, string? pattern = null) => new()
    {
        Name = name,
        In = ParameterLocation.Header,
        Description = description,
        Schema = OpenApiSetup.Text(pattern: pattern),
    };

    internal static OpenApiHeader ResponseHeader(string description) => new() { Description = description, Schema = OpenApiSetup.Text() };
}

/// <summary>
/// A request body for the document only, for an endpoint that reads its body by hand. Unlike <c>Accepts</c>, it adds
/// no content-type matching to routing, which would answer 415 before authorization and change what callers see.
/// </summary>
internal sealed record DocumentedBody(Type Type, string ContentType);
