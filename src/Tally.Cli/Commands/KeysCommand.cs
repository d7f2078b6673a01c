using System.CommandLine;
using Spectre.Console;
using Tally.Client;

namespace Tally.Cli.Commands;

internal static class KeysCommand
{
    public static Command Create()
    {
        var command = new Command("keys", "API keys (admin): ls, create, revoke.");
        command.Subcommands.Add(List());
        command.Subcommands.Add(Create_());
        command.Subcommands.Add(Revoke());
        return command;
    }

    private static Command List()
    {
        var command = new Command("ls", "The stored keys, oldest first (never their secrets).");
        command.SetClientAction(async (parse, client, cancellationToken) =>
        {
            var keys = await client.ListKeysAsync(cancellationToken);
            if (parse.GetValue(Globals.Json))
            {
                Output.Json(new ItemsOutput<ApiKeyInfo>(keys), CliJson.Default.ItemsOutputApiKeyInfo);
                return Globals.Success;
            }
            var table = new Table().AddColumn("id").AddColumn("name").AddColumn("scopes").AddColumn("prefix").AddColumn("created");
            foreach (var key in keys)
            {
                table.AddRow(Markup.Escape(key.Id), Markup.Escape(key.Name), string.Join(',', key.Scopes), Markup.Escape(key.Prefix), Output.Time(key.CreatedAt));
            }
            Globals.Out.Write(table);
            return Globals.Success;
        });
        return command;
    }

    private static Command Create_()
    {
        var name = new Argument<string>("name") { Description = "A name for the key." };
        var scopes = new Option<string[]>("--scope", "-s")
        {
            Description = "read, increment, write or admin (repeat for several).",
            Required = true,
            AllowMultipleArgumentsPerToken = true,
        };
        scopes.AcceptOnlyFromAmong("read", "increment", "write", "admin");
        var prefix = new Option<string?>("--prefix", "-p") { Description = "The counter-name prefix it may touch (default: all)." };
        var maxCounters = new Option<long?>("--max-counters") { Description = "How many live counters it may create." };
        var maxAmount = new Option<long?>("--max-amount") { Description = "The largest amount of one increment or decrement." };
        var command = new Command("create", "Create a key; its secret is printed this once.")
        {
            Arguments = { name },
            Options = { scopes, prefix, maxCounters, maxAmount },
        };
        command.SetClientAction(async (parse, client, cancellationToken) =>
        {
            var key = await client.CreateKeyAsync(new ApiKeyRequest(parse.GetValue(name)!, parse.GetValue(scopes)!)
            {
                Prefix = parse.GetValue(prefix) ?? "",
                MaxCounters = parse.GetValue(maxCounters),
                MaxAmount = parse.GetValue(maxAmount),
            }, cancellationToken);
            if (parse.GetValue(Globals.Json))
            {
                Output.Json(key, CliJson.Default.CreatedApiKey);
                return Globals.Success;
            }
            var grid = new Grid().AddColumn(new GridColumn().NoWrap()).AddColumn();
            grid.AddRow("[bold]id[/]", Markup.Escape(key.Id));
            grid.AddRow("[bold]key[/]", Markup.Escape(key.Key) + " [grey](shown this once)[/]");
            grid.AddRow("[bold]scopes[/]", string.Join(',', key.Scopes));
            grid.AddRow("[bold]prefix[/]", Markup.Escape(key.Prefix));
            Globals.Out.Write(grid);
            return Globals.Success;
        });
        return command;
    }

    private static Command Revoke()
    {
        var id = new Argument<string>("id") { Description = "The key's id (from tally keys ls)." };
        var command = new Command("revoke", "Revoke a key: it stops working at once.") { Arguments = { id } };
        command.SetClientAction(async (parse, client, cancellationToken) =>
        {
            await client.RevokeKeyAsync(parse.GetValue(id)!, cancellationToken);
            if (parse.GetValue(Globals.Json))
            {
                Output.Json(new DeletedOutput(parse.GetValue(id)!), CliJson.Default.DeletedOutput);
            }
            else
            {
                Globals.Out.MarkupLineInterpolated($"Revoked [bold]{parse.GetValue(id)}[/].");
            }
            return Globals.Success;
        });
        return command;
    }
}
