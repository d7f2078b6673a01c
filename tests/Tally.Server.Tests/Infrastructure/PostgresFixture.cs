namespace Tally.Server.Tests.Infrastructure;

/// <summary>
/// One PostgreSQL server for the whole test run (starting one costs a second or two): a class fixture, so classes
/// that use it still run in parallel. Each class or test takes a database of its own with
/// <see cref="CreateDatabaseAsync"/> and never sees another's data.
/// <code>
/// [Trait("Layer", "Process")]
/// public class PostgresStoreTests(PostgresFixture postgres) : IClassFixture&lt;PostgresFixture&gt;
/// {
///     [Fact]
///     public async Task Something()
///     {
///         var connectionString = await postgres.CreateDatabaseAsync();
///         ...
/// </code>
/// The shared server must not be stopped or killed (other classes are using it): a crash test starts its own
/// <see cref="PostgresServer"/>. The server is stopped and its directory deleted when the test process exits.
/// </summary>
public sealed class PostgresFixture : IAsyncLifetime
{
    private static readonly Lock s_lock = new();
    private static Task<PostgresServer>? s_server;
    private static bool s_stopRegistered;

    private PostgresServer? _server;

    /// <summary>The shared server (started by the first fixture).</summary>
    public PostgresServer Server => _server ?? throw new InvalidOperationException("The fixture has not been initialized.");

    /// <summary>A new, empty database on the shared server; its connection string (user postgres, 127.0.0.1, the server's port).</summary>
    public Task<string> CreateDatabaseAsync(string prefix = "tally") => Server.CreateDatabaseAsync(prefix);

    public async Task InitializeAsync() => _server = await Shared();

    public Task DisposeAsync() => Task.CompletedTask;

    private static Task<PostgresServer> Shared()
    {
        // Checked on every use, so a fast-layer test fails even when an earlier test started the server.
        PostgresServer.RequireLayer();
        lock (s_lock)
        {
            // A failed start is not cached: the next class tries again and reports its own failure.
            if (s_server is null || s_server.IsFaulted || s_server.IsCanceled)
            {
                s_server = PostgresServer.StartNewAsync();
                if (!s_stopRegistered)
                {
                    AppDomain.CurrentDomain.ProcessExit += StopShared;
                    s_stopRegistered = true;
                }
            }
            return s_server;
        }
    }

    private static void StopShared(object? sender, EventArgs e)
    {
        Task<PostgresServer>? server;
        lock (s_lock)
        {
            server = s_server;
            s_server = null;
        }
        if (server is { IsCompletedSuccessfully: true })
        {
            // The data is throwaway: SIGKILL is quickest, and the test process is on its way out.
            server.Result.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }
}
