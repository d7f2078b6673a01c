using Microsoft.Extensions.Options;

namespace Tally.Server.Configuration;

internal static class ConfigurationExtensions
{
    /// <summary>
    /// appsettings.json, then <c>TALLY_</c> environment variables, then the command line, which wins. Environment
    /// variables without the prefix set the framework's settings only (<see cref="FrameworkEnvironmentVariablesSource"/>).
    /// (The host already read the command line once; it is added again so it stays last.)
    /// The options types bound here are listed in <see cref="SettingsCheck.Sections"/>, which checks them before the start.
    /// </summary>
    public static WebApplicationBuilder AddTallyConfiguration(this WebApplicationBuilder builder, string[] args)
    {
        FrameworkEnvironmentVariablesSource.ReplaceUnprefixed(builder.Configuration);
        builder.Configuration.AddEnvironmentVariables(SettingsCheck.EnvironmentPrefix);
        builder.Configuration.AddCommandLine(args);
        builder.Services.AddQuietFailedStart();

        builder.Services.AddSingleton<IValidateOptions<TallyOptions>, TallyOptionsValidator>();
        builder.Services.AddOptions<TallyOptions>()
            .Bind(builder.Configuration)
            .PostConfigure(options =>
            {
                options.Postgres ??= builder.Configuration.GetConnectionString("Postgres");
                options.Redis ??= builder.Configuration.GetConnectionString("Redis");
            })
            .ValidateOnStart();
        builder.Services.AddSingleton<IValidateOptions<RateLimitOptions>, RateLimitOptionsValidator>();
        builder.Services.AddOptions<RateLimitOptions>()
            .Bind(builder.Configuration.GetSection(RateLimitOptions.Section))
            .ValidateOnStart();
        builder.Services.AddSingleton<IValidateOptions<QuotaOptions>, QuotaOptionsValidator>();
        builder.Services.AddOptions<QuotaOptions>()
            .Bind(builder.Configuration.GetSection(QuotaOptions.Section))
            .ValidateOnStart();
        builder.Services.AddSingleton<IValidateOptions<History.HistoryOptions>, History.HistoryOptionsValidator>();
        builder.Services.AddOptions<History.HistoryOptions>()
            .Bind(builder.Configuration.GetSection(History.HistoryOptions.Section))
            .ValidateOnStart();
        builder.Services.AddSingleton<IValidateOptions<Alerts.AlertOptions>, Alerts.AlertOptionsValidator>();
        builder.Services.AddOptions<Alerts.AlertOptions>()
            .Bind(builder.Configuration.GetSection(Alerts.AlertOptions.Section))
            .ValidateOnStart();
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddOptions<HostOptions>().Configure<IOptions<TallyOptions>>((host, tally) =>
            host.ShutdownTimeout = TimeSpan.FromSeconds(tally.Value.ShutdownTimeoutSeconds));
        return builder;
    }
}
