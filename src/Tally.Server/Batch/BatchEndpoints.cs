using Tally.Server.Auth;
using Tally.Server.Docs;
using Tally.Server.Http;
using Tally.Server.Pipeline;

namespace Tally.Server.Batch;

/// <summary><c>POST /batch</c>: up to 1,000 operations in one request and one commit.</summary>
internal static class BatchEndpoints
{
    public static IEndpointRouteBuilder MapBatch(this IEndpointRouteBuilder routes)
    {
        routes.MapPost("/batch", ApplyBatch)
            .WithTags("Counters").WithName("Batch").WithSummary("Apply up to 1,000 operations in order, in one commit")
            .RequireAuthorization(AuthPolicies.AnyKey) // and, once parsed, every operation's scope and prefix (BatchAccess)
            .RefuseUnknownQuery()
            .Accepts<BatchRequest>("application/json").Produces<BatchResponse>(StatusCodes.Status200OK)
            .ProducesProblem(StatusCodes.Status400BadRequest).ProducesProblem(StatusCodes.Status409Conflict);
        return routes;
    }

    private static async Task<IResult> ApplyBatch(HttpContext context, CommitPipeline pipeline)
    {
        var (body, bodyProblem) = await RequestBody.ReadJsonAsync(context.Request);
        if (bodyProblem is not null)
        {
            return bodyProblem;
        }
        if (BatchParsing.Parse(body, out var batch) is { } problem)
        {
            return problem;
        }
        if (await BatchAccess.AuthorizeAsync(context, batch) is { } forbidden)
        {
            return forbidden;
        }
        return await Submission.SendAsync(context, pipeline, batch, body);
    }
}
