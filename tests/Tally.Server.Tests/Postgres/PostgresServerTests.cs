using Npgsql;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Postgres;

/// <summary>The private PostgreSQL that store tests rely on: the right version, separate databases, data that survives a crash.</summary>
[Trait("Layer", "Process")]
[Collection(PostgresCollection.Name)]
public class PostgresServerTests(PostgresFixture postgres)
{
    [Fact]
    public async Task TheSharedServerIsPostgreSql15OnLoopbackWithFsyncOn()
    {
        await using var connection = new NpgsqlConnection(await postgres.CreateDatabaseAsync("smoke"));
        await connection.OpenAsync();

        var version = (string)(await Scalar(connection, "SELECT version()"))!;
        Assert.StartsWith("PostgreSQL 15.", version, StringComparison.Ordinal);
        Assert.Equal("on", await Scalar(connection, "SHOW fsync"));
        Assert.Equal("127.0.0.1", await Scalar(connection, "SHOW listen_addresses"));
        Assert.Equal("200", await Scalar(connection, "SHOW max_connections"));
    }

    [Fact]
    public async Task EachCreatedDatabaseIsSeparate()
    {
        var first = await postgres.CreateDatabaseAsync("separate");
        var second = await postgres.CreateDatabaseAsync("separate");
        Assert.NotEqual(new NpgsqlConnectionStringBuilder(first).Database, new NpgsqlConnectionStringBuilder(second).Database);

        await using (var connection = new NpgsqlConnection(first))
        {
            await connection.OpenAsync();
            await Execute(connection, "CREATE TABLE counters (name text PRIMARY KEY, value bigint NOT NULL)");
            await Execute(connection, "INSERT INTO counters VALUES ('a', 1)");
        }
        await using (var connection = new NpgsqlConnection(second))
        {
            await connection.OpenAsync();
            Assert.Null(await Scalar(connection, "SELECT to_regclass('counters')::text"));
        }
    }

    [Fact]
    public async Task CommittedDataSurvivesKillAndRestart()
    {
        // Its own server: the shared one must stay up for the other classes.
        await using var server = await PostgresServer.StartNewAsync();
        var connectionString = WithoutPooling(await server.CreateDatabaseAsync("crash"));
        await using (var connection = new NpgsqlConnection(connectionString))
        {
            await connection.OpenAsync();
            await Execute(connection, "CREATE TABLE counters (name text PRIMARY KEY, value bigint NOT NULL)");
            await Execute(connection, "INSERT INTO counters VALUES ('committed', 42)");
            // Left open in a transaction: the crash must lose it.
            await using var open = await connection.BeginTransactionAsync();
            await Execute(connection, "INSERT INTO counters VALUES ('uncommitted', 7)");

            var pid = server.ProcessId;
            await server.KillAsync();
            Assert.False(server.IsRunning);
            await server.StartAsync();
            Assert.NotEqual(pid, server.ProcessId);
        }

        await using (var connection = new NpgsqlConnection(connectionString))
        {
            await connection.OpenAsync();
            Assert.Equal(42L, await Scalar(connection, "SELECT value FROM counters WHERE name = 'committed'"));
            Assert.Equal(1L, await Scalar(connection, "SELECT count(*) FROM counters"));
        }
        Assert.Contains("database system was interrupted", server.Describe(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task StopAndStartKeepTheDataAndThePort()
    {
        await using var server = await PostgresServer.StartNewAsync();
        var connectionString = WithoutPooling(await server.CreateDatabaseAsync("restart"));
        await using (var connection = new NpgsqlConnection(connectionString))
        {
            await connection.OpenAsync();
            await Execute(connection, "CREATE TABLE t AS SELECT 1 AS x");
        }
        await server.StopAsync();
        await server.StartAsync();

        await using (var connection = new NpgsqlConnection(connectionString))
        {
            await connection.OpenAsync();
            Assert.Equal(1, await Scalar(connection, "SELECT x FROM t"));
        }
        Assert.DoesNotContain("database system was interrupted", server.Describe(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task DisposeStopsTheServerAndDeletesItsDirectory()
    {
        var server = await PostgresServer.StartNewAsync();
        var pid = server.ProcessId!.Value;
        await server.DisposeAsync();

        Assert.False(Directory.Exists(server.Directory));
        Assert.False(File.Exists($"/proc/{pid}/stat"), $"postgres (pid {pid}) still runs");
    }

    /// <summary>A pooled connection would outlive the server it was opened on.</summary>
    private static string WithoutPooling(string connectionString) =>
        new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false }.ConnectionString;

    private static async Task<object?> Scalar(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        var value = await command.ExecuteScalarAsync();
        return value is DBNull ? null : value;
    }

    private static async Task Execute(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }
}
