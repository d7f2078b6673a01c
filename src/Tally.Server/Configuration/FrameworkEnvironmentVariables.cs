using Microsoft.Extensions.Configuration.EnvironmentVariables;

namespace Tally.Server.Configuration;

/// <summary>
/// The host reads every environment variable without a prefix (<c>PATH</c>, <c>HOME</c>, <c>Logging__LogLevel__Default</c>, …).
/// This keeps from them only the framework's settings (<see cref="SettingsCheck.FrameworkRootKeys"/>: <c>Logging</c>,
/// <c>Kestrel</c>, <c>ConnectionStrings</c>, <c>urls</c>, …): Tally's own come from <c>TALLY_</c> variables, files and the
/// command line only. Otherwise a shell's <c>AUTH</c> (the README's curl header) would become <c>Auth</c>, and
/// <c>AUTH=off</c> in some environment would turn authentication off without a word.
/// </summary>
internal sealed class FrameworkEnvironmentVariablesSource : IConfigurationSource
{
    public IConfigurationProvider Build(IConfigurationBuilder builder) => new Provider();

    /// <summary>Replaces the host's unprefixed environment source with this one, in its place.</summary>
    public static void ReplaceUnprefixed(IConfigurationBuilder configuration)
    {
        for (var i = 0; i < configuration.Sources.Count; i++)
        {
            if (configuration.Sources[i] is EnvironmentVariablesConfigurationSource { Prefix: null or "" })
            {
                configuration.Sources[i] = new FrameworkEnvironmentVariablesSource();
            }
        }
    }

    private sealed class Provider : EnvironmentVariablesConfigurationProvider
    {
        public override void Load()
        {
            base.Load();
            Data = Data.Where(entry => SettingsCheck.FrameworkRootKeys.Contains(entry.Key.Split(':')[0]))
                .ToDictionary(StringComparer.OrdinalIgnoreCase);
        }
    }
}
