using System.ComponentModel;
using System.Globalization;
using System.Reflection;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration.CommandLine;
using Microsoft.Extensions.Configuration.EnvironmentVariables;
using Microsoft.Extensions.Configuration.Json;

namespace Tally.Server.Configuration;

/// <summary>
/// Checks the settings before the host is built, so that a typo or a bad value stops the start with a
/// sentence naming it, not with a binder exception or a silently ignored key.
/// </summary>
/// <remarks>
/// Tally's settings are derived from the options types by reflection: every public settable property of
/// <see cref="TallyOptions"/> is a root key, and every one of the types in <see cref="Sections"/> a key of its section.
/// <para>
/// What counts as Tally's own, and so must be a known key:
/// <list type="bullet">
/// <item>every key under the sections <c>RateLimit</c>, <c>Quotas</c>, <c>History</c>, <c>Events</c>, <c>Alerts</c>, <c>Auth:Jwt</c> and <c>Cors</c>;</item>
/// <item>every root key given on the command line, in <c>appsettings*.json</c>, or in a <c>TALLY_</c> environment
/// variable, except the framework's own root keys (<see cref="FrameworkRootKeys"/>: <c>Logging</c>, <c>urls</c>,
/// <c>Kestrel</c>, …), which belong to ASP.NET Core and are left to it.</item>
/// </list>
/// Environment variables without the <c>TALLY_</c> prefix are not checked for unknown names: of them only the
/// framework's settings are read (<c>Logging__LogLevel__Default</c>, …; <see cref="FrameworkEnvironmentVariablesSource"/>),
/// and the rest (<c>PATH</c>, <c>HOME</c>, a shell's <c>AUTH</c>, …) are none of Tally's business.
/// The values of Tally's settings are checked wherever they come from.
/// </para>
/// </remarks>
internal static class SettingsCheck
{
    /// <summary>Tally's options types and the configuration section each one is bound from (null: the root).</summary>
    public static readonly IReadOnlyList<(string? Section, Type Options)> Sections =
    [
        (null, typeof(TallyOptions)),
        (RateLimitOptions.Section, typeof(RateLimitOptions)),
        (QuotaOptions.Section, typeof(QuotaOptions)),
        (History.HistoryOptions.Section, typeof(History.HistoryOptions)),
        (Events.EventOptions.Section, typeof(Events.EventOptions)),
        (Alerts.AlertOptions.Section, typeof(Alerts.AlertOptions)),
        (Auth.JwtOptions.Section, typeof(Auth.JwtOptions)),
        (Http.CrossOriginOptions.Section, typeof(Http.CrossOriginOptions)),
    ];

    /// <summary>The environment variable prefix of Tally's settings.</summary>
    public const string EnvironmentPrefix = "TALLY_";

    /// <summary>
    /// <c>TALLY_URL</c> and <c>TALLY_KEY</c> belong to the <c>tally</c> command line: a shell that exports them for the
    /// CLI can still start the service, which reads neither.
    /// </summary>
    private static readonly IReadOnlySet<string> CliVariables = new HashSet<string>(["URL", "KEY"], StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// Root keys that belong to the framework: the web host's and the generic host's settings (taken from their
    /// constants) and the sections ASP.NET Core reads from configuration.
    /// </summary>
    public static readonly IReadOnlySet<string> FrameworkRootKeys = new[] { typeof(WebHostDefaults), typeof(HostDefaults) }
        .SelectMany(type => type.GetFields(BindingFlags.Public | BindingFlags.Static))
        .Where(field => field.FieldType == typeof(string))
        .Select(field => (string)field.GetValue(null)!)
        .Concat(["Logging", "AllowedHosts", "Kestrel", "ConnectionStrings", "hostBuilder"])
        .ToHashSet(StringComparer.OrdinalIgnoreCase);

    /// <summary>Every problem with the settings, one sentence each; empty when they are fine.</summary>
    public static IReadOnlyList<string> Problems<TConfiguration>(TConfiguration configuration)
        where TConfiguration : IConfigurationBuilder, IConfiguration
    {
        var problems = new List<string>();
        var reported = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (source, where) in TallysOwnSources(configuration))
        {
            var entries = new ConfigurationBuilder().Add(source).Build().AsEnumerable().ToList();
            foreach (var (key, value) in entries)
            {
                if (source is EnvironmentVariablesConfigurationSource && CliVariables.Contains(key))
                {
                    continue;
                }
                // An empty value on a key that others sit under is a section header (WebApplicationFactory passes those).
                var header = value == string.Empty && entries.Any(entry => entry.Key.StartsWith(key + ":", StringComparison.OrdinalIgnoreCase));
                if (value is not null && !header && UnknownKey(key) is { } hint && reported.Add(key))
                {
                    problems.Add($"unknown setting '{key}' {where(key)}{hint}");
                }
            }
        }
        foreach (var (section, options) in Sections)
        {
            foreach (var property in SettingsOf(options))
            {
                var key = section is null ? property.Name : $"{section}:{property.Name}";
                if (configuration[key] is { } value && BadValue(key, property.PropertyType, value) is { } problem)
                {
                    problems.Add(problem);
                }
            }
        }
        return problems;
    }

    /// <summary>The names of one options type's settings: its public properties with a public setter.</summary>
    public static IEnumerable<PropertyInfo> SettingsOf(Type options) =>
        options.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(property => property.SetMethod is { IsPublic: true });

    private static IEnumerable<(IConfigurationSource Source, Func<string, string> Where)> TallysOwnSources(IConfigurationBuilder builder)
    {
        foreach (var source in builder.Sources)
        {
            switch (source)
            {
                case CommandLineConfigurationSource:
                    yield return (source, _ => "on the command line");
                    break;
                case JsonConfigurationSource json:
                    yield return (source, _ => $"in {json.Path}");
                    break;
                case EnvironmentVariablesConfigurationSource { Prefix: { } prefix } when prefix.Equals(EnvironmentPrefix, StringComparison.OrdinalIgnoreCase):
                    yield return (source, key => $"environment variable {prefix}{key.Replace(":", "__", StringComparison.Ordinal)}");
                    break;
            }
        }
    }

    /// <summary>Null for a known key (or the framework's); else a hint to follow "unknown setting 'key'", maybe empty.</summary>
    private static string? UnknownKey(string key)
    {
        var parts = key.Split(':');
        if (FrameworkRootKeys.Contains(parts[0]))
        {
            return null;
        }
        // A section may have two parts (Auth:Jwt); a list setting takes an index (Cors:AllowedOrigins:0).
        var section = Sections.FirstOrDefault(entry => entry.Section is not null && key.StartsWith(entry.Section + ":", StringComparison.OrdinalIgnoreCase));
        if (section.Section is not null)
        {
            var settings = SettingsOf(section.Options).ToList();
            var names = settings.Select(property => property.Name).ToList();
            var rest = key[(section.Section.Length + 1)..].Split(':');
            var setting = settings.FirstOrDefault(property => property.Name.Equals(rest[0], StringComparison.OrdinalIgnoreCase));
            if (setting is not null && (rest.Length == 1 || (rest.Length == 2 && setting.PropertyType.IsArray && int.TryParse(rest[1], NumberStyles.None, CultureInfo.InvariantCulture, out _))))
            {
                return null;
            }
            return Suggestion(rest.Length == 1 ? rest[0] : null, names, $"{section.Section}:")
                + $"; the settings of {section.Section} are {string.Join(", ", names)}";
        }
        var rootNames = SettingsOf(typeof(TallyOptions)).Select(property => property.Name).ToList();
        if (parts.Length == 1 && rootNames.Contains(key, StringComparer.OrdinalIgnoreCase))
        {
            return null;
        }
        return Suggestion(parts.Length == 1 ? key : null, rootNames, string.Empty);
    }

    /// <summary>", did you mean 'X'?" for the closest known name within a couple of typos, else nothing.</summary>
    private static string Suggestion(string? name, IEnumerable<string> known, string prefix)
    {
        if (name is null)
        {
            return string.Empty;
        }
        var closest = known.Select(candidate => (candidate, distance: EditDistance(name.ToUpperInvariant(), candidate.ToUpperInvariant())))
            .OrderBy(entry => entry.distance)
            .FirstOrDefault();
        return closest.candidate is not null && closest.distance <= Math.Max(2, name.Length / 4) ? $" (did you mean '{prefix}{closest.candidate}'?)" : string.Empty;
    }

    private static int EditDistance(string a, string b)
    {
        var previous = Enumerable.Range(0, b.Length + 1).ToArray();
        for (var i = 1; i <= a.Length; i++)
        {
            var current = new int[b.Length + 1];
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            }
            previous = current;
        }
        return previous[b.Length];
    }

    private static string? BadValue(string key, Type type, string value)
    {
        var nullable = Nullable.GetUnderlyingType(type);
        if (nullable is not null && value.Length == 0)
        {
            return null; // empty: unset
        }
        type = nullable ?? type;
        if (type.IsArray)
        {
            // The binder reads a list from indexed keys only; a plain value would be dropped without a word.
            return value.Length == 0 ? null
                : $"{key} is a list: give each entry its own index, {key}:0, {key}:1, … (environment: {EnvironmentPrefix}{key.Replace(":", "__", StringComparison.Ordinal).ToUpperInvariant()}__0)";
        }
        if (type == typeof(string))
        {
            return null;
        }
        if (type.IsEnum)
        {
            var names = Enum.GetNames(type).Select(name => name.ToLowerInvariant()).ToList();
            return names.Contains(value.Trim(), StringComparer.OrdinalIgnoreCase)
                ? null
                : $"{key} must be one of {string.Join(", ", names)} (got '{value}')";
        }
        if (type == typeof(int) || type == typeof(long))
        {
            var whole = type == typeof(int)
                ? int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out _)
                : long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out _);
            return whole ? null : $"{key} must be a whole number{(type == typeof(int) ? $" up to {int.MaxValue}" : string.Empty)} (got '{value}')";
        }
        if (type == typeof(bool))
        {
            return bool.TryParse(value, out _) ? null : $"{key} must be true or false (got '{value}')";
        }
        return TypeDescriptor.GetConverter(type).IsValid(value) ? null : $"{key} cannot be read as {type.Name} (got '{value}')";
    }
}
