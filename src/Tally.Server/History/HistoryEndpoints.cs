using System.ComponentModel;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;
using Microsoft.OpenApi;
using Tally.Server.Auth;
using Tally.Server.Counters;
using Tally.Server.Http;
using Tally.Server.Storage;

namespace Tally.Server.History;

/// <summary><c>GET /counters/{name}/history</c>: a counter's buckets with activity, as JSON or (with <c>Accept: text/csv</c>) CSV.</summary>
internal static class HistoryEndpoints
{
    public const string CsvMediaType = "text/csv";
    public const string CsvHeader = "start,increments,decrements,sets,value";

    /// <summary>History's JSON types for the HTTP layer.</summary>
    public static IServiceCollection AddTallyHistory(this IServiceCollection services) =>
        services.ConfigureHttpJsonOptions(json => json.SerializerOptions.TypeInfoResolverChain.Insert(0, HistoryJsonContext.Default));

    public static IEndpointRouteBuilder MapHistory(this IEndpointRouteBuilder routes)
    {
        routes.MapGroup("/counters").WithTags("History").RefuseUnknownQuery()
            .MapGet("/{name}/history", GetHistory).WithName("GetCounterHistory")
            .WithSummary("A counter's history: minute, hour or day buckets with activity, as JSON or CSV (Accept: text/csv)")
            .RequireAuthorization(AuthPolicies.Read).AllowQuery("interval", "from", "to")
            .Produces<HistoryResponse>(StatusCodes.Status200OK)
            .AddOpenApiOperationTransformer(DescribeCsv)
            .ProducesProblem(StatusCodes.Status400BadRequest).ProducesProblem(StatusCodes.Status404NotFound);
        return routes;
    }

    /// <summary>The 200 answer as CSV too (a second <c>Produces</c> for 200 would replace the JSON one).</summary>
    private static Task DescribeCsv(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken cancellationToken)
    {
        if (operation.Responses?.TryGetValue("200", out var ok) == true && ok.Content is { } content)
        {
            content[CsvMediaType] = new OpenApiMediaType
            {
                Schema = new OpenApiSchema { Type = JsonSchemaType.String },
                Example = JsonValue.Create($"{CsvHeader}\r\n2026-11-21T22:00:00Z,9,0,1,0\r\n"),
            };
        }
        return Task.CompletedTask;
    }

    private static async Task<IResult> GetHistory(
        string name, HttpContext context, ICounterStore store, TimeProvider clock, IOptions<HistoryOptions> options,
        [Description("minute (the default), hour or day")] string? interval,
        [Description("ISO-8601 time or date (UTC unless it has an offset); default: 60 intervals before 'to'")] string? from,
        [Description("ISO-8601 time or date, exclusive; default: the end of the current interval")] string? to)
    {
        if (!CounterName.IsValid(name))
        {
            return CounterEndpoints.InvalidName(name);
        }
        var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
        if (HistoryQuery.TryParse(context.Request.Query, interval, from, to, now, out var query) is { } badQuery)
        {
            return badQuery;
        }
        if (await store.GetAsync(name, context.RequestAborted) is null)
        {
            return Problems.Create(ErrorCodes.CounterNotFound, $"Counter '{name}' does not exist.");
        }
        // Only what is within the retention (it may not be pruned yet) and not after the current bucket.
        var first = Math.Max(query.From, options.Value.OldestKept(query.Interval, now));
        var end = Math.Min(query.To, HistoryIntervals.StartOf(query.Interval, now) + HistoryIntervals.LengthOf(query.Interval));
        var buckets = first < end ? await store.ReadHistoryAsync(name, query.Interval, first, end, context.RequestAborted) : [];

        context.Response.Headers.Vary = HeaderNames.Accept;
        return WantsCsv(context.Request)
            ? TypedResults.Text(Csv(buckets), "text/csv; charset=utf-8")
            : TypedResults.Ok(new HistoryResponse(name, HistoryIntervals.NameOf(query.Interval), [.. buckets.Select(HistoryBucketResponse.From)]));
    }

    /// <summary>RFC 4180: a header row, then one row per bucket, CRLF after each.</summary>
    private static string Csv(IReadOnlyList<HistoryBucket> buckets)
    {
        var csv = new StringBuilder(CsvHeader.Length + 2 + buckets.Count * 64).Append(CsvHeader).Append("\r\n");
        foreach (var bucket in buckets)
        {
            csv.Append(CultureInfo.InvariantCulture,
                $"{DateTime.UnixEpoch.AddMilliseconds(bucket.Start):yyyy-MM-ddTHH:mm:ssZ},{bucket.Increments},{bucket.Decrements},{bucket.Sets},{bucket.Value}\r\n");
        }
        return csv.ToString();
    }

    /// <summary>CSV when the Accept header prefers it to JSON (the most specific range that matches decides each one's weight); else JSON.</summary>
    private static bool WantsCsv(HttpRequest request)
    {
        if (!MediaTypeHeaderValue.TryParseList(request.Headers.Accept, out var accepted))
        {
            return false;
        }
        return WeightOf(accepted, "text", "csv") > WeightOf(accepted, "application", "json");
    }

    private static double WeightOf(IList<MediaTypeHeaderValue> accepted, string type, string subtype)
    {
        var (weight, specificity) = (0.0, -1);
        foreach (var range in accepted)
        {
            var rangeType = range.Type.Value ?? string.Empty;
            var rangeSubtype = range.SubType.Value ?? string.Empty;
            var matches = rangeType == "*" || (rangeType.Equals(type, StringComparison.OrdinalIgnoreCase)
                && (rangeSubtype == "*" || rangeSubtype.Equals(subtype, StringComparison.OrdinalIgnoreCase)));
            var rank = rangeType == "*" ? 0 : rangeSubtype == "*" ? 1 : 2;
            if (matches && rank > specificity)
            {
                (weight, specificity) = (range.Quality ?? 1.0, rank);
            }
        }
        return weight;
    }
}
