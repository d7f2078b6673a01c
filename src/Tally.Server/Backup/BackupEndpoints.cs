using System.Buffers;
using System.Text.Json;
using System.Text.Unicode;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Tally.Server.Batch;
using Tally.Server.Configuration;
using Tally.Server.Counters;
using Tally.Server.Docs;
using Tally.Server.Http;
using Tally.Server.Pipeline;
using Tally.Server.Storage;

namespace Tally.Server.Backup;

/// <summary>
/// <c>/admin/backup</c>: a consistent copy of the SQLite file, taken online with SQLite's backup API.
/// <c>/admin/export</c> and <c>/admin/import</c>: every counter as JSON lines, to move between stores.
/// </summary>
internal static class BackupEndpoints
{
    public const string BackupNotSupported = "backup_not_supported";
    public const string BackupInProgress = "backup_in_progress";
    /// <summary>The longest line <c>POST /admin/import</c> takes (an exported line is a few hundred bytes).</summary>
    public const int MaxImportLineBytes = 64 * 1024;
    private const long MaxImportBytes = 1L << 30;
    private const int PageSize = 1000;
    private const string BackupRetryAfterSeconds = "10";
    private static ReadOnlySpan<byte> Utf8Bom => [0xEF, 0xBB, 0xBF];

    public static RouteGroupBuilder MapBackup(this IEndpointRouteBuilder routes)
    {
        var group = routes.MapGroup("/admin").WithTags("Admin").RefuseUnknownQuery();
        group.MapGet("/backup", DownloadBackup).WithName("Backup").WithSummary("Download a consistent copy of the SQLite data file")
            .Produces(StatusCodes.Status200OK, contentType: "application/vnd.sqlite3").ProducesProblem(StatusCodes.Status400BadRequest);
        group.MapGet("/export", Export).WithName("Export").WithSummary("Every counter, one JSON object per line")
            .Produces<CounterResponse>(StatusCodes.Status200OK, "application/x-ndjson");
        group.MapPost("/import", Import).WithName("Import").WithSummary("Write counters from an export (JSON lines), versions and times included")
            .WithMetadata(new DocumentedBody(typeof(CounterResponse), "application/x-ndjson")).Produces<ImportResponse>(StatusCodes.Status200OK)
            .ProducesProblem(StatusCodes.Status400BadRequest).ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType);
        return group;
    }

    private static async Task<IResult> DownloadBackup(HttpContext context, ICounterStore store, IOptions<TallyOptions> options)
    {
        if (store is not IBackupSource source)
        {
            return Problems.Create(BackupNotSupported, options.Value.Store == StoreKind.Postgres
                ? "Store=postgres keeps its data in PostgreSQL: back it up with pg_dump (or your database's backups); GET /admin/export gives every counter as JSON lines."
                : $"Store={options.Value.Store.ToString().ToLowerInvariant()} has no file to back up; use GET /admin/export.");
        }
        if (source.Backups.TryBegin() is not { } lease)
        {
            context.Response.Headers.RetryAfter = BackupRetryAfterSeconds;
            return Problems.Create(BackupInProgress, "Another backup is being written or downloaded; one runs at a time. Retry after it is done.");
        }
        var sent = false;
        try
        {
            await source.BackupToAsync(lease.Path, context.RequestAborted);
            // The copy is deleted once sent, or when the download fails or is aborted: the download is the backup.
            var file = new FileStream(lease.Path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 81920, FileOptions.DeleteOnClose | FileOptions.Asynchronous);
            context.Response.RegisterForDispose(lease);
            sent = true;
            return TypedResults.File(file, "application/vnd.sqlite3", $"tally-{DateTime.UtcNow:yyyyMMddTHHmmss}.db");
        }
        catch (IOException ex)
        {
            context.Response.Headers.RetryAfter = "10";
            return Problems.Create(Counters.ErrorCodes.StoreUnavailable, $"The backup could not be written ({ex.Message}); no partial file was kept.");
        }
        finally
        {
            if (!sent)
            {
                lease.Dispose();
            }
        }
    }

    private static async Task Export(HttpContext context, ICounterStore store)
    {
        context.Response.ContentType = "application/x-ndjson";
        var body = context.Response.BodyWriter;
        string? after = null;
        while (true)
        {
            var page = await store.ListAsync(string.Empty, after, PageSize, context.RequestAborted);
            foreach (var counter in page)
            {
                using (var json = new Utf8JsonWriter(body))
                {
                    ResponseRenderer.WriteCounter(json, counter);
                }
                body.Write("\n"u8);
            }
            await body.FlushAsync(context.RequestAborted);
            if (page.Count < PageSize)
            {
                return;
            }
            after = page[^1].Name;
        }
    }

    /// <summary>
    /// Reads and checks every line before anything is written (a bad line imports nothing), then submits
    /// the whole import as one atomic batch: one commit, one SQLite transaction, so a crash leaves either
    /// all of it or none. The body is read as a stream, one bounded line at a time.
    /// </summary>
    private static async Task<IResult> Import(HttpContext context, CommitPipeline pipeline)
    {
        // curl's --data-binary says application/x-www-form-urlencoded unless told otherwise, and a form is not an export.
        if (RequestBody.MediaTypeProblem(context.Request.ContentType, "Send the export's JSON lines with Content-Type: application/x-ndjson",
                static type => type.Equals("application/x-ndjson", StringComparison.OrdinalIgnoreCase)
                    || type.Equals("application/jsonl", StringComparison.OrdinalIgnoreCase)
                    || type.Equals("application/json", StringComparison.OrdinalIgnoreCase)) is { } unsupported)
        {
            return unsupported;
        }
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            limit.MaxRequestBodySize = MaxImportBytes;
        }

        var commands = new List<CounterCommand>();
        // The line each name came on: an export holds each counter once, so a name twice is a mistake, not "the last wins".
        var lines = new Dictionary<string, int>(StringComparer.Ordinal);
        var reader = context.Request.BodyReader;
        var lineNumber = 0;
        while (true)
        {
            var read = await reader.ReadAsync(context.RequestAborted);
            var buffer = read.Buffer;
            IResult? problem = null;
            while (problem is null && buffer.PositionOf((byte)'\n') is { } end)
            {
                problem = AddLine(buffer.Slice(0, end), ++lineNumber, commands, lines);
                buffer = buffer.Slice(buffer.GetPosition(1, end));
            }
            if (problem is null && read.IsCompleted && buffer.Length > 0)
            {
                problem = AddLine(buffer, ++lineNumber, commands, lines);
                buffer = buffer.Slice(buffer.End);
            }
            if (problem is null && buffer.Length > MaxImportLineBytes + 1)
            {
                // No end of line within the limit: refused before the rest of the line is read.
                problem = TooLong(lineNumber + 1);
            }
            reader.AdvanceTo(buffer.Start, buffer.End);
            if (problem is not null)
            {
                return problem;
            }
            if (read.IsCompleted)
            {
                break;
            }
        }

        if (commands.Count > 0)
        {
            var outcome = await pipeline.SubmitAsync(PendingRequest.For(new BatchCommand(commands, Atomic: true)));
            if (outcome.Batch is not { Aborted: false })
            {
                return new OutcomeResult(outcome, mayRead: true);
            }
        }
        return TypedResults.Ok(new ImportResponse(commands.Count));
    }

    /// <summary>Checks one line (without its newline) and adds its command; a blank line adds nothing.</summary>
    private static IResult? AddLine(ReadOnlySequence<byte> line, int lineNumber, List<CounterCommand> commands, Dictionary<string, int> lines)
    {
        if (line.Length > 0 && line.Slice(line.Length - 1).FirstSpan[0] == (byte)'\r')
        {
            line = line.Slice(0, line.Length - 1);
        }
        if (line.Length > MaxImportLineBytes)
        {
            return TooLong(lineNumber);
        }
        byte[]? rented = null;
        ReadOnlySpan<byte> bytes;
        if (line.IsSingleSegment)
        {
            bytes = line.FirstSpan;
        }
        else
        {
            rented = ArrayPool<byte>.Shared.Rent((int)line.Length);
            line.CopyTo(rented);
            bytes = rented.AsSpan(0, (int)line.Length);
        }
        try
        {
            if (lineNumber == 1 && bytes.StartsWith(Utf8Bom))
            {
                bytes = bytes[Utf8Bom.Length..];
            }
            if (!Utf8.IsValid(bytes))
            {
                return Problems.Create(Problems.InvalidBody, $"Line {lineNumber} is not valid UTF-8.");
            }
            if (bytes.TrimStart(" \t\r"u8).IsEmpty)
            {
                return null;
            }
            if (ParseLine(bytes, lineNumber, out var command) is { } problem)
            {
                return problem;
            }
            if (!lines.TryAdd(command.Name, lineNumber))
            {
                return Problems.Create(Problems.InvalidBody,
                    $"Line {lineNumber}: the counter '{command.Name}' is on line {lines[command.Name]} already; an export holds each counter once.");
            }
            commands.Add(command);
            return null;
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    private static IResult TooLong(int lineNumber) => Problems.Create(Problems.InvalidBody,
        $"Line {lineNumber} is longer than {MaxImportLineBytes} bytes; an import line holds one counter, as GET /admin/export writes it.");

    private const string LineShape =
        "a line is one counter as GET /admin/export writes it: name, value, version, createdAt, updatedAt, and optionally initial, min, max";

    /// <summary>The earliest and latest time an import takes: a counter's times are Unix milliseconds, not before 1970.</summary>
    private static readonly DateTimeOffset EarliestTime = DateTimeOffset.UnixEpoch;
    private static readonly DateTimeOffset LatestTime = new(9999, 12, 31, 23, 59, 59, 999, TimeSpan.Zero);

    /// <summary>
    /// One line, as strictly as any request body: a JSON object with the required members name, value, version,
    /// createdAt, updatedAt and the optional initial (0), min, max (null); unknown or duplicate members are refused.
    /// </summary>
    private static IResult? ParseLine(ReadOnlySpan<byte> line, int lineNumber, out CounterCommand command)
    {
        command = CounterCommand.Get(string.Empty);
        if (RequestParsing.ParseDocument(line.ToArray(), 8, LineShape, out var document) is { } invalid)
        {
            return OnLine(invalid, lineNumber);
        }
        using (document)
        {
            try
            {
                return ParseCounter(document.RootElement, lineNumber, out command);
            }
            catch (InvalidOperationException)
            {
                return OnLine(RequestParsing.NotText(), lineNumber);
            }
        }
    }

    private static IResult? ParseCounter(JsonElement root, int lineNumber, out CounterCommand command)
    {
        command = CounterCommand.Get(string.Empty);
        if (root.ValueKind != JsonValueKind.Object)
        {
            return Invalid(Problems.InvalidBody, lineNumber, $"not a JSON object; {LineShape}.");
        }
        string? name = null;
        long? value = null, version = null, createdAt = null, updatedAt = null, min = null, max = null;
        long initial = 0;
        foreach (var member in root.EnumerateObject())
        {
            var element = member.Value;
            switch (member.Name)
            {
                case "name":
                    name = element.ValueKind == JsonValueKind.String ? element.GetString() : null;
                    if (!CounterName.IsValid(name))
                    {
                        return Invalid(ErrorCodes.InvalidName, lineNumber, $"'name' must be a counter name matching {CounterName.Pattern}.");
                    }
                    break;
                case "value" or "initial":
                    if (element.ValueKind != JsonValueKind.Number || !element.TryGetInt64(out var number))
                    {
                        return Invalid(ErrorCodes.InvalidValue, lineNumber, $"'{member.Name}' must be a 64-bit integer.");
                    }
                    if (member.Name == "value")
                    {
                        value = number;
                    }
                    else
                    {
                        initial = number;
                    }
                    break;
                case "min" or "max":
                    long? bound = null;
                    if (element.ValueKind != JsonValueKind.Null)
                    {
                        if (element.ValueKind != JsonValueKind.Number || !element.TryGetInt64(out var limit))
                        {
                            return Invalid(ErrorCodes.InvalidBounds, lineNumber, $"'{member.Name}' must be a 64-bit integer or null.");
                        }
                        bound = limit;
                    }
                    if (member.Name == "min")
                    {
                        min = bound;
                    }
                    else
                    {
                        max = bound;
                    }
                    break;
                case "version":
                    if (element.ValueKind != JsonValueKind.Number || !element.TryGetInt64(out var v) || v < 1)
                    {
                        return Invalid(ErrorCodes.InvalidValue, lineNumber, $"'version' must be an integer from 1 to {long.MaxValue}.");
                    }
                    version = v;
                    break;
                case "createdAt" or "updatedAt":
                    if (ParseTime(element) is not { } time)
                    {
                        return Invalid(Problems.InvalidBody, lineNumber,
                            $"'{member.Name}' must be an ISO-8601 time from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z, such as \"2026-11-21T22:00:00.000Z\".");
                    }
                    if (member.Name == "createdAt")
                    {
                        createdAt = time;
                    }
                    else
                    {
                        updatedAt = time;
                    }
                    break;
                default:
                    return Invalid(Problems.InvalidBody, lineNumber, $"unknown member '{Shown(member.Name)}'; {LineShape}.");
            }
        }

        string[] missing = [.. new (string Member, bool Given)[]
            {
                ("name", name is not null), ("value", value is not null), ("version", version is not null),
                ("createdAt", createdAt is not null), ("updatedAt", updatedAt is not null),
            }.Where(m => !m.Given).Select(m => $"'{m.Member}'")];
        if (missing.Length > 0)
        {
            return Invalid(Problems.InvalidBody, lineNumber, $"{string.Join(", ", missing)} {(missing.Length == 1 ? "is" : "are")} missing; {LineShape}.");
        }
        if (updatedAt < createdAt)
        {
            return Invalid(Problems.InvalidBody, lineNumber, "'updatedAt' is earlier than 'createdAt'; a counter cannot change before it exists.");
        }

        var state = new Counter(name!, value!.Value, initial, min, max, version!.Value, createdAt!.Value, updatedAt!.Value);
        command = CounterCommand.Import(state);
        var check = CounterRules.Apply(command, null, 0);
        return check.Error is { } error ? Invalid(error.Code, lineNumber, error.Detail) : null;
    }

    /// <summary>
    /// An ISO-8601 time as Unix milliseconds (UTC), within the range an import takes; null otherwise. A time with an
    /// offset is read as that instant (not through local time, which is ambiguous once a year); one without is UTC.
    /// </summary>
    private static long? ParseTime(JsonElement element)
    {
        if (element.ValueKind != JsonValueKind.String || !element.TryGetDateTime(out var time))
        {
            return null;
        }
        DateTimeOffset instant;
        if (time.Kind == DateTimeKind.Unspecified)
        {
            instant = new DateTimeOffset(DateTime.SpecifyKind(time, DateTimeKind.Utc));
        }
        else if (!element.TryGetDateTimeOffset(out instant))
        {
            return null;
        }
        return instant >= EarliestTime && instant <= LatestTime ? instant.ToUnixTimeMilliseconds() : null;
    }

    /// <summary>A request-body problem, said of one line.</summary>
    private static IResult OnLine(ProblemHttpResult problem, int lineNumber)
    {
        var detail = (problem.ProblemDetails.Detail ?? string.Empty).Replace("The body", "the line", StringComparison.Ordinal);
        if (detail.StartsWith("The ", StringComparison.Ordinal))
        {
            detail = "the " + detail[4..];
        }
        return Invalid((string)problem.ProblemDetails.Extensions["code"]!, lineNumber, detail.TrimEnd('.') + ".");
    }

    private static IResult Invalid(string code, int lineNumber, string detail) =>
        Problems.Create(code, $"Line {lineNumber}: {detail}");

    private static string Shown(string name) => name.Length <= 60 ? name : name[..60] + "…";
}

internal sealed record ImportResponse(int Imported);
