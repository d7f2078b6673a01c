namespace Tally.Server.Tests.Infrastructure;

/// <summary>
/// A private PostgreSQL server (<see cref="PostgresServer"/>) as an xunit fixture. Through <see cref="PostgresCollection"/>
/// one server serves every class in that collection for the whole run (starting one costs a second or two); each class
/// or test takes a database of its own with <see cref="CreateDatabaseAsync"/> and never sees another's data.
/// <code>
/// [Trait("Layer", "Process")]
/// [Collection(PostgresCollection.Name)]
/// public class PostgresStoreTests(PostgresFixture postgres)
/// {
///     [Fact]
///     public async Task Something()
///     {
///         var connectionString = await postgres.CreateDatabaseAsync();
///         ...
/// </code>
/// The shared server must not be stopped or killed (later classes use it): a crash test starts its own with
/// <see cref="PostgresServer.StartNewAsync"/>. xunit disposes the fixture after the collection's last class, which
/// stops the server and deletes its directory.
/// </summary>
public sealed class PostgresFixture : IAsyncLifetime
{
    private PostgresServer? _server;

    public PostgresServer Server => _server ?? throw new InvalidOperationException("The fixture has not been initialized.");

    /// <summary>A new, empty database; its connection string (user postgres, host 127.0.0.1, the server's port).</summary>
    public Task<string> CreateDatabaseAsync(string prefix = "tally") => Server.CreateDatabaseAsync(prefix);

    public async Task InitializeAsync() => _server = await PostgresServer.StartNewAsync();

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}

/// <summary>
/// The classes that share one PostgreSQL server. xunit runs the classes of a collection one after another (each
/// still in parallel with the other collections), so a class here may count on the server being up throughout.
/// </summary>
[CollectionDefinition(Name)]
public sealed class PostgresCollection : ICollectionFixture<PostgresFixture>
{
    public const string Name = "PostgreSQL";
}
