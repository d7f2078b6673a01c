using System.CommandLine;
using Spectre.Console;
using Tally.Client;

namespace Tally.Cli.Commands;

internal static class WatchCommand
{
    public static Command Create()
    {
        var name = new Argument<string?>("name") { Description = "The counter to watch (or --prefix).", Arity = ArgumentArity.ZeroOrOne };
        var prefix = new Option<string?>("--prefix", "-p") { Description = "Watch every counter whose name starts with this." };
        var count = new Option<int?>("--count", "-c") { Description = "Stop after this many events (default: until Ctrl+C)." };
        var command = new Command("watch", "Watch counters change live (Ctrl+C ends). With --json, one event per line.")
        {
            Arguments = { name },
            Options = { prefix, count },
        };
        command.SetClientAction(async (parse, client, cancellationToken) =>
        {
            var counter = parse.GetValue(name);
            var under = parse.GetValue(prefix);
            if (counter is not null == under is not null)
            {
                throw new UsageException("watch takes a counter name or --prefix, one of the two.");
            }
            var events = counter is not null ? client.WatchAsync(counter, cancellationToken: cancellationToken)
                : client.WatchPrefixAsync(under, cancellationToken: cancellationToken);
            var limit = parse.GetValue(count);
            if (limit is <= 0)
            {
                throw new UsageException("--count must be at least 1.");
            }
            if (parse.GetValue(Globals.Json))
            {
                var seen = 0;
                await foreach (var item in events)
                {
                    Console.Out.WriteLine(Line(item));
                    if (++seen == limit)
                    {
                        break;
                    }
                }
                return Globals.Success;
            }
            if (Globals.Piped)
            {
                await LinesAsync(events, limit);
            }
            else
            {
                await LiveAsync(events, limit);
            }
            return Globals.Success;
        }, transfer: true);
        return command;
    }

    /// <summary>One event as a JSON line: <c>{"event": "counter", "id": "…", "data": {…}}</c>.</summary>
    private static string Line(TallyEvent item)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(256);
        using (var json = new System.Text.Json.Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("event", item.Kind.ToString().ToLowerInvariant());
            json.WriteString("id", item.Id);
            json.WritePropertyName("data");
            json.WriteRawValue(item.Data);
            json.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    /// <summary>
    /// Piped (no terminal to redraw a table in): one line per event, <c>time name value</c>, <c>deleted name</c> or
    /// <c>alert name</c>, columns separated by a tab.
    /// </summary>
    private static async Task LinesAsync(IAsyncEnumerable<TallyEvent> events, int? limit)
    {
        var seen = 0;
        await foreach (var item in events)
        {
            var line = item.Kind switch
            {
                TallyEventKind.Counter => $"{Output.Time(item.Counter!.UpdatedAt)}\t{item.Counter.Name}\t{item.Counter.Value.ToString(System.Globalization.CultureInfo.InvariantCulture)}",
                TallyEventKind.Deleted => $"deleted\t{item.Name}",
                _ => $"alert\t{item.Name}",
            };
            await Console.Out.WriteLineAsync(line);
            await Console.Out.FlushAsync();
            if (++seen == limit)
            {
                break;
            }
        }
    }

    /// <summary>A table of the counters seen, updated in place as events arrive.</summary>
    private static async Task LiveAsync(IAsyncEnumerable<TallyEvent> events, int? limit)
    {
        var counters = new SortedDictionary<string, Counter>(StringComparer.Ordinal);
        var table = Output.CounterTable(counters.Values);
        await Globals.Out.Live(table).StartAsync(async context =>
        {
            var seen = 0;
            await foreach (var item in events)
            {
                switch (item.Kind)
                {
                    case TallyEventKind.Counter:
                        counters[item.Counter!.Name] = item.Counter;
                        break;
                    case TallyEventKind.Deleted:
                        counters.Remove(item.Name!);
                        break;
                }
                table.Rows.Clear();
                var fresh = Output.CounterTable(counters.Values);
                foreach (var row in fresh.Rows)
                {
                    table.AddRow(row);
                }
                if (item.Kind == TallyEventKind.Alert)
                {
                    table.Caption($"[yellow]alert on {Markup.Escape(item.Name ?? "?")}[/]");
                }
                context.Refresh();
                if (++seen == limit)
                {
                    break;
                }
            }
        });
    }
}
