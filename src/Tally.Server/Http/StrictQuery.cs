namespace Tally.Server.Http;

/// <summary>The query parameters an endpoint takes (<see cref="StrictQuery.AllowQuery"/>); without it, none.</summary>
internal sealed class AllowedQuery(params string[] names)
{
    public IReadOnlyList<string> Names { get; } = names;
}

/// <summary>
/// Unknown query parameters are a <c>400 invalid_query</c> naming them, so a typo such as <c>?limt=5</c>
/// is never silently ignored. Set once on a group or endpoint; each endpoint lists what it takes.
/// </summary>
internal static class StrictQuery
{
    /// <summary>Refuses every query parameter an endpoint has not declared with <see cref="AllowQuery"/>.</summary>
    public static TBuilder RefuseUnknownQuery<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder =>
        builder.AddEndpointFilter((context, next) =>
            ProblemFor(context.HttpContext) is { } problem ? ValueTask.FromResult<object?>(problem) : next(context));

    public static RouteHandlerBuilder AllowQuery(this RouteHandlerBuilder route, params string[] names) =>
        route.WithMetadata(new AllowedQuery(names));

    /// <summary>The problem for the first undeclared parameter, or null.</summary>
    public static IResult? ProblemFor(HttpContext context)
    {
        var query = context.Request.Query;
        if (query.Count == 0)
        {
            return null;
        }
        // Case-insensitive, as the framework binds parameters.
        var allowed = context.GetEndpoint()?.Metadata.GetMetadata<AllowedQuery>()?.Names ?? [];
        foreach (var (name, _) in query)
        {
            if (!allowed.Contains(name, StringComparer.OrdinalIgnoreCase))
            {
                var shown = name.Length <= 60 ? name : name[..60] + "…";
                return Problems.Create(Problems.InvalidQuery, allowed.Count == 0
                    ? $"Unknown query parameter '{shown}': this endpoint takes none."
                    : $"Unknown query parameter '{shown}': this endpoint takes {string.Join(", ", allowed)}.");
            }
        }
        return null;
    }
}
