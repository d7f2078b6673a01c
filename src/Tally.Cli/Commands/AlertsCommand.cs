using System.CommandLine;
using Spectre.Console;
using Tally.Client;

namespace Tally.Cli.Commands;

internal static class AlertsCommand
{
    public static Command Create()
    {
        var command = new Command("alerts", "Threshold alerts: ls, get, set, rm, deliveries.");
        command.Subcommands.Add(List());
        command.Subcommands.Add(Get());
        command.Subcommands.Add(Set());
        command.Subcommands.Add(Remove());
        command.Subcommands.Add(Deliveries());
        return command;
    }

    private static Argument<string> Id() => new("id") { Description = "The alert's id." };

    private static Command List()
    {
        var command = new Command("ls", "The alerts this key may manage.");
        command.SetClientAction(async (parse, client, cancellationToken) =>
        {
            var alerts = await client.ListAlertsAsync(cancellationToken);
            if (parse.GetValue(Globals.Json))
            {
                Output.Json(new ItemsOutput<Alert>(alerts), CliJson.Default.ItemsOutputAlert);
                return Globals.Success;
            }
            var table = new Table().AddColumn("id").AddColumn("watches").AddColumn("when").AddColumn("webhook").AddColumn("enabled");
            foreach (var alert in alerts)
            {
                table.AddRow(Markup.Escape(alert.Id), Markup.Escape(Watches(alert)), Markup.Escape(When(alert)), Markup.Escape(alert.Webhook),
                    alert.WebhookEnabled ? "yes" : "[red]no[/]");
            }
            Globals.Out.Write(table);
            return Globals.Success;
        });
        return command;
    }

    private static Command Get()
    {
        var id = Id();
        var command = new Command("get", "Show an alert.") { Arguments = { id } };
        command.SetClientAction(async (parse, client, cancellationToken) =>
        {
            Show(await client.GetAlertAsync(parse.GetValue(id)!, cancellationToken), parse.GetValue(Globals.Json));
            return Globals.Success;
        });
        return command;
    }

    private static Command Set()
    {
        var id = Id();
        var counter = new Option<string?>("--counter") { Description = "The counter to watch." };
        var prefix = new Option<string?>("--prefix") { Description = "Watch every counter under this prefix." };
        var above = new Option<long?>("--above") { Description = "Fire when a value goes above this." };
        var below = new Option<long?>("--below") { Description = "Fire when a value goes below this." };
        var resolve = new Option<long?>("--resolve") { Description = "Back to ok only past this level." };
        var webhook = new Option<string>("--webhook") { Description = "The URL events are POSTed to.", Required = true };
        var secret = new Option<string?>("--secret") { Description = "whsec_… (default: generated and shown once)." };
        var command = new Command("set", "Create or replace an alert.")
        {
            Arguments = { id },
            Options = { counter, prefix, above, below, resolve, webhook, secret },
        };
        command.SetClientAction(async (parse, client, cancellationToken) =>
        {
            var alert = await client.PutAlertAsync(parse.GetValue(id)!, new AlertDefinition
            {
                Counter = parse.GetValue(counter),
                Prefix = parse.GetValue(prefix),
                Above = parse.GetValue(above),
                Below = parse.GetValue(below),
                Resolve = parse.GetValue(resolve),
                Webhook = parse.GetValue(webhook)!,
                Secret = parse.GetValue(secret),
            }, cancellationToken);
            Show(alert, parse.GetValue(Globals.Json));
            return Globals.Success;
        });
        return command;
    }

    private static Command Remove()
    {
        var id = Id();
        var command = new Command("rm", "Delete an alert.") { Arguments = { id } };
        command.SetClientAction(async (parse, client, cancellationToken) =>
        {
            await client.DeleteAlertAsync(parse.GetValue(id)!, cancellationToken);
            if (parse.GetValue(Globals.Json))
            {
                Output.Json(new DeletedOutput(parse.GetValue(id)!), CliJson.Default.DeletedOutput);
            }
            else
            {
                Globals.Out.MarkupLineInterpolated($"Deleted alert [bold]{parse.GetValue(id)}[/].");
            }
            return Globals.Success;
        });
        return command;
    }

    private static Command Deliveries()
    {
        var id = Id();
        var limit = new Option<int?>("--limit", "-n") { Description = "How many, 1 to 1000 (default 100)." };
        var command = new Command("deliveries", "An alert's latest webhook deliveries, newest first.") { Arguments = { id }, Options = { limit } };
        command.SetClientAction(async (parse, client, cancellationToken) =>
        {
            var deliveries = await client.GetDeliveriesAsync(parse.GetValue(id)!, parse.GetValue(limit), cancellationToken);
            if (parse.GetValue(Globals.Json))
            {
                Output.Json(new ItemsOutput<AlertDelivery>(deliveries), CliJson.Default.ItemsOutputAlertDelivery);
                return Globals.Success;
            }
            var table = new Table().AddColumn("at").AddColumn("type").AddColumn("attempt").AddColumn("status").AddColumn("outcome").AddColumn("error");
            foreach (var delivery in deliveries)
            {
                table.AddRow(Output.Time(delivery.At), delivery.Type, delivery.Attempt.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    delivery.Status?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "-", delivery.Outcome, Markup.Escape(delivery.Error ?? ""));
            }
            Globals.Out.Write(table);
            return Globals.Success;
        });
        return command;
    }

    private static void Show(Alert alert, bool json)
    {
        if (json)
        {
            Output.Json(alert, CliJson.Default.Alert);
            return;
        }
        var grid = new Grid().AddColumn(new GridColumn().NoWrap()).AddColumn();
        grid.AddRow("[bold]id[/]", Markup.Escape(alert.Id));
        grid.AddRow("[bold]watches[/]", Markup.Escape(Watches(alert)));
        grid.AddRow("[bold]when[/]", Markup.Escape(When(alert)));
        grid.AddRow("[bold]webhook[/]", Markup.Escape(alert.Webhook) + (alert.WebhookEnabled ? "" : " [red](disabled)[/]"));
        if (alert.Secret is { } secret)
        {
            grid.AddRow("[bold]secret[/]", Markup.Escape(secret) + " [grey](shown this once)[/]");
        }
        Globals.Out.Write(grid);
    }

    private static string Watches(Alert alert) => alert.Counter ?? $"{alert.Prefix}*";

    private static string When(Alert alert) =>
        (alert.Above is { } above ? $"above {above}" : $"below {alert.Below}") + (alert.Resolve is { } resolve ? $", resolve at {resolve}" : "");
}
