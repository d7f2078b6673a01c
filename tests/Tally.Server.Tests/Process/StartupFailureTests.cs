using System.Net;
using System.Net.Sockets;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Process;

/// <summary>
/// Bad configuration, a port in use or an unusable data directory: the real server exits with code 2 at once,
/// saying why in one line on stderr, without a stack trace anywhere.
/// </summary>
[Trait("Layer", "Process")]
public class StartupFailureTests
{
    [Theory]
    [InlineData(new[] { "--Store", "redis" }, "Store=redis needs a configuration string: set Redis (or ConnectionStrings:Redis)")]
    [InlineData(new[] { "--Store", "mysql" }, "Store must be one of sqlite, memory, postgres, redis (got 'mysql')")]
    [InlineData(new[] { "--Durability", "maybe" }, "Durability must be one of sync, async (got 'maybe')")]
    [InlineData(new[] { "--Durability", "fast" }, "Durability must be one of sync, async (got 'fast')")]
    [InlineData(new[] { "--Auth", "sometimes" }, "Auth must be one of on, off (got 'sometimes')")]
    [InlineData(new[] { "--MaxBatchSize", "0" }, "MaxBatchSize")]
    [InlineData(new[] { "--FlushIntervalMs", "lots" }, "FlushIntervalMs must be a whole number")]
    [InlineData(new[] { "--Quotas:MaxCounters", "0" }, "Quotas:MaxCounters")]
    [InlineData(new[] { "--Quotas:DefaultMaxAmount", "abc" }, "Quotas:DefaultMaxAmount must be a whole number")]
    [InlineData(new[] { "--RateLimit:Burst", "0" }, "RateLimit:Burst")]
    [InlineData(new[] { "--Events:MaxStreamsPerKey", "0" }, "Events:MaxStreamsPerKey must be from 1 to 1000000 (got 0)")]
    [InlineData(new[] { "--Events:HeartbeatIntervalMs", "soon" }, "Events:HeartbeatIntervalMs must be a whole number")]
    [InlineData(new[] { "--PostgresListen", "Host=db;Nonsense=1" }, "PostgresListen must be an Npgsql connection string")]
    [InlineData(new[] { "--Auth:Jwt:SigningKeysFile", "/nonexistent/jwks.json", "--Auth:Jwt:Issuer", "i", "--Auth:Jwt:Audience", "a" }, "Auth:Jwt:SigningKeysFile cannot be read ('/nonexistent/jwks.json': no such file)")]
    [InlineData(new[] { "--Auth:Jwt:Authority", "https://id.example" }, "Auth:Jwt:Issuer is required with Auth:Jwt:Authority")]
    [InlineData(new[] { "--Cors:AllowedOrigins:0", "https://blog.example/page" }, "Cors:AllowedOrigins:0 must be an origin such as https://blog.example")]
    public async Task BadSettingExitsWithCodeTwoAndOneLineNamingIt(string[] arguments, string named)
    {
        using var dataDir = new TempDirectory();
        await using var tally = TallyProcess.Start(dataDir.Path, arguments);

        await tally.AssertFailedStartAsync(named);
        Assert.False(File.Exists(Path.Combine(dataDir.Path, "tally.db")), "Nothing may be written with a bad configuration.");
    }

    [Theory]
    [InlineData("--Durabilty", "async", "unknown setting 'Durabilty' on the command line (did you mean 'Durability'?)")]
    [InlineData("--RateLimit:PermitsPerSecnd", "5", "unknown setting 'RateLimit:PermitsPerSecnd' on the command line (did you mean 'RateLimit:PermitsPerSecond'?)")]
    [InlineData("--Quotas:MaxCountrs", "1", "unknown setting 'Quotas:MaxCountrs' on the command line (did you mean 'Quotas:MaxCounters'?)")]
    [InlineData("--Quotas:Anything:Deeper", "1", "unknown setting 'Quotas:Anything:Deeper'")]
    [InlineData("--Events:MaxStream", "1", "unknown setting 'Events:MaxStream' on the command line (did you mean 'Events:MaxStreams'?)")]
    public async Task MisspelledSettingIsNamedAndStopsTheStart(string argument, string value, string named)
    {
        using var dataDir = new TempDirectory();
        await using var tally = TallyProcess.Start(dataDir.Path, argument, value);

        await tally.AssertFailedStartAsync(named);
    }

    [Theory]
    [InlineData("TALLY_DURABILTY", "async", "unknown setting 'DURABILTY' environment variable TALLY_DURABILTY (did you mean 'Durability'?)")]
    [InlineData("TALLY_QUOTAS__MAXCOUNTRS", "1", "unknown setting 'QUOTAS:MAXCOUNTRS' environment variable TALLY_QUOTAS__MAXCOUNTRS")]
    [InlineData("TALLY_STORE", "mysql", "Store must be one of sqlite, memory, postgres, redis (got 'mysql')")]
    public async Task BadTallyEnvironmentVariableIsNamedAndStopsTheStart(string variable, string value, string named)
    {
        using var dataDir = new TempDirectory();
        await using var tally = TallyProcess.Start(dataDir.Path, new Dictionary<string, string> { [variable] = value });

        await tally.AssertFailedStartAsync(named);
    }

    /// <summary>
    /// Tally's settings come from TALLY_ variables only: a shell's AUTH (the README's curl header), or AUTH=off left in
    /// some environment, neither stops the start nor turns authentication off. The framework's unprefixed ones still count.
    /// </summary>
    [Fact]
    public async Task UnprefixedEnvironmentVariablesDoNotSetTallysSettings()
    {
        using var dataDir = new TempDirectory();
        var environment = new Dictionary<string, string>
        {
            ["AUTH"] = "off", ["STORE"] = "memory", ["DURABILITY"] = "async", ["Logging__LogLevel__Default"] = "Error",
        };
        await using var tally = TallyProcess.Start(dataDir.Path, environment);
        await tally.WaitUntilReadyAsync();

        using var anonymous = new HttpClient { BaseAddress = tally.BaseAddress };
        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, (await anonymous.PostAsync("/counters/env/increment", null)).StatusCode);
        using var admin = tally.CreateClient();
        Assert.Equal(System.Net.HttpStatusCode.OK, (await admin.PostAsync("/counters/env/increment", null)).StatusCode);
        Assert.True(File.Exists(Path.Combine(dataDir.Path, "tally.db")), "STORE=memory must not have chosen the memory store");
        Assert.Equal(string.Empty, tally.StandardError);
    }

    /// <summary>The framework's own root keys, and environment variables without the TALLY_ prefix, are not Tally's to refuse.</summary>
    [Fact]
    public async Task FrameworkSettingsAndOtherEnvironmentVariablesDoNotStopTheStart()
    {
        using var dataDir = new TempDirectory();
        // TALLY_URL and TALLY_KEY are the tally command line's: one shell runs both.
        var environment = new Dictionary<string, string>
        {
            ["DURABILTY"] = "async", ["QUOTAS_MAXCOUNTRS"] = "1", ["TALLY_URL"] = "http://127.0.0.1:1", ["TALLY_KEY"] = "tly_not_the_service_s",
        };
        await using var tally = TallyProcess.Start(dataDir.Path, environment,
            "--Logging:LogLevel:Default", "Warning", "--Kestrel:Limits:MaxRequestLineSize", "16384",
            "--environment", "Production", "--AllowedHosts", "*", "--ConnectionStrings:Unused", "x",
            "--Quotas:MaxCounters", "500", "--RateLimit:Burst", "10");

        await tally.WaitUntilReadyAsync();
        Assert.Equal(string.Empty, tally.StandardError);
    }

    [Fact]
    public async Task PortAlreadyInUseExitsWithCodeTwoNamingTheAddress()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var address = $"http://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}";
        using var dataDir = new TempDirectory();
        await using var tally = TallyProcess.Start(dataDir.Path, "--urls", address);

        await tally.AssertFailedStartAsync($"urls: Failed to bind to address {address}: address already in use");
    }

    /// <summary>The first admin key is made once the server listens: a start that cannot bind shows and writes no secret.</summary>
    [Fact]
    public async Task PortAlreadyInUseCreatesNoFirstAdminKeyAndPrintsNoSecret()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var address = $"http://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}";
        using var dataDir = new TempDirectory();
        await using var tally = TallyProcess.Start(dataDir.Path, "--urls", address, "--AdminKey=");

        await tally.AssertFailedStartAsync($"urls: Failed to bind to address {address}: address already in use");
        Assert.False(File.Exists(Path.Combine(dataDir.Path, "admin.key")), $"A failed start wrote admin.key.\n{tally.Describe()}");
        Assert.DoesNotContain("tly_", tally.StandardOutput + tally.StandardError, StringComparison.Ordinal);

        // The next start that can listen makes the first admin key as before.
        listener.Stop();
        await using var next = TallyProcess.Start(dataDir.Path, "--AdminKey=");
        await next.WaitUntilReadyAsync();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!next.StandardOutput.Contains("tly_", StringComparison.Ordinal) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }
        var secret = (await File.ReadAllTextAsync(Path.Combine(dataDir.Path, "admin.key"))).Trim();
        Assert.StartsWith("tly_", secret, StringComparison.Ordinal);
        Assert.Contains(secret, next.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AddressThatIsNotAUrlExitsWithCodeTwoNamingIt()
    {
        using var dataDir = new TempDirectory();
        await using var tally = TallyProcess.Start(dataDir.Path, "--urls", "nonsense");

        await tally.AssertFailedStartAsync("urls: Invalid url: 'nonsense'");
    }

    [Fact]
    public async Task PortOutOfRangeExitsWithCodeTwoNamingIt()
    {
        using var dataDir = new TempDirectory();
        await using var tally = TallyProcess.Start(dataDir.Path, "--urls", "http://127.0.0.1:99999");

        await tally.AssertFailedStartAsync("urls: a port must be from 0 to 65535");
    }

    [Fact]
    public async Task DataFileThatIsNotTallysExitsWithCodeTwoAndLeavesItAlone()
    {
        using var dataDir = new TempDirectory();
        var file = Path.Combine(dataDir.Path, "tally.db");
        await File.WriteAllTextAsync(file, "not a database");
        await using var tally = TallyProcess.Start(dataDir.Path);

        await tally.AssertFailedStartAsync("not a SQLite database");
        Assert.Equal("not a database", await File.ReadAllTextAsync(file));
    }

    [Fact]
    public async Task DataDirInUseByAnotherTallyExitsWithCodeTwo()
    {
        await using var running = new TallyApplication();
        _ = running.Services; // started: it holds the data directory
        await using var second = TallyProcess.Start(running.DataDir);

        await second.AssertFailedStartAsync("in use");
        Assert.Equal(HttpStatusCode.OK, (await running.CreateClient().GetAsync("/readyz")).StatusCode);
    }
}
