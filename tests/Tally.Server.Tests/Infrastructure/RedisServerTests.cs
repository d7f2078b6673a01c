using StackExchange.Redis;

namespace Tally.Server.Tests.Infrastructure;

/// <summary>The private Redis that Redis store tests rely on: durable by default, emptied on demand, data that survives a crash.</summary>
[Trait("Layer", "Process")]
public class RedisServerTests(RedisFixture redis) : IClassFixture<RedisFixture>
{
    [Fact]
    public async Task TheFixturesServerIsRedis7OnLoopbackWritingEveryCommandToTheAppendOnlyFile()
    {
        await using var connection = await ConnectAsync(await redis.ResetAsync());
        var server = connection.GetServer(connection.GetEndPoints().Single());

        Assert.StartsWith("7.", server.Version.ToString(), StringComparison.Ordinal);
        Assert.Equal("yes", await ConfigAsync(server, "appendonly"));
        Assert.Equal("always", await ConfigAsync(server, "appendfsync"));
        Assert.Equal("", await ConfigAsync(server, "save"));
        Assert.Equal("127.0.0.1", await ConfigAsync(server, "bind"));
        Assert.Equal(redis.Server.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), await ConfigAsync(server, "port"));
        Assert.Equal($"127.0.0.1:{redis.Server.Port}", redis.Server.ConfigurationString);
    }

    [Fact]
    public async Task ResetEmptiesEveryDatabaseAndTheFunctionLibrary()
    {
        await using (var connection = await ConnectAsync(await redis.ResetAsync()))
        {
            await connection.GetDatabase(0).StringSetAsync("left", "over");
            await connection.GetDatabase(5).StringSetAsync("left", "over");
            await connection.GetDatabase().ExecuteAsync("FUNCTION", "LOAD", "#!lua name=leftover\nredis.register_function('leftover', function() return 1 end)");
        }

        await using (var connection = await ConnectAsync(await redis.ResetAsync()))
        {
            Assert.False(await connection.GetDatabase(0).KeyExistsAsync("left"));
            Assert.False(await connection.GetDatabase(5).KeyExistsAsync("left"));
            Assert.Empty((RedisResult[])(await connection.GetDatabase().ExecuteAsync("FUNCTION", "LIST"))!);
        }
    }

    [Fact]
    public async Task AcknowledgedWritesSurviveKillAndRestartOnTheSamePort()
    {
        // Its own server: the fixture's must stay up for the class's other tests.
        await using var server = await RedisServer.StartNewAsync();
        await using (var connection = await ConnectAsync(server.ConfigurationString))
        {
            var database = connection.GetDatabase();
            for (var i = 0; i < 100; i++)
            {
                await database.StringIncrementAsync("acknowledged");
            }
            await database.ExecuteAsync("FUNCTION", "LOAD", "#!lua name=kept\nredis.register_function('kept', function() return 7 end)");
        }
        var pid = server.ProcessId;
        var port = server.Port;

        await server.KillAsync();
        Assert.False(server.IsRunning);
        await server.StartAsync();

        Assert.NotEqual(pid, server.ProcessId);
        Assert.Equal(port, server.Port);
        await using (var connection = await ConnectAsync(server.ConfigurationString))
        {
            var database = connection.GetDatabase();
            Assert.Equal(100L, (long)await database.StringGetAsync("acknowledged"));
            Assert.Equal(7L, (long)await database.ExecuteAsync("FCALL", "kept", "0"));
        }
        Assert.Contains("DB loaded from append only file", server.Describe(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task RestartKeepsTheDataAfterACleanShutdown()
    {
        await using var server = await RedisServer.StartNewAsync();
        await using (var connection = await ConnectAsync(server.ConfigurationString))
        {
            await connection.GetDatabase().StringSetAsync("kept", "yes");
        }

        await server.RestartAsync();

        await using (var connection = await ConnectAsync(server.ConfigurationString))
        {
            Assert.Equal("yes", (string?)await connection.GetDatabase().StringGetAsync("kept"));
        }
        Assert.Contains("User requested shutdown", server.Describe(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AServerStartedWithoutTheAppendOnlyFileLosesItsDataInACrash()
    {
        await using var server = await RedisServer.StartNewAsync(new Dictionary<string, string> { ["appendonly"] = "no" });
        await using (var connection = await ConnectAsync(server.ConfigurationString))
        {
            var config = connection.GetServer(connection.GetEndPoints().Single());
            Assert.Equal("no", await ConfigAsync(config, "appendonly"));
            Assert.Equal("", await ConfigAsync(config, "save"));
            await connection.GetDatabase().StringSetAsync("volatile", "yes");
        }

        await server.KillAsync();
        await server.StartAsync();

        await using (var connection = await ConnectAsync(server.ConfigurationString))
        {
            Assert.False(await connection.GetDatabase().KeyExistsAsync("volatile"));
        }
    }

    [Fact]
    public async Task OtherSettingsReplaceTheDefaultsButNotTheAddressOrDirectory()
    {
        await using var server = await RedisServer.StartNewAsync(new Dictionary<string, string> { ["appendfsync"] = "everysec" });
        await using (var connection = await ConnectAsync(server.ConfigurationString))
        {
            var config = connection.GetServer(connection.GetEndPoints().Single());
            Assert.Equal("yes", await ConfigAsync(config, "appendonly"));
            Assert.Equal("everysec", await ConfigAsync(config, "appendfsync"));
        }

        await Assert.ThrowsAsync<ArgumentException>(() => RedisServer.StartNewAsync(new Dictionary<string, string> { ["port"] = "6379" }));
        await Assert.ThrowsAsync<ArgumentException>(() => RedisServer.StartNewAsync(new Dictionary<string, string> { ["dir"] = "/tmp" }));
    }

    [Fact]
    public async Task DisposeKillsTheServerAndDeletesItsDirectory()
    {
        var server = await RedisServer.StartNewAsync();
        var pid = server.ProcessId!.Value;
        await server.DisposeAsync();

        Assert.False(Directory.Exists(server.Directory));
        Assert.False(File.Exists($"/proc/{pid}/stat"), $"redis-server (pid {pid}) still runs");
    }

    [Fact]
    public async Task AMissingBinaryFailsNamingTheDebianPackage()
    {
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => RedisServer.StartNewAsync(null, "/nonexistent/redis-server"));

        Assert.Equal("/nonexistent/redis-server is missing: test.sh must install the Debian package redis-server.", error.Message);
    }

    private static async Task<ConnectionMultiplexer> ConnectAsync(string configuration) =>
        await ConnectionMultiplexer.ConnectAsync($"{configuration},allowAdmin=true");

    private static async Task<string> ConfigAsync(IServer server, string name) =>
        (string)(await server.ConfigGetAsync(name)).Single().Value!;
}
