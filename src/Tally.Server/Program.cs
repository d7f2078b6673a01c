using Microsoft.Extensions.Options;
using Tally.Server.Configuration;
using Tally.Server.Counters;
using Tally.Server.Health;
using Tally.Server.Http;
using Tally.Server.Storage;

var builder = WebApplication.CreateBuilder(args);
builder.AddTallyConfiguration(args);
builder.Services.ConfigureHttpJsonOptions(json => json.SerializerOptions.TypeInfoResolverChain.Insert(0, TallyJsonContext.Default));
builder.Services.AddTallyProblems();
builder.Services.AddTallyStore();
builder.Services.AddTallyHealthChecks();

var app = builder.Build();
app.UseTallyProblems();
app.MapHealth();
app.MapCounters();

try
{
    await app.RunAsync();
    return 0;
}
catch (Exception ex) when (ex is OptionsValidationException or StoreStartupException or InvalidOperationException { Source: "Microsoft.Extensions.Configuration.Binder" })
{
    // A bad setting or an unusable data file: say what is wrong, plainly, and exit non-zero.
    await Console.Error.WriteLineAsync($"Tally cannot start: {ex.Message}");
    return 2;
}

public partial class Program;
