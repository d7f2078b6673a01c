using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Options;
using Tally.Server.Storage;

namespace Tally.Server.Configuration;

/// <summary>
/// A start that cannot succeed (a bad setting, a port in use, an unusable data file) ends with one line on
/// standard error and exit code 2: an operator's mistake gets a sentence, not a stack trace.
/// </summary>
internal static class StartupFailure
{
    public const int ExitCode = 2;

    /// <summary>The host's own category: it logs a failed start, stack trace and all, before the exception reaches us.</summary>
    private const string HostCategory = "Microsoft.Extensions.Hosting.Internal.Host";

    /// <summary>Writes the one line and returns the exit code.</summary>
    public static int Report(string problem)
    {
        var line = string.Join(' ', problem.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        Console.Error.WriteLine($"Tally cannot start: {line}");
        return ExitCode;
    }

    public static int Report(IReadOnlyList<string> problems) => Report(string.Join("; ", problems) + ".");

    /// <summary>The sentence for a start-up failure an operator can fix; null for anything else (a bug: let it crash loudly).</summary>
    public static string? Explain(Exception exception) => exception switch
    {
        OptionsValidationException or StoreStartupException => exception.Message,
        InvalidOperationException { Source: "Microsoft.Extensions.Configuration.Binder" } => exception.Message,
        IOException { InnerException: AddressInUseException } => $"urls: {exception.Message}",
        SocketException socket => $"urls: cannot listen on the address ({socket.Message})",
        FormatException when exception.TargetSite?.DeclaringType == typeof(BindingAddress) => $"urls: {exception.Message}",
        ArgumentOutOfRangeException { ParamName: "port" } when exception.StackTrace?.Contains("AddressBinder", StringComparison.Ordinal) == true =>
            "urls: a port must be from 0 to 65535",
        AggregateException aggregate when aggregate.InnerExceptions.Select(Explain).ToList() is var all && all.All(line => line is not null) =>
            string.Join("; ", all),
        _ => null,
    };

    /// <summary>
    /// Keeps the host from logging a failed start (the exception then reaches Program, which prints one line, or,
    /// if it is not one <see cref="Explain"/> knows, crashes with the whole trace). Once started, the host logs as usual.
    /// </summary>
    public static IServiceCollection AddQuietFailedStart(this IServiceCollection services)
    {
        var phase = new StartPhase();
        // Every filter rule is wrapped, not a rule added: an added rule would win over the configured levels
        // (Logging:LogLevel:Default) and let Debug through. A default rule stands in for MinLevel if there is none.
        services.PostConfigure<LoggerFilterOptions>(options =>
        {
            if (!options.Rules.Any(rule => rule.ProviderName is null && rule.CategoryName is null))
            {
                options.Rules.Add(new LoggerFilterRule(null, null, options.MinLevel, null));
            }
            for (var i = 0; i < options.Rules.Count; i++)
            {
                var rule = options.Rules[i];
                options.Rules[i] = new LoggerFilterRule(rule.ProviderName, rule.CategoryName, rule.LogLevel, (provider, category, level) =>
                    (phase.Started || level < LogLevel.Error || category != HostCategory) && (rule.Filter?.Invoke(provider, category, level) ?? true));
            }
        });
        services.AddSingleton<IHostedService>(provider =>
        {
            // Started only when the whole start has succeeded: a step that fails in another service's StartedAsync
            // (the first admin key, made once the server listens) is still a failed start, reported in one line.
            provider.GetRequiredService<IHostApplicationLifetime>().ApplicationStarted.Register(phase.MarkStarted);
            return phase;
        });
        return services;
    }

    private sealed class StartPhase : IHostedLifecycleService
    {
        private volatile bool _started;

        public bool Started => _started;

        public void MarkStarted() => _started = true;

        public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
