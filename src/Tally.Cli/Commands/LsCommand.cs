using System.CommandLine;
using System.Globalization;
using System.Text;
using Spectre.Console;
using Tally.Client;

namespace Tally.Cli.Commands;

internal static class LsCommand
{
    public static Command Create()
    {
        var prefix = Arguments.Prefix();
        var limit = new Option<int?>("--limit", "-n") { Description = "Counters per page, 1 to 1000 (default 100)." };
        var after = new Option<string?>("--after") { Description = "Start after this name (the 'next' of the previous page)." };
        var all = new Option<bool>("--all", "-a") { Description = "Every page, not only the first." };
        var command = new Command("ls", "List counters in name order.") { Options = { prefix, limit, after, all } };
        command.SetClientAction(async (parse, client, cancellationToken) =>
        {
            var items = new List<Counter>();
            var page = await client.ListAsync(parse.GetValue(prefix), parse.GetValue(after), parse.GetValue(limit), cancellationToken);
            items.AddRange(page.Items);
            while (parse.GetValue(all) && page.Next is not null)
            {
                page = await client.ListAsync(parse.GetValue(prefix), page.Next, parse.GetValue(limit), cancellationToken);
                items.AddRange(page.Items);
            }
            if (parse.GetValue(Globals.Json))
            {
                Output.Json(new PageOutput(items, page.Next), CliJson.Default.PageOutput);
                return Globals.Success;
            }
            Globals.Out.Write(Output.CounterTable(items));
            if (page.Next is { } next)
            {
                Globals.Out.MarkupLineInterpolated($"[grey]More: {NextPage(parse.GetValue(prefix), parse.GetValue(limit), next)}, or --all.[/]");
            }
            return Globals.Success;
        });
        return command;
    }

    /// <summary>The command for the following page: the same prefix and limit, after the last name shown.</summary>
    private static string NextPage(string? prefix, int? limit, string next)
    {
        var command = new StringBuilder("tally ls");
        if (prefix is not null)
        {
            command.Append(" --prefix ").Append(Quote(prefix));
        }
        if (limit is { } size)
        {
            command.Append(" --limit ").Append(size.ToString(CultureInfo.InvariantCulture));
        }
        return command.Append(" --after ").Append(Quote(next)).ToString();
    }

    /// <summary>A word as a POSIX shell reads it back: as is when plain, else in single quotes.</summary>
    private static string Quote(string word) =>
        word.Length > 0 && word.All(c => char.IsAsciiLetterOrDigit(c) || c is ':' or '.' or '_' or '-' or '/' or '@' or '+' or '=' or ',')
            ? word
            : "'" + word.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
