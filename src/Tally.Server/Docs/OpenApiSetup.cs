using System.Text.Json.Nodes;
using Microsoft.OpenApi;

namespace Tally.Server.Docs;

/// <summary>
/// The OpenAPI document at <c>/openapi/v1.json</c> and a page to read it at <c>/docs</c>. The schemas come from the
/// types the server binds and answers with (<see cref="RequestJsonContext"/>, the response records); the transformers
/// add what the framework cannot see: the security schemes, the headers and query parameters read by hand, the
/// problems every operation may answer, the probes, and examples that obey their own schemas.
/// </summary>
internal static class OpenApiSetup
{
    public const string DocumentPath = "/openapi/v1.json";

    public static IServiceCollection AddTallyOpenApi(this IServiceCollection services)
    {
        services.AddOpenApi("v1", options =>
        {
            options.AddSchemaTransformer(OpenApiSchemas.TransformAsync);
            options.AddOperationTransformer(OpenApiOperations.TransformAsync);
            options.AddDocumentTransformer(OpenApiDocumentParts.TransformAsync);
        });
        return services;
    }

    public static WebApplication MapTallyDocs(this WebApplication app)
    {
        app.MapOpenApi();
        // In a branch for /docs only: the page's middleware is async and matches paths with a regex, on every request otherwise.
        app.UseWhen(context => context.Request.Path.StartsWithSegments("/docs"), docs => docs.UseSwaggerUI(options =>
        {
            options.RoutePrefix = "docs";
            options.SwaggerEndpoint(DocumentPath, "Tally v1");
            options.DocumentTitle = "Tally API";
            // No EnablePersistAuthorization: it would keep the pasted key (often the admin key) in the browser's
            // localStorage on this origin, across restarts. "Authorize" holds it for the page's lifetime only.
            options.EnableTryItOutByDefault();
        }));
        return app;
    }

    /// <summary>Documents a counter response and the problems an endpoint may answer.</summary>
    public static RouteHandlerBuilder ProducesCounter(this RouteHandlerBuilder route, int status, params int[] problems)
    {
        route.Produces<Counters.CounterResponse>(status);
        foreach (var problem in problems)
        {
            route.ProducesProblem(problem);
        }
        return route;
    }

    internal static JsonNode Json(string text) => JsonNode.Parse(text)!;

    internal static OpenApiSchema Integer(long minimum, long maximum, string? description = null) => new()
    {
        Type = JsonSchemaType.Integer,
        Format = "int64",
        Minimum = minimum.ToString(System.Globalization.CultureInfo.InvariantCulture),
        Maximum = maximum.ToString(System.Globalization.CultureInfo.InvariantCulture),
        Description = description,
    };

    internal static OpenApiSchema Text(string? description = null, string? pattern = null) => new()
    {
        Type = JsonSchemaType.String,
        Description = description,
        Pattern = pattern,
    };
}
