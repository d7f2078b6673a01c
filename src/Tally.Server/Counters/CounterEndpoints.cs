using System.Globalization;
using Microsoft.AspNetCore.Http.HttpResults;
using Tally.Server.Http;
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
        var group = routes.MapGroup("/counters").WithTags("Counters");

        group.MapGet("/", ListCounters).WithName("ListCounters").WithSummary("List counters in name order");
        group.MapGet("/{name}", GetCounter).WithName("GetCounter").WithSummary("Read a counter");
        group.MapPut("/{name}", PutCounter).WithName("PutCounter").WithSummary("Create a counter, or update its fields");
        group.MapDelete("/{name}", DeleteCounter).WithName("DeleteCounter").WithSummary("Delete a counter");
        group.MapPost("/{name}/increment", (string name, HttpRequest request, CommitPipeline pipeline) =>
            AddAsync(name, request, pipeline, CounterCommand.Increment))
            .WithName("IncrementCounter").WithSummary("Add to a counter (created at 0 if missing)");
        group.MapPost("/{name}/decrement", (string name, HttpRequest request, CommitPipeline pipeline) =>
            AddAsync(name, request, pipeline, CounterCommand.Decrement))
            .WithName("DecrementCounter").WithSummary("Subtract from a counter (created at 0 if missing)");
        group.MapPost("/{name}/reset", ResetCounter).WithName("ResetCounter").WithSummary("Set a counter back to its initial value");
        return routes;
    }

    private static async Task<Results<Ok<CounterResponse>, ProblemHttpResult>> GetCounter(
        string name, HttpContext context, ICounterStore store)
    {
        if (!CounterName.IsValid(name))
        {
            return InvalidName(name);
        }
        var counter = await store.GetAsync(name, context.RequestAborted);
        return counter is null
            ? Problems.Create(ErrorCodes.CounterNotFound, $"Counter '{name}' does not exist.")
            : Ok(context, counter);
    }

    private static async Task<Results<Ok<CounterResponse>, Created<CounterResponse>, ProblemHttpResult>> PutCounter(
        string name, HttpContext context, CommitPipeline pipeline)
    {
        if (!CounterName.IsValid(name))
        {
            return InvalidName(name);
        }
        if (RequestParsing.ParsePrecondition(context.Request, out var precondition) is ProblemHttpResult badHeader)
        {
            return badHeader;
        }
        var (body, bodyProblem) = await RequestBody.ReadJsonAsync(context.Request);
        if (bodyProblem is ProblemHttpResult badBody)
        {
            return badBody;
        }
        if (RequestParsing.ParseFields(body, out var fields) is ProblemHttpResult badFields)
        {
            return badFields;
        }

        var result = await pipeline.SubmitAsync(CounterCommand.Put(name, fields, precondition));
        if (result.Status == CommandStatus.Created)
        {
            SetETag(context, result.Counter!);
            return TypedResults.Created($"/counters/{name}", CounterResponse.From(result.Counter!));
        }
        return result.Error is { } error ? Failure(context, error) : Ok(context, result.Counter!);
    }

    private static async Task<Results<Ok<CounterResponse>, ProblemHttpResult>> AddAsync(
        string name, HttpRequest request, CommitPipeline pipeline, Func<string, long, Precondition, CounterCommand> command)
    {
        if (!CounterName.IsValid(name))
        {
            return InvalidName(name);
        }
        if (RequestParsing.ParsePrecondition(request, out var precondition) is ProblemHttpResult badHeader)
        {
            return badHeader;
        }
        var (body, bodyProblem) = await RequestBody.ReadJsonAsync(request);
        if (bodyProblem is ProblemHttpResult badBody)
        {
            return badBody;
        }
        if (RequestParsing.ParseAmount(request.Query["by"], body, out var amount) is ProblemHttpResult badAmount)
        {
            return badAmount;
        }
        var result = await pipeline.SubmitAsync(command(name, amount, precondition));
        return ToResult(request.HttpContext, result);
    }

    private static async Task<Results<Ok<CounterResponse>, ProblemHttpResult>> ResetCounter(
        string name, HttpContext context, CommitPipeline pipeline)
    {
        if (!CounterName.IsValid(name))
        {
            return InvalidName(name);
        }
        if (RequestParsing.ParsePrecondition(context.Request, out var precondition) is ProblemHttpResult badHeader)
        {
            return badHeader;
        }
        var result = await pipeline.SubmitAsync(CounterCommand.Reset(name, precondition));
        return ToResult(context, result);
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> DeleteCounter(
        string name, HttpContext context, CommitPipeline pipeline)
    {
        if (!CounterName.IsValid(name))
        {
            return InvalidName(name);
        }
        if (RequestParsing.ParsePrecondition(context.Request, out var precondition) is ProblemHttpResult badHeader)
        {
            return badHeader;
        }
        var result = await pipeline.SubmitAsync(CounterCommand.Delete(name, precondition));
        return result.Error is { } error ? Failure(context, error) : TypedResults.NoContent();
    }

    private static async Task<Results<Ok<CounterPageResponse>, ProblemHttpResult>> ListCounters(
        HttpContext context, ICounterStore store, string? prefix, string? after, string? limit)
    {
        prefix ??= string.Empty;
        if (!CounterName.IsValidPrefix(prefix))
        {
            return Problems.Create(Problems.InvalidQuery, "'prefix' must be the beginning of a valid counter name.");
        }
        if (after is not null && !CounterName.IsValid(after))
        {
            return Problems.Create(Problems.InvalidQuery, "'after' must be a counter name (the 'next' of the previous page).");
        }
        var pageSize = DefaultPageSize;
        if (limit is not null && (!int.TryParse(limit, NumberStyles.None, CultureInfo.InvariantCulture, out pageSize) || pageSize is < 1 or > MaxPageSize))
        {
            return Problems.Create(Problems.InvalidQuery, $"'limit' must be an integer from 1 to {MaxPageSize}.");
        }

        // One extra tells whether another page follows, so the last page says next: null.
        var counters = await store.ListAsync(prefix, after, pageSize + 1, context.RequestAborted);
        var items = counters.Take(pageSize).Select(CounterResponse.From).ToList();
        var next = counters.Count > pageSize ? items[^1].Name : null;
        return TypedResults.Ok(new CounterPageResponse(items, next));
    }

    private static Results<Ok<CounterResponse>, ProblemHttpResult> ToResult(HttpContext context, CommandResult result) =>
        result.Error is { } error ? Failure(context, error) : Ok(context, result.Counter!);

    private static ProblemHttpResult Failure(HttpContext context, CounterError error)
    {
        if (error.Code == ErrorCodes.StoreUnavailable)
        {
            context.Response.Headers.RetryAfter = "1";
        }
        return Problems.From(error);
    }

    private static Ok<CounterResponse> Ok(HttpContext context, Counter counter)
    {
        SetETag(context, counter);
        return TypedResults.Ok(CounterResponse.From(counter));
    }

    private static void SetETag(HttpContext context, Counter counter) =>
        context.Response.Headers.ETag = $"\"{counter.Version.ToString(CultureInfo.InvariantCulture)}\"";

    private static ProblemHttpResult InvalidName(string name) =>
        Problems.Create(ErrorCodes.InvalidName, $"'{Truncate(name)}' is not a valid counter name: use ^[A-Za-z0-9][A-Za-z0-9._:-]{{0,127}}$.");

    private static string Truncate(string text) => text.Length <= 140 ? text : text[..140] + "…";
}
