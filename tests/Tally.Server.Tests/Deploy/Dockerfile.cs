using System.Text.Json;
using System.Text.RegularExpressions;

namespace Tally.Server.Tests.Deploy;

/// <summary>One Dockerfile instruction, continuation lines joined, comment lines dropped.</summary>
internal sealed record Instruction(string Keyword, string Arguments, int Line)
{
    /// <summary>Whitespace-separated words, with leading <c>--flag</c> options split off.</summary>
    public (Dictionary<string, string> Flags, List<string> Words) Split()
    {
        var words = Arguments.Split((char[])[' ', '\t'], StringSplitOptions.RemoveEmptyEntries).ToList();
        var flags = new Dictionary<string, string>(StringComparer.Ordinal);
        while (words.Count > 0 && words[0].StartsWith("--", StringComparison.Ordinal))
        {
            var flag = words[0][2..].Split('=', 2);
            flags[flag[0]] = flag.Length > 1 ? flag[1] : string.Empty;
            words.RemoveAt(0);
        }
        return (flags, words);
    }

    /// <summary>The exec form of CMD, ENTRYPOINT and HEALTHCHECK CMD: a JSON array of strings.</summary>
    public static string[] ExecForm(string json, int line)
    {
        try
        {
            return JsonSerializer.Deserialize<string[]>(json) ?? throw new JsonException("null");
        }
        catch (JsonException ex)
        {
            throw new InvalidOperationException($"Line {line}: expected the exec form [\"…\"], got {json} ({ex.Message}).", ex);
        }
    }
}

/// <summary>A build stage: FROM image [AS name] and its instructions.</summary>
internal sealed record Stage(string Image, string? Name, List<Instruction> Instructions);

/// <summary>Just enough of the Dockerfile format to replay deploy/Dockerfile without a Docker engine.</summary>
internal static partial class Dockerfile
{
    public static List<Stage> Parse(string text)
    {
        var stages = new List<Stage>();
        var lines = text.Replace("\r\n", "\n").Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }
            var first = i + 1;
            var joined = line;
            while (joined.EndsWith('\\') && i + 1 < lines.Length)
            {
                joined = joined[..^1];
                var next = lines[++i].Trim();
                if (!next.StartsWith('#'))
                {
                    joined += " " + next;
                }
            }
            var match = InstructionLine().Match(joined);
            if (!match.Success)
            {
                throw new InvalidOperationException($"Line {first}: not an instruction: {joined}");
            }
            var instruction = new Instruction(match.Groups["keyword"].Value.ToUpperInvariant(), match.Groups["arguments"].Value.Trim(), first);
            if (instruction.Keyword == "FROM")
            {
                var words = instruction.Split().Words;
                stages.Add(new Stage(words[0], words.Count == 3 && words[1].Equals("AS", StringComparison.OrdinalIgnoreCase) ? words[2] : null, []));
            }
            else if (stages.Count == 0)
            {
                if (instruction.Keyword != "ARG")
                {
                    throw new InvalidOperationException($"Line {first}: {instruction.Keyword} before the first FROM.");
                }
            }
            else
            {
                stages[^1].Instructions.Add(instruction);
            }
        }
        return stages;
    }

    /// <summary>ENV's KEY=value pairs (values may be empty or double-quoted).</summary>
    public static IEnumerable<KeyValuePair<string, string>> EnvironmentOf(Instruction env)
    {
        foreach (Match pair in EnvPair().Matches(env.Arguments))
        {
            var value = pair.Groups["value"].Value;
            yield return new(pair.Groups["key"].Value, value.Length >= 2 && value[0] == '"' && value[^1] == '"' ? value[1..^1] : value);
        }
    }

    [GeneratedRegex(@"^(?<keyword>[A-Za-z]+)(?:\s+(?<arguments>.*))?$")]
    private static partial Regex InstructionLine();

    [GeneratedRegex("(?<key>[A-Za-z_][A-Za-z0-9_]*)=(?<value>\"[^\"]*\"|\\S*)")]
    private static partial Regex EnvPair();
}

/// <summary>
/// The patterns of a .dockerignore file (Go filepath.Match with <c>**</c>, later lines win, <c>!</c> re-includes).
/// A path is ignored when it or one of its parent folders matches.
/// </summary>
internal sealed class DockerIgnore
{
    private readonly List<(Regex Pattern, bool Include)> _rules = [];

    public DockerIgnore(string text)
    {
        foreach (var raw in text.Replace("\r\n", "\n").Split('\n'))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }
            var include = line.StartsWith('!');
            var pattern = (include ? line[1..] : line).Trim().TrimStart('/').TrimEnd('/');
            var regex = Regex.Escape(pattern)
                .Replace(@"\*\*/", "(?:.*/)?", StringComparison.Ordinal)
                .Replace(@"\*\*", ".*", StringComparison.Ordinal)
                .Replace(@"\*", "[^/]*", StringComparison.Ordinal)
                .Replace(@"\?", "[^/]", StringComparison.Ordinal);
            _rules.Add((new Regex($"^{regex}$", RegexOptions.CultureInvariant), include));
        }
    }

    /// <param name="relativePath">Relative to the build context, with '/' separators.</param>
    public bool IsIgnored(string relativePath)
    {
        var parts = relativePath.Split('/');
        for (var length = 1; length <= parts.Length; length++)
        {
            if (Matches(string.Join('/', parts[..length])))
            {
                return true;
            }
        }
        return false;
    }

    private bool Matches(string path)
    {
        var ignored = false;
        foreach (var (pattern, include) in _rules)
        {
            if (pattern.IsMatch(path))
            {
                ignored = !include;
            }
        }
        return ignored;
    }
}
