using Microsoft.Extensions.Options;
using Tally.Server.Backup;
using Tally.Server.Batch;
using Tally.Server.Configuration;
using Tally.Server.Counters;
using Tally.Server.Health;
using Tally.Server.Http;
using Tally.Server.Observability;
using Tally.Server.Storage;

// No configuration file watching: it would also watch the data directory under the content root,
// and every write to the database would wake the watcher.
// appsettings.json is read from beside the binary, whatever the working directory; DataDir stays relative to it.
var builder = WebApplication.CreateBuilder(new WebApplicationOptions
{
    Args = [.. args, "--hostBuilder:reloadConfigOnChange=false"],
    ContentRootPath = AppContext.BaseDirectory,
});
builder.AddTallyConfiguration(args);
builder.Services.ConfigureHttpJsonOptions(json => json.SerializerOptions.TypeInfoResolverChain.Insert(0, TallyJsonContext.Default));
builder.Services.AddTallyProblems();
builder.Services.AddTallyMetrics();
builder.Services.AddTallyStore();
builder.Services.AddTallyHealthChecks();

var app = builder.Build();
app.UseTallyProblems();
app.MapHealth();
app.MapMetrics();
app.MapCounters();
app.MapBatch();
app.MapBackup();

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
