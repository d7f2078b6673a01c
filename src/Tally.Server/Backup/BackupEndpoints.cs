using System.Buffers;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;
using Tally.Server.Batch;
using Tally.Server.Configuration;
using Tally.Server.Counters;
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
    private const long MaxImportBytes = 1L << 30;
    private const int PageSize = 1000;

    public static RouteGroupBuilder MapBackup(this IEndpointRouteBuilder routes)
    {
        var group = routes.MapGroup("/admin").WithTags("Admin");
        group.MapGet("/backup", DownloadBackup).WithName("Backup").WithSummary("Download a consistent copy of the SQLite data file");
        group.MapGet("/export", Export).WithName("Export").WithSummary("Every counter, one JSON object per line");
        group.MapPost("/import", Import).WithName("Import").WithSummary("Write counters from an export (JSON lines), versions and times included");
        return group;
    }

    private static async Task<IResult> DownloadBackup(HttpContext context, ICounterStore store, IOptions<TallyOptions> options)
    {
        if (store is not IBackupSource source)
        {
            return Problems.Create(BackupNotSupported, $"Store={options.Value.Store} has no file to back up; use GET /admin/export.");
        }
        var directory = Path.Combine(options.Value.DataDir, "backups");
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, $"tally-{DateTime.UtcNow:yyyyMMddTHHmmssfff}-{Guid.NewGuid():N}.db");
        try
        {
            await source.BackupToAsync(path, context.RequestAborted);
        }
        catch (Exception ex) when (ex is IOException or Microsoft.Data.Sqlite.SqliteException)
        {
            File.Delete(path);
            context.Response.Headers.RetryAfter = "10";
            return Problems.Create(Counters.ErrorCodes.StoreUnavailable, $"The backup could not be written ({ex.Message}); no partial file was kept.");
        }
        // The copy is deleted once sent: the download is the backup.
        var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 81920, FileOptions.DeleteOnClose | FileOptions.Asynchronous);
        return TypedResults.File(file, "application/vnd.sqlite3", $"tally-{DateTime.UtcNow:yyyyMMddTHHmmss}.db");
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

    private static async Task<IResult> Import(HttpContext context, CommitPipeline pipeline)
    {
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            limit.MaxRequestBodySize = MaxImportBytes;
        }

        // Everything is read and checked before anything is written: a bad line imports nothing.
        var commands = new List<CounterCommand>();
        // Invalid bytes decode to U+FFFD rather than throwing: the reader decodes a whole buffer (many lines)
        // at once, so only a check per line can name the line. Exported lines are ASCII, so U+FFFD never
        // appears in a good one.
        using (var reader = new StreamReader(context.Request.Body, new UTF8Encoding(false, throwOnInvalidBytes: false)))
        {
            var lineNumber = 0;
            while (await reader.ReadLineAsync(context.RequestAborted) is { } line)
            {
                lineNumber++;
                if (line.Contains('\uFFFD', StringComparison.Ordinal))
                {
                    return Problems.Create(Problems.InvalidBody, $"Line {lineNumber} is not valid UTF-8.");
                }
                if (string.IsNullOrWhiteSpace(line))
                {
                    continue;
                }
                if (ParseLine(line, lineNumber, out var command) is { } problem)
                {
                    return problem;
                }
                commands.Add(command);
            }
        }

        var imported = 0;
        foreach (var chunk in commands.Chunk(BatchCommand.MaxOperations))
        {
            var outcome = await pipeline.SubmitAsync(PendingRequest.For(new BatchCommand(chunk, Atomic: true)));
            if (outcome.Batch is not { Aborted: false })
            {
                return new OutcomeResult(outcome, mayRead: true);
            }
            imported += chunk.Length;
        }
        return TypedResults.Ok(new ImportResponse(imported));
    }

    private static IResult? ParseLine(string line, int lineNumber, out CounterCommand command)
    {
        command = CounterCommand.Get(string.Empty);
        CounterResponse? item;
        try
        {
            item = JsonSerializer.Deserialize(line, TallyJsonContext.Default.CounterResponse);
        }
        catch (JsonException ex)
        {
            return Problems.Create(Problems.InvalidJson, $"Line {lineNumber} is not a counter: {ex.Message}");
        }
        if (item is null || !CounterName.IsValid(item.Name))
        {
            return Problems.Create(ErrorCodes.InvalidName, $"Line {lineNumber}: missing or invalid counter name.");
        }
        var state = new Counter(item.Name, item.Value, item.Initial, item.Min, item.Max, item.Version,
            UnixMilliseconds(item.CreatedAt), UnixMilliseconds(item.UpdatedAt));
        command = CounterCommand.Import(state);
        var check = CounterRules.Apply(command, null, 0);
        return check.Error is { } error ? Problems.Create(error.Code, $"Line {lineNumber}: {error.Detail}") : null;
    }

    /// <summary>
    /// System.Text.Json reads a time with an offset (<c>+02:00</c>) as local time: convert it back to UTC
    /// (outside UTC, <c>new DateTimeOffset(local, TimeSpan.Zero)</c> throws). A time without a zone is taken as UTC.
    /// </summary>
    private static long UnixMilliseconds(DateTime time) => new DateTimeOffset(time.Kind == DateTimeKind.Local
        ? time.ToUniversalTime()
        : DateTime.SpecifyKind(time, DateTimeKind.Utc)).ToUnixTimeMilliseconds();
}

internal sealed record ImportResponse(int Imported);
