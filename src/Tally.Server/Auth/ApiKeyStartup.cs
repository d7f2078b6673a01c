using Microsoft.Extensions.Options;
using Tally.Server.Configuration;
using Tally.Server.Storage;

namespace Tally.Server.Auth;

/// <summary>Where the first admin key is shown: standard output (replaceable in tests).</summary>
internal sealed class StartupConsole(TextWriter output)
{
    public TextWriter Output { get; } = output;
}

/// <summary>
/// Loads the keys at start-up (after the counter store has opened the data file) and, with
/// <c>Auth=on</c>, no <c>AdminKey</c> and no stored key, creates the first admin key: printed once
/// to standard output and, with <c>Store=sqlite</c>, written to <c>&lt;DataDir&gt;/admin.key</c> (mode 0600).
/// With <c>Store=memory</c> there is no file: the key lives only as long as the process; with a shared store
/// (postgres, redis) there is no file either, and the store keeps only the key's hash. At every
/// later start the log says where that key is (never the key), or the file goes if its key was revoked.
/// The keys are loaded before the server listens; the first admin key is made only once it does
/// (<see cref="StartedAsync"/>, after every start step, the server's binding included): a start that fails,
/// such as on a port already in use, prints no secret and writes no <c>admin.key</c>.
/// </summary>
internal sealed class ApiKeyStartup(ApiKeyStore keys, AdminKeyFile adminKeyFile, IOptions<TallyOptions> options, StartupConsole console,
    ILogger<ApiKeyStartup> logger)
    : IHostedLifecycleService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await keys.OpenAsync(cancellationToken);
        adminKeyFile.Report(keys);
        if (options.Value.Auth == AuthMode.Off)
        {
            logger.LogWarning("AUTH IS OFF (Auth=off): every request acts as an admin without a key. Anyone who can reach this " +
                "service can read, change and delete every counter and manage keys. Use it only for local development.");
        }
    }

    /// <summary>
    /// Runs once every service has started, the server listening. Requests that arrive in between are
    /// refused (401): there is no key yet. A failure here still fails the start (exit code 2).
    /// </summary>
    public async Task StartedAsync(CancellationToken cancellationToken)
    {
        if (options.Value.Auth != AuthMode.Off && !keys.HasConfiguredAdminKey && keys.Count == 0)
        {
            await CreateFirstAdminKeyAsync(cancellationToken);
        }
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private async Task CreateFirstAdminKeyAsync(CancellationToken cancellationToken)
    {
        if (await keys.CreateFirstAdminAsync(cancellationToken) is not var (key, secret))
        {
            return; // another instance sharing the store created it first
        }
        var file = adminKeyFile.Path;
        if (file is not null)
        {
            try
            {
                await adminKeyFile.WriteAsync(secret, cancellationToken);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Without the file the key could be lost with the console output: take it back and stop.
                await keys.RevokeAsync(key.Id, keepAnAdminKey: false, CancellationToken.None);
                throw new StoreStartupException($"The first admin key cannot be written to {file} ({ex.Message}).", ex);
            }
        }

        // Printed once, straight to standard output: never through the logger, whose output may be shipped elsewhere.
        var output = console.Output;
        await output.WriteLineAsync($"""

            ================================================================================
            Tally created its first admin key. It is shown this once:

                {secret}

            {(file is not null ? $"It is also in {file} (readable by this user only)."
                : options.Value.Store == StoreKind.Memory ? "Store=memory: it is not saved anywhere and lasts as long as this process."
                : $"Store={options.Value.Store.ToString().ToLowerInvariant()} keeps only its hash: save it now, it cannot be shown again.")}
            Send it as 'Authorization: Bearer <key>'; create keys for clients with POST /admin/keys.
            ================================================================================

            """);
        await output.FlushAsync(cancellationToken);
        logger.LogWarning("Created the first admin key {KeyId}: printed to standard output{Where}", key.Id,
            file is null ? string.Empty : $" and written to {file}");
    }
}
