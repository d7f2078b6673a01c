using System.CommandLine;
using Microsoft.Extensions.DependencyInjection;
using Polly.CircuitBreaker;
using Polly.Timeout;
using Spectre.Console;
using Tally.Client;

namespace Tally.Cli;

/// <summary>The options every command takes, and how a command runs: the client, the exit codes.</summary>
internal static class Globals
{
    public const int Success = 0;
    public const int Usage = 1;
    public const int Problem = 2;
    public const int Unreachable = 3;

    public const string DefaultUrl = "http://127.0.0.1:5000";

    public static readonly Option<string?> Url = new("--url")
    {
        Description = $"The service's address (default: $TALLY_URL, else {DefaultUrl}).",
        Recursive = true,
    };

    public static readonly Option<string?> Key = new("--key")
    {
        Description = "The API key (default: $TALLY_KEY).",
        Recursive = true,
    };

    public static readonly Option<bool> Json = new("--json")
    {
        Description = "Print JSON for scripts instead of tables.",
        Recursive = true,
    };

    /// <summary>
    /// Standard output for people (tables, charts). Piped into a file or another program it has no terminal width, so
    /// it gets a wide one: a table is as wide as its content instead of wrapping numbers at 80 columns.
    /// </summary>
    public static IAnsiConsole Out { get; } = CreateOut();

    /// <summary>Standard output is a file or a pipe, not a terminal.</summary>
    public static bool Piped => Console.IsOutputRedirected;

    private static IAnsiConsole CreateOut()
    {
        if (!Piped)
        {
            return AnsiConsole.Console;
        }
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(Console.Out),
            Interactive = InteractionSupport.No,
        });
        console.Profile.Width = PipedWidth;
        return console;
    }

    private const int PipedWidth = 1000;

    /// <summary>Standard error, for messages and progress bars (so standard output stays data).</summary>
    public static IAnsiConsole Error { get; } = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });

    /// <summary>How long an ordinary command's attempt waits for the answer to begin before it is retried (then exit 3).</summary>
    public static readonly TimeSpan AttemptTimeout = TimeSpan.FromSeconds(10);

    /// <summary>The same for a stream or a transfer (watch, export, import, backup): an upload or a big backup takes a while.</summary>
    public static readonly TimeSpan TransferAttemptTimeout = TimeSpan.FromHours(1);

    /// <summary>Runs a command's body with a client; maps what went wrong to the exit codes.</summary>
    /// <param name="command">The command.</param>
    /// <param name="action">Its body.</param>
    /// <param name="transfer">A stream or a transfer: attempts get <see cref="TransferAttemptTimeout"/>, not <see cref="AttemptTimeout"/>.</param>
    public static void SetClientAction(this Command command, Func<ParseResult, TallyClient, CancellationToken, Task<int>> action, bool transfer = false) =>
        command.SetAction(async (parse, cancellationToken) =>
        {
            var url = parse.GetValue(Url) ?? Environment.GetEnvironmentVariable("TALLY_URL") ?? DefaultUrl;
            if (!Uri.TryCreate(url, UriKind.Absolute, out var baseAddress) || baseAddress.Scheme is not ("http" or "https"))
            {
                await Console.Error.WriteLineAsync($"tally: '{url}' is not an http(s) address (--url or TALLY_URL).");
                return Usage;
            }
            var key = parse.GetValue(Key) ?? Environment.GetEnvironmentVariable("TALLY_KEY");
            var services = new ServiceCollection();
            services.AddTallyClient(options =>
            {
                options.BaseAddress = baseAddress;
                options.ApiKey = string.IsNullOrEmpty(key) ? null : key;
                // A person waits at the terminal: retry briefly, then say what is wrong.
                options.MaxRetryAttempts = 2;
                options.RetryDelay = TimeSpan.FromMilliseconds(300);
                options.MaxRetryAfter = TimeSpan.FromSeconds(5);
                options.AttemptTimeout = transfer ? TransferAttemptTimeout : AttemptTimeout;
            });
            await using var provider = services.BuildServiceProvider();
            var client = provider.GetRequiredService<TallyClient>();
            try
            {
                return await action(parse, client, cancellationToken);
            }
            catch (TallyException problem)
            {
                await Console.Error.WriteLineAsync($"tally: {problem.Code}: {problem.Detail ?? problem.Title}");
                return Problem;
            }
            catch (Exception ex) when (ex is HttpRequestException or TimeoutRejectedException or BrokenCircuitException)
            {
                await Console.Error.WriteLineAsync($"tally: cannot reach {baseAddress}: {ex.Message}");
                return Unreachable;
            }
            catch (HttpIOException lost)
            {
                // The connection broke while an answer was being read (watch, export, backup).
                await Console.Error.WriteLineAsync($"tally: lost the connection to {baseAddress}: {lost.Message}");
                return Unreachable;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // A file the command reads or writes: the message names it.
                await Console.Error.WriteLineAsync($"tally: {ex.Message}");
                return Usage;
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return Success;
            }
            catch (UsageException usage)
            {
                await Console.Error.WriteLineAsync($"tally: {usage.Message}");
                return Usage;
            }
        });
}

/// <summary>A mistake in how the command was called that the parser cannot see (exit code 1).</summary>
internal sealed class UsageException(string message) : Exception(message);
