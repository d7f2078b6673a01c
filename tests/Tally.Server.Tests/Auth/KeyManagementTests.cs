using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Tally.Server.Auth;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Auth;

public class KeyManagementTests
{
    [Fact]
    public async Task ACreatedKeyIsShownOnceAndWorksAtOnce()
    {
        await using var app = new TallyApplication("memory");
        var admin = app.CreateClient();

        var response = await admin.PostAsync("/admin/keys", Api.JsonBody("""{"name": "ci", "scopes": ["read", "write"], "prefix": "shop:"}"""));
        var text = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        Assert.True(response.Headers.CacheControl?.NoStore, "The secret must not be cached.");
        var body = JsonNode.Parse(text)!.AsObject();
        Assert.Equal(["id", "key", "name", "scopes", "prefix", "maxCounters", "maxAmount", "createdAt"], body.Select(member => member.Key));
        var key = (string)body["key"]!;
        Assert.StartsWith("tly_", key, StringComparison.Ordinal);
        Assert.True(key.Length >= 4 + 43, "32 random bytes, base64url.");
        Assert.Equal("ci", (string?)body["name"]);
        Assert.Equal(["read", "write"], body["scopes"]!.AsArray().Select(scope => (string)scope!));
        Assert.Equal("shop:", (string?)body["prefix"]);

        var ci = app.CreateClientWithKey(key);
        await (await ci.IncrementAsync("shop:orders")).ReadCounterAsync();
        await (await ci.IncrementAsync("blog:views")).ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");
    }

    [Fact]
    public async Task TheListingShowsEveryKeyButNoSecret()
    {
        await using var app = new TallyApplication();
        var admin = app.CreateClient();
        var first = await admin.CreateKeyAsync("web page", ["increment"], "page:");
        var second = await admin.CreateKeyAsync("dashboard", ["read"]);

        var response = await admin.GetAsync("/admin/keys");
        var text = await response.Content.ReadAsStringAsync();
        Assert.DoesNotContain(first.Key, text, StringComparison.Ordinal);
        Assert.DoesNotContain(second.Key, text, StringComparison.Ordinal);
        Assert.DoesNotContain("tly_", text, StringComparison.Ordinal);

        var items = JsonNode.Parse(text)!["items"]!.AsArray();
        Assert.Equal([first.Id, second.Id], items.Select(item => (string)item!["id"]!));
        foreach (var item in items)
        {
            Assert.Equal(["id", "name", "scopes", "prefix", "maxCounters", "maxAmount", "createdAt"], item!.AsObject().Select(member => member.Key));
        }
        Assert.Equal("page:", (string?)items[0]!["prefix"]);
        Assert.Equal(["increment"], items[0]!["scopes"]!.AsArray().Select(scope => (string)scope!));
    }

    [Fact]
    public async Task ARevokedKeyStopsWorkingAtOnceAndStaysRevoked()
    {
        await using var app = new TallyApplication();
        var admin = app.CreateClient();
        var created = await admin.CreateKeyAsync("soon gone", ["read", "write"]);
        var client = app.CreateClientWithKey(created.Key);
        await (await client.IncrementAsync("a")).ReadCounterAsync();

        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync($"/admin/keys/{created.Id}")).StatusCode);

        await (await client.IncrementAsync("a")).ReadProblemAsync(HttpStatusCode.Unauthorized, "unauthorized");
        Assert.Empty(await admin.ListKeysAsync());
        await (await admin.DeleteAsync($"/admin/keys/{created.Id}")).ReadProblemAsync(HttpStatusCode.NotFound, "key_not_found");
        Assert.Equal(1, (await admin.GetCounterAsync("a")).Value);

        await using var restarted = await app.RestartAsync();
        await (await restarted.CreateClientWithKey(created.Key).GetAsync("/counters/a")).ReadProblemAsync(HttpStatusCode.Unauthorized, "unauthorized");
    }

    /// <summary>
    /// Over Kestrel, one keep-alive connection that changes keys between requests: each request is its own key's (the
    /// connection keeps the last secret's hash, never the answer), and a key revoked in between fails on that connection at once.
    /// </summary>
    [Fact]
    public async Task OneConnectionThatChangesKeysIsEachKeyAndARevokedKeyFailsOnItAtOnce()
    {
        await using var app = new TallyApplication("memory");
        app.UseKestrel(0);
        app.StartServer();
        var address = app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>()
            .Features.Get<Microsoft.AspNetCore.Hosting.Server.Features.IServerAddressesFeature>()!.Addresses.Single();
        var opened = 0;
        using var handler = new SocketsHttpHandler
        {
            MaxConnectionsPerServer = 1,
            ConnectCallback = async (context, cancellationToken) =>
            {
                Interlocked.Increment(ref opened);
                var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
                await socket.ConnectAsync(context.DnsEndPoint, cancellationToken);
                return new System.Net.Sockets.NetworkStream(socket, ownsSocket: true);
            },
        };
        using var client = new HttpClient(handler) { BaseAddress = new Uri(address) };
        async Task<HttpResponseMessage> AsKey(string key, HttpMethod method, string path)
        {
            using var request = new HttpRequestMessage(method, path);
            request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
            return await client.SendAsync(request);
        }
        async Task<string> CallerId(string key)
        {
            var response = await AsKey(key, HttpMethod.Get, "/auth/me");
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"GET /auth/me answered {(int)response.StatusCode}: {text}");
            return (string)JsonNode.Parse(text)!["id"]!;
        }

        var reader = await app.CreateClient().CreateKeyAsync("reader", ["read"]);
        var writer = await app.CreateClient().CreateKeyAsync("writer", ["read", "write"]);
        Assert.Equal(reader.Id, await CallerId(reader.Key));
        Assert.Equal(writer.Id, await CallerId(writer.Key));
        Assert.Equal(writer.Id, await CallerId(writer.Key));
        Assert.Equal(reader.Id, await CallerId(reader.Key));
        await (await AsKey(reader.Key, HttpMethod.Post, "/counters/a/increment")).ReadProblemAsync(HttpStatusCode.Forbidden, "forbidden");
        // The secret before with its last character changed: not the same key.
        var altered = reader.Key[..^1] + (reader.Key[^1] == 'A' ? 'B' : 'A');
        await (await AsKey(altered, HttpMethod.Get, "/auth/me")).ReadProblemAsync(HttpStatusCode.Unauthorized, "unauthorized");
        Assert.Equal(reader.Id, await CallerId(reader.Key));

        Assert.Equal(HttpStatusCode.NoContent, (await AsKey(TallyApplication.AdminKey, HttpMethod.Delete, $"/admin/keys/{reader.Id}")).StatusCode);
        await (await AsKey(reader.Key, HttpMethod.Get, "/auth/me")).ReadProblemAsync(HttpStatusCode.Unauthorized, "unauthorized");
        Assert.Equal(writer.Id, await CallerId(writer.Key));
        Assert.Equal(1, opened);
    }

    [Fact]
    public async Task KeysSurviveARestartWithTheSqliteStore()
    {
        await using var app = new TallyApplication();
        var created = await app.CreateClient().CreateKeyAsync("durable", ["read"], "a");
        await app.CreateClient().SetUpCounterAsync("a1", """{"value": 3}""");

        await using var restarted = await app.RestartAsync();
        Assert.Equal(3, (await restarted.CreateClientWithKey(created.Key).GetCounterAsync("a1")).Value);
        var listed = Assert.Single(await restarted.CreateClient().ListKeysAsync());
        Assert.Equal(created.Id, (string?)listed!["id"]);
        Assert.Equal(created.CreatedAt, (DateTime)listed["createdAt"]!);
    }

    [Fact]
    public async Task AVersionOneDataFileGainsTheKeyTable()
    {
        using var dataDir = new TempDirectory();
        var onDataDir = new Dictionary<string, string?> { ["DataDir"] = dataDir.Path };
        await using (var app = new TallyApplication(settings: onDataDir))
        {
            await app.CreateClient().SetUpCounterAsync("kept", """{"value": 9}""");
        }

        // What Tally 1 left: no api_keys, counter_log or history table (a clean stop folded the log), none of version 4's columns,
        // none of the alert tables nor the history log, schema version 1.
        using (var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(dataDir.Path, "tally.db")};Pooling=False"))
        {
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = """
                DROP TABLE api_keys; DROP TABLE counter_log; DROP TABLE history; DROP INDEX idempotency_caller_created_at;
                ALTER TABLE counters DROP COLUMN created_by; ALTER TABLE idempotency DROP COLUMN format; ALTER TABLE idempotency DROP COLUMN size;
                DROP TABLE alerts; DROP TABLE alert_states; DROP TABLE alert_outbox; DROP TABLE alert_deliveries;
                DROP TABLE history_log; DROP TABLE history_folded;
                UPDATE tally_schema SET version = 1;
                """;
            command.ExecuteNonQuery();
        }

        await using var upgraded = new TallyApplication(settings: onDataDir);
        var admin = upgraded.CreateClient();
        Assert.Equal(9, (await admin.GetCounterAsync("kept")).Value);
        var created = await admin.CreateKeyAsync("after the upgrade", ["read"]);
        Assert.Equal(9, (await upgraded.CreateClientWithKey(created.Key).GetCounterAsync("kept")).Value);
    }

    [Theory]
    [InlineData("", "invalid_body")]
    [InlineData("[]", "invalid_body")]
    [InlineData("{\"name\": \"x\", \"scopes\": [\"read\"]", "invalid_json")]
    [InlineData("""{"scopes": ["read"]}""", "invalid_key_name")]
    [InlineData("""{"name": "", "scopes": ["read"]}""", "invalid_key_name")]
    [InlineData("""{"name": 5, "scopes": ["read"]}""", "invalid_key_name")]
    [InlineData("""{"name": "tab\there", "scopes": ["read"]}""", "invalid_key_name")]
    [InlineData("""{"name": "x"}""", "invalid_scopes")]
    [InlineData("""{"name": "x", "scopes": []}""", "invalid_scopes")]
    [InlineData("""{"name": "x", "scopes": "read"}""", "invalid_scopes")]
    [InlineData("""{"name": "x", "scopes": ["read", "delete"]}""", "invalid_scopes")]
    [InlineData("""{"name": "x", "scopes": ["READ"]}""", "invalid_scopes")]
    [InlineData("""{"name": "x", "scopes": ["read"], "prefix": "bad prefix"}""", "invalid_prefix")]
    [InlineData("""{"name": "x", "scopes": ["read"], "prefix": ":starts-badly"}""", "invalid_prefix")]
    [InlineData("""{"name": "x", "scopes": ["read"], "prefix": null}""", "invalid_prefix")]
    [InlineData("""{"name": "x", "scopes": ["admin"], "prefix": "shop:"}""", "invalid_prefix")]
    [InlineData("""{"name": "x", "scopes": ["read"], "expires": "never"}""", "invalid_body")]
    [InlineData("""{"name": "x", "scopes": ["\ud800"]}""", "invalid_body")]
    [InlineData("""{"name": "x", "scopes": ["read"], "prefix": "a\udc00"}""", "invalid_body")]
    [InlineData("""{"name": "x", "scopes": ["read"], "\ud800": 1}""", "invalid_body")]
    public async Task ABadKeyRequestIsRefusedWithItsCode(string body, string code)
    {
        await using var app = new TallyApplication("memory");
        var admin = app.CreateClient();
        var response = await admin.PostAsync("/admin/keys", body.Length == 0 ? null : Api.JsonBody(body));

        await response.ReadProblemAsync(HttpStatusCode.BadRequest, code);
        Assert.Empty(await admin.ListKeysAsync());
    }

    [Fact]
    public async Task NoSecretIsStoredInTheDataFile()
    {
        await using var app = new TallyApplication();
        var admin = app.CreateClient();
        var created = await admin.CreateKeyAsync("secretive", ["read", "write"]);
        await (await app.CreateClientWithKey(created.Key).IncrementAsync("a")).ReadCounterAsync();
        var revoked = await admin.CreateKeyAsync("revoked", ["read"]);
        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync($"/admin/keys/{revoked.Id}")).StatusCode);
        // Stopped (its connections closed and the WAL checkpointed) and started again on the same directory.
        await using var restarted = await app.RestartAsync();

        var files = Directory.GetFiles(app.DataDir).Where(file => Path.GetFileName(file).StartsWith("tally.db", StringComparison.Ordinal)).ToList();
        var bytes = files.SelectMany(File.ReadAllBytes).ToArray();
        foreach (var secret in new[] { created.Key, revoked.Key })
        {
            Assert.Equal(-1, bytes.AsSpan().IndexOf(Encoding.UTF8.GetBytes(secret)));
            Assert.Equal(-1, bytes.AsSpan().IndexOf(Convert.FromBase64String(ToBase64(secret["tly_".Length..]))));
        }
        // What is there is the hash: proof that these are the right bytes.
        Assert.NotEqual(-1, bytes.AsSpan().IndexOf(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(created.Key))));
        Assert.NotEqual(-1, bytes.AsSpan().IndexOf(Encoding.UTF8.GetBytes("secretive")));
        Assert.False(File.Exists(Path.Combine(app.DataDir, "admin.key")), "With an AdminKey configured, no key is generated.");
    }

    [Fact]
    public async Task NoSecretAppearsInTheLogs()
    {
        var logs = new CapturingLoggerProvider();
        await using var tally = new TallyApplication(settings: new Dictionary<string, string?> { ["AdminKey"] = "" });
        var console = new StringWriter();
        await using var app = tally.WithWebHostBuilder(builder =>
        {
            builder.ConfigureLogging(logging => logging.AddProvider(logs).SetMinimumLevel(LogLevel.Trace));
            builder.ConfigureTestServices(services => services.AddSingleton(new StartupConsole(console)));
        });
        _ = app.Services;
        var firstAdmin = (await File.ReadAllTextAsync(Path.Combine(tally.DataDir, "admin.key"))).Trim();
        var admin = app.CreateClientWithKey(firstAdmin);

        var created = await admin.CreateKeyAsync("logged", ["read", "write"]);
        await (await app.CreateClientWithKey(created.Key, asApiKeyHeader: true).IncrementAsync("a")).ReadCounterAsync();
        const string guess = "tly_guessedguessedguessedguessedguessedguessed";
        await (await app.CreateClientWithKey(guess).IncrementAsync("a")).ReadProblemAsync(HttpStatusCode.Unauthorized, "unauthorized");
        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync($"/admin/keys/{created.Id}")).StatusCode);
        await (await app.CreateClientWithKey(created.Key).IncrementAsync("a")).ReadProblemAsync(HttpStatusCode.Unauthorized, "unauthorized");

        Assert.Contains(logs.Entries, entry => entry.Contains(created.Id, StringComparison.Ordinal)); // the logs do talk about keys…
        foreach (var secret in new[] { firstAdmin, created.Key, guess })
        {
            Assert.DoesNotContain(secret, logs.All, StringComparison.Ordinal); // …never their secrets
        }
        Assert.Contains(firstAdmin, console.ToString(), StringComparison.Ordinal);
    }

    private static string ToBase64(string base64Url)
    {
        var text = base64Url.Replace('-', '+').Replace('_', '/');
        return text.PadRight(text.Length + ((4 - (text.Length % 4)) % 4), '=');
    }
}
