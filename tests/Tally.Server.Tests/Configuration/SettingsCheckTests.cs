using Microsoft.Extensions.Configuration;
using Tally.Server.Configuration;

namespace Tally.Server.Tests.Configuration;

/// <summary>The settings check on its own (the real server's exit code and stderr: Process/StartupFailureTests).</summary>
public class SettingsCheckTests
{
    private static IReadOnlyList<string> Check(params string[] args)
    {
        var configuration = new ConfigurationManager();
        configuration.AddCommandLine(args);
        return SettingsCheck.Problems(configuration);
    }

    [Fact]
    public void EveryPublicSettablePropertyOfTheOptionsTypesIsAKnownSetting()
    {
        var args = new List<string>();
        foreach (var (section, options) in SettingsCheck.Sections)
        {
            foreach (var property in SettingsCheck.SettingsOf(options))
            {
                var type = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
                var value = type.IsEnum ? Enum.GetNames(type)[0].ToLowerInvariant() : type == typeof(string) ? "some-text" : type == typeof(bool) ? "true" : "1";
                var index = type.IsArray ? ":0" : string.Empty; // a list takes indexed entries
                args.Add($"--{(section is null ? string.Empty : section + ":")}{property.Name.ToLowerInvariant()}{index}={value}");
            }
        }
        Assert.True(args.Count >= 18, $"Only {args.Count} settings found: {string.Join(' ', args)}");
        Assert.Empty(Check([.. args]));
    }

    [Fact]
    public void EveryOptionsTypeOfTheServerIsChecked()
    {
        // In any folder: a feature's options (History:*) may live with the feature.
        var optionsTypes = typeof(TallyOptions).Assembly.GetTypes()
            .Where(type => type.Namespace?.StartsWith("Tally.Server", StringComparison.Ordinal) == true && type.IsClass && !type.IsNested
                && type.Name.EndsWith("Options", StringComparison.Ordinal));
        Assert.All(optionsTypes, type => Assert.Contains(SettingsCheck.Sections, entry => entry.Options == type));
    }

    [Theory]
    [InlineData("--RateLimit:Enabled=true", "unknown setting 'RateLimit:Enabled' on the command line; the settings of RateLimit are PermitsPerSecond, Burst")] // a computed property, not a setting
    [InlineData("--IdempotencyRetention=01:00:00", "unknown setting 'IdempotencyRetention' on the command line")]
    [InlineData("--Durabilty=async", "unknown setting 'Durabilty' on the command line (did you mean 'Durability'?)")]
    [InlineData("--Quotas:MaxCountrs=1", "unknown setting 'Quotas:MaxCountrs' on the command line (did you mean 'Quotas:MaxCounters'?); the settings of Quotas are MaxCounters, DefaultMaxCounters, DefaultMaxAmount, IdempotencyBytesPerKey")]
    [InlineData("--Frobnicate=1", "unknown setting 'Frobnicate' on the command line")]
    [InlineData("--Store=mysql", "Store must be one of sqlite, memory, postgres, redis (got 'mysql')")]
    [InlineData("--Durability=1", "Durability must be one of sync, async (got '1')")]
    [InlineData("--MaxBodyBytes=1e6", "MaxBodyBytes must be a whole number up to 2147483647 (got '1e6')")]
    [InlineData("--Quotas:DefaultMaxAmount=lots", "Quotas:DefaultMaxAmount must be a whole number (got 'lots')")]
    [InlineData("--History:Enabled=maybe", "History:Enabled must be true or false (got 'maybe')")]
    [InlineData("--History:MinuteRetentionHour=5", "unknown setting 'History:MinuteRetentionHour' on the command line (did you mean 'History:MinuteRetentionHours'?); the settings of History are Enabled, MinuteRetentionHours, HourRetentionDays, DayRetentionYears")]
    [InlineData("--Auth:Jwt:Audiense=tally", "unknown setting 'Auth:Jwt:Audiense' on the command line (did you mean 'Auth:Jwt:Audience'?); the settings of Auth:Jwt are Authority, SigningKeysFile, Issuer, Audience")]
    [InlineData("--Cors:AllowedOrigins=https://a.example", "Cors:AllowedOrigins is a list: give each entry its own index, Cors:AllowedOrigins:0, Cors:AllowedOrigins:1, … (environment: TALLY_CORS__ALLOWEDORIGINS__0)")]
    [InlineData("--Cors:AllowedOrigins:first=https://a.example", "unknown setting 'Cors:AllowedOrigins:first' on the command line; the settings of Cors are AllowedOrigins")]
    public void ABadOrUnknownSettingIsNamed(string argument, string problem)
    {
        Assert.Equal([problem], Check(argument));
    }

    [Fact]
    public void TheFrameworksOwnKeysAndTheirCaseAreAccepted()
    {
        Assert.Empty(Check("--urls=http://127.0.0.1:1", "--Logging:LogLevel:Default=Warning", "--Logging:Console:FormatterName=json",
            "--Kestrel:Limits:MaxRequestBodySize=10", "--AllowedHosts=*", "--ConnectionStrings:x=y", "--hostBuilder:reloadConfigOnChange=false",
            "--environment=Production", "--contentRoot=/tmp", "--shutdownTimeoutSeconds=5", "--durability=ASYNC", "--ratelimit:burst=3",
            "--Quotas:DefaultMaxAmount="));
    }

    /// <summary>WebApplicationFactory passes its settings as arguments, sections included with empty values.</summary>
    [Fact]
    public void AnEmptySectionHeaderAboveItsSettingsIsNotASetting()
    {
        Assert.Empty(Check("--RateLimit=", "--RateLimit:PermitsPerSecond=0", "--Quotas=", "--Quotas:MaxCounters=5"));
        Assert.Equal(["unknown setting 'Durabilty' on the command line (did you mean 'Durability'?)"], Check("--Durabilty="));
    }

    [Fact]
    public void AuthIsBothASettingAndTheSectionAboveJwt()
    {
        Assert.Empty(Check("--Auth=off", "--Auth:Jwt:Authority=https://id.example", "--Auth:Jwt:Issuer=https://id.example",
            "--Auth:Jwt:Audience=tally", "--Cors:AllowedOrigins:0=https://a.example", "--Cors:AllowedOrigins:1=https://b.example"));
    }

    [Fact]
    public void SeveralProblemsAreAllNamed()
    {
        Assert.Equal(2, Check("--Durabilty=async", "--Store=mysql").Count);
    }
}
