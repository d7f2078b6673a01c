using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Spectre.Console;
using Tally.Client;

namespace Tally.Cli;

/// <summary>What the commands print: tables for people, JSON (with --json) for scripts.</summary>
internal static class Output
{
    public static void Json<T>(T value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type) =>
        Console.Out.WriteLine(JsonSerializer.Serialize(value, type));

    public static void Counter(Counter counter, bool json)
    {
        if (json)
        {
            Json(counter, CliJson.Default.Counter);
            return;
        }
        var grid = new Grid().AddColumn(new GridColumn().NoWrap()).AddColumn();
        grid.AddRow("[bold]name[/]", Markup.Escape(counter.Name));
        grid.AddRow("[bold]value[/]", Number(counter.Value));
        grid.AddRow("[bold]initial[/]", Number(counter.Initial));
        grid.AddRow("[bold]min[/]", Bound(counter.Min));
        grid.AddRow("[bold]max[/]", Bound(counter.Max));
        grid.AddRow("[bold]version[/]", Number(counter.Version));
        grid.AddRow("[bold]created[/]", Time(counter.CreatedAt));
        grid.AddRow("[bold]updated[/]", Time(counter.UpdatedAt));
        Globals.Out.Write(grid);
    }

    public static Table CounterTable(IEnumerable<Counter> counters)
    {
        var table = new Table().AddColumn("name").AddColumn(new TableColumn("value").RightAligned())
            .AddColumn(new TableColumn("min").RightAligned()).AddColumn(new TableColumn("max").RightAligned())
            .AddColumn(new TableColumn("version").RightAligned()).AddColumn("updated");
        foreach (var counter in counters)
        {
            table.AddRow(Markup.Escape(counter.Name), Number(counter.Value), Bound(counter.Min), Bound(counter.Max), Number(counter.Version),
                Time(counter.UpdatedAt));
        }
        return table;
    }

    public static string Number(long value) => value.ToString("N0", CultureInfo.InvariantCulture);

    public static string Bound(long? bound) => bound is { } value ? Number(value) : "[grey]-[/]";

    public static string Time(DateTimeOffset time) => time.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture);
}

internal sealed record ItemsOutput<T>(IReadOnlyList<T> Items);

internal sealed record PageOutput(IReadOnlyList<Counter> Items, string? Next);

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.Never, Converters = [typeof(UtcTimeConverter)])]
[JsonSerializable(typeof(Counter))]
[JsonSerializable(typeof(PageOutput))]
[JsonSerializable(typeof(ItemsOutput<Counter>))]
[JsonSerializable(typeof(CounterHistory))]
[JsonSerializable(typeof(Alert))]
[JsonSerializable(typeof(ItemsOutput<Alert>))]
[JsonSerializable(typeof(ItemsOutput<AlertDelivery>))]
[JsonSerializable(typeof(ItemsOutput<ApiKeyInfo>))]
[JsonSerializable(typeof(CreatedApiKey))]
[JsonSerializable(typeof(BackupOutput))]
[JsonSerializable(typeof(ImportOutput))]
[JsonSerializable(typeof(DeletedOutput))]
internal sealed partial class CliJson : JsonSerializerContext;

internal sealed record BackupOutput(string File, long Bytes);

internal sealed record ImportOutput(int Imported);

internal sealed record DeletedOutput(string Deleted);

/// <summary>Files the commands write.</summary>
internal static class Files
{
    /// <summary>
    /// Writes <paramref name="path"/> through <paramref name="write"/> into <c>&lt;path&gt;.partial</c> beside it and moves that
    /// into place only when complete: a failed or cancelled transfer never leaves a truncated file under the target's name.
    /// </summary>
    public static async Task<T> WriteWholeAsync<T>(string path, Func<Stream, Task<T>> write)
    {
        var target = Path.GetFullPath(path);
        var partial = target + ".partial";
        // Owner only: a backup holds webhook secrets and key hashes, an export every value (the service's own files are 0600).
        var stream = OperatingSystem.IsWindows()
            ? File.Create(partial)
            : new FileStream(partial, new FileStreamOptions
            {
                Mode = FileMode.Create, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            });
        T result;
        try
        {
            await using (stream)
            {
                result = await write(stream);
            }
        }
        catch
        {
            File.Delete(partial);
            throw;
        }
        File.Move(partial, target, overwrite: true);
        return result;
    }
}

/// <summary>A progress bar on standard error while a transfer runs (only on a terminal: scripts get no noise).</summary>
internal static class Transfer
{
    public static async Task<T> RunAsync<T>(string description, Func<IProgress<TransferProgress>?, Task<T>> transfer)
    {
        if (Console.IsErrorRedirected)
        {
            return await transfer(null);
        }
        return await Globals.Error.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new DownloadedColumn(), new TransferSpeedColumn(), new SpinnerColumn())
            .StartAsync(async context =>
            {
                var task = context.AddTask(description, maxValue: 1);
                task.IsIndeterminate = true;
                var result = await transfer(new Progress<TransferProgress>(progress =>
                {
                    if (progress.Total is { } total and > 0)
                    {
                        task.IsIndeterminate = false;
                        task.MaxValue = total;
                    }
                    else
                    {
                        task.MaxValue = Math.Max(task.MaxValue, progress.Bytes);
                    }
                    task.Value = progress.Bytes;
                }));
                task.IsIndeterminate = false;
                task.Value = task.MaxValue;
                task.StopTask();
                return result;
            });
    }
}

/// <summary>Times as the service writes them: UTC, milliseconds, a Z.</summary>
internal sealed class UtcTimeConverter : JsonConverter<DateTimeOffset>
{
    public override DateTimeOffset Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.GetDateTimeOffset();

    public override void Write(Utf8JsonWriter writer, DateTimeOffset value, JsonSerializerOptions options) =>
        writer.WriteStringValue(value.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture));
}
