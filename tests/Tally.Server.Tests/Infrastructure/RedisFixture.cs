namespace Tally.Server.Tests.Infrastructure;

/// <summary>
/// A private Redis server (<see cref="RedisServer"/>) for one test class, through <see cref="IClassFixture{TFixture}"/>.
/// A server per class, not per collection: Redis Functions, pub/sub channels and <c>FLUSHALL</c> are server-wide, and a
/// server starts in a few tens of milliseconds, so classes run in parallel without seeing each other. The tests of a
/// class run one after another; each starts from an empty server with <see cref="ResetAsync"/>:
/// <code>
/// [Trait("Layer", "Process")]
/// public class RedisKeyStoreTests(RedisFixture redis) : IClassFixture&lt;RedisFixture&gt;
/// {
///     [Fact]
///     public async Task Something()
///     {
///         var configuration = await redis.ResetAsync();   // empty: no keys, no functions
///         ...
/// </code>
/// The fixture's server must not be stopped or killed (the class's later tests use it): a crash test starts its own
/// with <see cref="RedisServer.StartNewAsync(IReadOnlyDictionary{string, string}?)"/>. xunit disposes the fixture
/// after the class's last test, which kills the server and deletes its directory.
/// </summary>
public sealed class RedisFixture : IAsyncLifetime
{
    private RedisServer? _server;

    public RedisServer Server => _server ?? throw new InvalidOperationException("The fixture has not been initialized.");

    /// <summary>Empties the server (every database, the function library, the script cache); returns its configuration string.</summary>
    public async Task<string> ResetAsync()
    {
        await Server.FlushAllAsync();
        return Server.ConfigurationString;
    }

    public async Task InitializeAsync() => _server = await RedisServer.StartNewAsync();

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}
