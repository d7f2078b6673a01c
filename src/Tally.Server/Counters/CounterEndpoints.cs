using Microsoft.AspNetCore.Http.HttpResults;
using Tally.Server.Auth;
using Tally.Server.Docs;
using Tally.Server.Http;
using Tally.Server.Observability;
using Tally.Server.Pipeline;
using Tally.Server.Storage;

namespace Tally.Server.Counters;

/// <summary>The counter API: <c>/counters</c> and <c>/counters/{name}</c>.</summary>
internal static class CounterEndpoints
{
    public const int DefaultPageSize = 100;
    public const int MaxPageSize = 1000;

    public static IEndpointRouteBuilder MapCounters(this IEndpointRouteBuilder routes)
    {
        var group = routes.MapGroup("/counters").WithTags("Counters").RefuseUnknownQuery();

        group.MapGet("/", ListCounters).WithName("ListCounters")
            .WithSummary("List counters in name order, or the top by value (order=value_desc)").RequireAuthorization(AuthPolicies.Read)
            .AllowQuery("prefix", "after", "limit", "order").Produces<CounterPageResponse>(StatusCodes.Status200OK)
            .ProducesProblem(StatusCodes.Status400BadRequest);
        group.MapGet("/{name}", GetCounter).WithName("GetCounter").WithSummary("Read a counter").RequireAuthorization(AuthPolicies.Read)
            .ProducesCounter(StatusCodes.Status200OK, 400, 404).Produces(StatusCodes.Status304NotModified);
        group.MapPut("/{name}", PutCounter).WithName("PutCounter").WithSummary("Create a counter, or update its fields").RequireAuthorization(AuthPolicies.Write)
            .Accepts<CounterFieldsRequest>(isOptional: true, "application/json")
            .ProducesCounter(StatusCodes.Status200OK, 400, 412, 415, 422)
            .Produces<CounterResponse>(StatusCodes.Status201Created);
        group.MapDelete("/{name}", DeleteCounter).WithName("DeleteCounter").WithSummary("Delete a counter").RequireAuthorization(AuthPolicies.Write)
            .Produces(StatusCodes.Status204NoContent).ProducesProblem(404).ProducesProblem(412);
        group.MapPost("/{name}/increment", (string name, HttpRequest request, CommitPipeline pipeline) =>
            AddAsync(name, request, pipeline, CounterCommand.Increment))
            .WithName("IncrementCounter").WithSummary("Add to a counter (created at 0 if missing)").RequireAuthorization(AuthPolicies.Increment).AllowQuery("by")
            .Accepts<AmountRequest>(isOptional: true, "application/json").ProducesCounter(StatusCodes.Status200OK, 400, 409, 412, 415, 422);
        group.MapPost("/{name}/decrement", (string name, HttpRequest request, CommitPipeline pipeline) =>
            AddAsync(name, request, pipeline, CounterCommand.Decrement))
            .WithName("DecrementCounter").WithSummary("Subtract from a counter (created at 0 if missing)").RequireAuthorization(AuthPolicies.Write).AllowQuery("by")
            .Accepts<AmountRequest>(isOptional: true, "application/json").ProducesCounter(StatusCodes.Status200OK, 400, 409, 412, 415, 422);
        group.MapPost("/{name}/reset", ResetCounter).WithName("ResetCounter").WithSummary("Set a counter back to its initial value").RequireAuthorization(AuthPolicies.Write)
            .ProducesCounter(StatusCodes.Status200OK, 400, 404, 412, 422);
        return routes;
    }

    private static async Task<IResult> GetCounter(string name, HttpContext context, ICounterStore store, TallyMetrics metrics)
    {
        if (!CounterName.IsValid(name))
        {
            return InvalidName(name);
        }
        var counter = await store.GetAsync(name, context.RequestAborted);
        if (counter is not null && RequestParsing.IfNoneMatchHits(context.Request, counter.Version))
        {
            metrics.RecordOperation("get", "ok");
            context.Response.Headers.ETag = ResponseRenderer.ETagOf(counter);
            return TypedResults.StatusCode(StatusCodes.Status304NotModified);
        }
        var result = counter is null
            ? CommandResult.Fail(ErrorCodes.CounterNotFound, $"Counter '{name}' does not exist.")
            : CommandResult.Read(counter);
        metrics.RecordOperation("get", TallyMetrics.OutcomeOf(result));
        return new OutcomeResult(new RequestOutcome(result), mayRead: true);
    }

    private static async Task<IResult> PutCounter(string name, HttpContext context, CommitPipeline pipeline)
    {
        if (!CounterName.IsValid(name))
        {
            return InvalidName(name);
        }
        if (RequestParsing.ParsePrecondition(context.Request, out var precondition) is { } badHeader)
        {
            return badHeader;
        }
        var (body, bodyProblem) = await RequestBody.ReadJsonAsync(context.Request);
        if (bodyProblem is not null)
        {
            return bodyProblem;
        }
        if (RequestParsing.ParseFields(body, out var fields) is { } badFields)
        {
            return badFields;
        }
        return await Submission.SendAsync(context, pipeline, CounterCommand.Put(name, fields, precondition), body, $"/counters/{name}");
    }

    private static async Task<IResult> AddAsync(
        string name, HttpRequest request, CommitPipeline pipeline, Func<string, long, Precondition, CounterCommand> command)
    {
        if (!CounterName.IsValid(name))
        {
            return InvalidName(name);
        }
        if (RequestParsing.ParsePrecondition(request, out var precondition) is { } badHeader)
        {
            return badHeader;
        }
        var (body, bodyProblem) = await RequestBody.ReadJsonAsync(request);
        if (bodyProblem is not null)
        {
            return bodyProblem;
        }
        if (RequestParsing.ParseAmount(request.Query["by"], body, out var amount) is { } badAmount)
        {
            return badAmount;
        }
        if (CounterAccess.CheckAmount(request.HttpContext, amount) is { } tooMuch)
        {
            return tooMuch;
        }
        return await Submission.SendAsync(request.HttpContext, pipeline, command(name, amount, precondition), body);
    }

    private static Task<IResult> ResetCounter(string name, HttpContext context, CommitPipeline pipeline) =>
        SendWithoutBody(name, context, pipeline, CounterCommand.Reset, "reset");

    private static Task<IResult> DeleteCounter(string name, HttpContext context, CommitPipeline pipeline) =>
        SendWithoutBody(name, context, pipeline, CounterCommand.Delete, "DELETE");

    private static async Task<IResult> SendWithoutBody(
        string name, HttpContext context, CommitPipeline pipeline, Func<string, Precondition, CounterCommand> command, string what)
    {
        if (!CounterName.IsValid(name))
        {
            return InvalidName(name);
        }
        if (await RequestBody.RefuseAsync(context.Request,
            $"{what} takes no body; use the If-Match header for a condition. Nothing changed.") is { } hasBody)
        {
            return hasBody;
        }
        if (RequestParsing.ParsePrecondition(context.Request, out var precondition) is { } badHeader)
        {
            return badHeader;
        }
        return await Submission.SendAsync(context, pipeline, command(name, precondition), ReadOnlyMemory<byte>.Empty);
    }

    private static async Task<Results<Ok<CounterPageResponse>, Ok<CounterTopResponse>, ProblemHttpResult>> ListCounters(
        HttpContext context, ICounterStore store, string? prefix, string? after, string? limit, string? order)
    {
        var byValue = order switch
        {
            null or "name" => false,
            "value_desc" => true,
            _ => (bool?)null,
        };
        if (byValue is null)
        {
            return Problems.Create(Problems.InvalidQuery, "'order' must be name (the default) or value_desc.");
        }
        if (byValue == true && after is not null)
        {
            return Problems.Create(Problems.InvalidQuery, "'after' pages through the name order; order=value_desc answers one page of up to 1000 counters.");
        }
        prefix = string.IsNullOrEmpty(prefix) ? Caller.PrefixOf(context.User) : prefix; // a key lists inside its prefix
        if (!CounterName.IsValidPrefix(prefix))
        {
            return Problems.Create(Problems.InvalidQuery, "'prefix' must be the beginning of a valid counter name.");
        }
        if (after is not null && !CounterName.IsValid(after))
        {
            return Problems.Create(Problems.InvalidQuery, "'after' must be a counter name (the 'next' of the previous page).");
        }
        long pageSize = DefaultPageSize;
        if (limit is not null && (!RequestParsing.TryParseDigits(limit, out pageSize) || pageSize is < 1 or > MaxPageSize))
        {
            return Problems.Create(Problems.InvalidQuery, $"'limit' must be an integer from 1 to {MaxPageSize}.");
        }

        if (byValue == true)
        {
            var top = await store.TopAsync(prefix, (int)pageSize, context.RequestAborted);
            return TypedResults.Ok(new CounterTopResponse([.. top.Select(CounterResponse.From)]));
        }

        // One extra tells whether another page follows, so the last page says next: null.
        var counters = await store.ListAsync(prefix, after, (int)pageSize + 1, context.RequestAborted);
        var items = counters.Take((int)pageSize).Select(CounterResponse.From).ToList();
        var next = counters.Count > pageSize ? items[^1].Name : null;
        return TypedResults.Ok(new CounterPageResponse(items, next));
    }

    internal static ProblemHttpResult InvalidName(string name) =>
        Problems.Create(ErrorCodes.InvalidName, $"'{Truncate(name)}' is not a valid counter name: use {CounterName.Pattern}.");

    private static string Truncate(string text) => text.Length <= 140 ? text : text[..140] + "…";
}
