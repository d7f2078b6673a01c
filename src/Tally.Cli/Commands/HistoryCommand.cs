using System.CommandLine;
using System.Globalization;
using Spectre.Console;
using Tally.Client;

namespace Tally.Cli.Commands;

internal static class HistoryCommand
{
    public static Command Create()
    {
        var name = Arguments.Name();
        var interval = new Option<HistoryInterval>("--interval", "-i")
        {
            Description = "Bucket size: minute, hour or day.",
            DefaultValueFactory = _ => HistoryInterval.Minute,
        };
        var from = new Option<DateTimeOffset?>("--from") { Description = "Start (ISO-8601; default: 60 intervals before --to)." };
        var to = new Option<DateTimeOffset?>("--to") { Description = "End, exclusive (default: now)." };
        var show = new Option<string>("--show", "-s")
        {
            Description = "What the chart shows per bucket: value, increments, decrements or sets.",
            DefaultValueFactory = _ => "value",
        };
        show.AcceptOnlyFromAmong("value", "increments", "decrements", "sets");
        var command = new Command("history", "A counter's history as a chart: the buckets with activity.")
        {
            Arguments = { name },
            Options = { interval, from, to, show },
        };
        command.SetClientAction(async (parse, client, cancellationToken) =>
        {
            var history = await client.GetHistoryAsync(parse.GetValue(name)!, parse.GetValue(interval), parse.GetValue(from), parse.GetValue(to),
                cancellationToken);
            if (parse.GetValue(Globals.Json))
            {
                Output.Json(history, CliJson.Default.CounterHistory);
                return Globals.Success;
            }
            if (history.Buckets.Count == 0)
            {
                Globals.Out.MarkupLineInterpolated($"[grey]No activity on {history.Name} in this window.[/]");
                return Globals.Success;
            }
            var field = parse.GetValue(show)!;
            Func<HistoryBucket, long> pick = field switch
            {
                "increments" => bucket => bucket.Increments,
                "decrements" => bucket => bucket.Decrements,
                "sets" => bucket => bucket.Sets,
                _ => bucket => bucket.Value,
            };
            Globals.Out.Write(Chart(history, pick, field));
            return Globals.Success;
        });
        return command;
    }

    /// <summary>A bar per bucket; negative values (a counter below zero) as a table, which a bar chart cannot show.</summary>
    private static Spectre.Console.Rendering.IRenderable Chart(CounterHistory history, Func<HistoryBucket, long> pick, string field)
    {
        var format = history.Interval == "day" ? "yyyy-MM-dd" : "yyyy-MM-dd HH:mm";
        if (history.Buckets.Any(bucket => pick(bucket) < 0))
        {
            var table = new Table().AddColumn("start").AddColumn(new TableColumn(field).RightAligned());
            foreach (var bucket in history.Buckets)
            {
                table.AddRow(bucket.Start.UtcDateTime.ToString(format, CultureInfo.InvariantCulture), Output.Number(pick(bucket)));
            }
            return table;
        }
        var chart = new BarChart().Label($"[bold]{Markup.Escape(history.Name)}[/]: {field} per {history.Interval} (UTC)")
            .Width(Math.Min(100, Globals.Out.Profile.Width));
        foreach (var bucket in history.Buckets)
        {
            chart.AddItem(bucket.Start.UtcDateTime.ToString(format, CultureInfo.InvariantCulture), pick(bucket), Color.Green);
        }
        return chart;
    }
}
