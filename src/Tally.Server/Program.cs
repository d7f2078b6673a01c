using Tally.Server.Alerts;
using Tally.Server.Auth;
using Tally.Server.Backup;
using Tally.Server.Batch;
using Tally.Server.Configuration;
using Tally.Server.Counters;
using Tally.Server.Dashboard;
using Tally.Server.Docs;
using Tally.Server.Events;
using Tally.Server.Health;
using Tally.Server.History;
using Tally.Server.Http;
using Tally.Server.Observability;
using Tally.Server.Storage;

// appsettings.json is read from beside the binary, whatever the working directory (DataDir stays relative
// to the working directory). Settings are read once: no file watcher waking on every write nearby.
var builder = WebApplication.CreateBuilder(new WebApplicationOptions
{
    Args = [.. args, "--hostBuilder:reloadConfigOnChange=false"],
    ContentRootPath = AppContext.BaseDirectory,
});
builder.AddTallyConfiguration(args);
if (SettingsCheck.Problems(builder.Configuration) is { Count: > 0 } problems)
{
    return StartupFailure.Report(problems);
}
builder.Services.ConfigureHttpJsonOptions(json => json.SerializerOptions.TypeInfoResolverChain.Insert(0, TallyJsonContext.Default));
builder.Services.AddTallyProblems();
builder.Services.AddTallyMetrics();
builder.Services.AddTallyStore(builder.Configuration);
builder.Services.AddTallyAuth(); // after the store: the keys live in its data file
builder.Services.AddTallyCors();
builder.Services.AddTallyEvents();
builder.Services.AddTallyAlerts(); // after the store: so do the alerts
builder.Services.AddTallyHealthChecks();
builder.Services.AddTallyHistory();
builder.Services.AddTallyOpenApi();

try
{
    var app = builder.Build();
    app.UseRequestLogging();
    app.UseTallyProblems();
    app.UseTallyCors(); // before auth and the rate limiter: a preflight needs no key and is never limited
    app.UseDashboard(); // static files, open without a key: before authentication
    app.UseTallyAuth();
    app.UseStrictQuery();
    app.MapTallyDocs();
    app.MapHealth();
    app.MapMetrics();
    app.MapCounters();
    app.MapHistory();
    app.MapBatch();
    app.MapEvents();
    app.MapBackup().RequireAuthorization(AuthPolicies.Admin);
    app.MapAdminKeys();
    app.MapCaller();
    app.MapAlerts();

    await app.RunAsync();
    return 0;
}
catch (Exception ex) when (StartupFailure.Explain(ex) is { } problem)
{
    // A bad setting, an address in use or an unusable data file: one plain line on stderr, exit code 2.
    return StartupFailure.Report(problem);
}

public partial class Program;
