using System.Diagnostics;
using System.Net;
using Npgsql;
using Tally.Server.Tests.Events;
using Tally.Server.Tests.Infrastructure;
using Tally.Server.Tests.Process;

namespace Tally.Server.Tests.Postgres;

/// <summary>
/// The listening side of live events on a real PostgreSQL: the session that LISTENs comes from <c>PostgresListen</c>,
/// and when it is cut the instance listens again, ends its streams (their clients reconnect and start from the current
/// state), and hears the other instance again.
/// </summary>
[Trait("Layer", "Process")]
[Collection(PostgresCollection.Name)]
public sealed class PostgresEventRelayTests(PostgresFixture postgres)
{
    private const string ListenerName = "tally-events-listener";

    [Fact]
    public async Task TheListenerUsesPostgresListenAndComesBackWhenItsSessionIsCut()
    {
        var connectionString = await postgres.CreateDatabaseAsync();
        var listen = new NpgsqlConnectionStringBuilder(connectionString) { ApplicationName = ListenerName }.ConnectionString;
        using var dirA = new TempDirectory();
        using var dirB = new TempDirectory();
        await using var a = TallyProcess.Start(dirA.Path, "--Store", "postgres", "--Postgres", connectionString);
        await using var b = TallyProcess.Start(dirB.Path, "--Store", "postgres", "--Postgres", connectionString, "--PostgresListen", listen);
        await Task.WhenAll(a.WaitUntilReadyAsync(), b.WaitUntilReadyAsync());
        using var clientA = a.CreateClient();
        using var clientB = b.CreateClient();
        await using var admin = NpgsqlDataSource.Create(connectionString);

        var first = await ListenerAsync(admin, notPid: null, b);
        await CrossInstanceEvents.UntilBHearsAAsync(clientA, clientB);
        await using (var stream = await EventStreamClient.OpenAsync(clientB, "/counters/cut/events"))
        {
            Assert.Equal(HttpStatusCode.OK, (await clientA.PostAsync("/counters/cut/increment", null)).StatusCode);
            Assert.Equal(1, (await stream.NextAsync()).Counter.Value);

            await using (var terminate = admin.CreateCommand($"SELECT pg_terminate_backend({first})"))
            {
                await terminate.ExecuteScalarAsync();
            }
            // B listens again, and ends the streams that may have missed something meanwhile.
            await stream.ReadToEndAsync(TimeSpan.FromSeconds(15));
        }
        await ListenerAsync(admin, notPid: first, b);
        await CrossInstanceEvents.UntilBHearsAAsync(clientA, clientB);

        Assert.Equal(HttpStatusCode.OK, (await clientA.PostAsync("/counters/cut/increment", null)).StatusCode);
        await using var again = await EventStreamClient.OpenAsync(clientB, "/counters/cut/events");
        Assert.Equal(2, (await again.NextAsync()).Counter.Value); // the current state
        Assert.Equal(HttpStatusCode.OK, (await clientA.PostAsync("/counters/cut/increment", null)).StatusCode);
        Assert.Equal(3, (await again.NextAsync()).Counter.Value);
    }

    /// <summary>The pid of B's listening session (the one named by PostgresListen), once there is one other than <paramref name="notPid"/>.</summary>
    private static async Task<int> ListenerAsync(NpgsqlDataSource admin, int? notPid, TallyProcess b)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            await using var command = admin.CreateCommand(
                "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND pid <> $2");
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = ListenerName });
            command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = notPid ?? 0 });
            if (await command.ExecuteScalarAsync() is int pid)
            {
                return pid;
            }
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(15), $"No LISTEN session named {ListenerName}.\n{b.Describe()}");
            await Task.Delay(50);
        }
    }
}
