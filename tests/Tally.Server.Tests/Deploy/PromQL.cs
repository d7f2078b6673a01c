using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Tally.Server.Tests.Deploy;

/// <summary>The Grafana dashboard of deploy/grafana/dashboards.</summary>
internal static class Dashboard
{
    public const string RelativePath = "deploy/grafana/dashboards/tally.json";

    public static JsonObject Load() => JsonNode.Parse(File.ReadAllText(DeployFiles.PathOf(RelativePath)))!.AsObject();
}

/// <summary>
/// Just enough of PromQL to find the metric names an expression reads: strings, label matchers, ranges and
/// Grafana variables are dropped, then every identifier that is not a function, keyword or label list is a metric.
/// </summary>
internal static partial class PromQL
{
    private static readonly HashSet<string> Keywords = new(StringComparer.Ordinal)
    {
        "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "atan2",
        "inf", "nan", "start", "end",
        // Aggregation operators, which may be followed by `by (…)` instead of their parenthesis.
        "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile",
        "limitk", "limit_ratio",
    };

    // After these, a parenthesised list holds label names, not expressions.
    private static readonly HashSet<string> LabelLists = new(StringComparer.Ordinal)
    {
        "by", "without", "on", "ignoring", "group_left", "group_right",
    };

    /// <summary>Every "expr" of the dashboard (panels, rows, targets), in document order.</summary>
    public static IReadOnlyList<string> DashboardExpressions(JsonNode dashboard)
    {
        var expressions = new List<string>();
        Walk(dashboard, expressions);
        return expressions;

        static void Walk(JsonNode? node, List<string> found)
        {
            switch (node)
            {
                case JsonObject obj:
                    foreach (var (key, value) in obj)
                    {
                        if (key == "expr" && value is JsonValue text && text.TryGetValue<string>(out var expr))
                        {
                            found.Add(expr);
                        }
                        else
                        {
                            Walk(value, found);
                        }
                    }
                    break;
                case JsonArray array:
                    foreach (var item in array)
                    {
                        Walk(item, found);
                    }
                    break;
            }
        }
    }

    /// <summary>The metrics that the dashboard's template variables query, as in <c>label_values(tally_counters, instance)</c>.</summary>
    public static IEnumerable<string> TemplateVariableMetrics(JsonNode dashboard)
    {
        foreach (var variable in dashboard["templating"]?["list"]?.AsArray() ?? [])
        {
            var query = variable?["query"] switch
            {
                JsonObject obj => (string?)obj["query"],
                JsonValue value when value.TryGetValue<string>(out var text) => text,
                _ => null,
            };
            if (query is not null && LabelValues().Match(query) is { Success: true } match)
            {
                foreach (var name in MetricNames(match.Groups["selector"].Value))
                {
                    yield return name;
                }
            }
        }
    }

    /// <summary>The metric names an expression reads.</summary>
    public static IReadOnlySet<string> MetricNames(string expression)
    {
        var text = Strings().Replace(expression, " ");
        text = Braces().Replace(text, " ");
        text = Brackets().Replace(text, " ");
        text = Variables().Replace(text, " ");

        var names = new HashSet<string>(StringComparer.Ordinal);
        var tokens = Tokens().Matches(text).Select(m => m.Value).ToList();
        for (var i = 0; i < tokens.Count; i++)
        {
            var token = tokens[i];
            if (!IdentifierStart().IsMatch(token))
            {
                continue;
            }
            var next = i + 1 < tokens.Count ? tokens[i + 1] : null;
            if (LabelLists.Contains(token) && next == "(")
            {
                // Skip the label list up to its closing parenthesis.
                i += 2;
                while (i < tokens.Count && tokens[i] != ")")
                {
                    i++;
                }
                continue;
            }
            if (next == "(" || Keywords.Contains(token))
            {
                continue; // a function or aggregation, or a keyword
            }
            names.Add(token);
        }
        return names;
    }

    [GeneratedRegex("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")]
    private static partial Regex Strings();

    [GeneratedRegex(@"\{[^}]*\}")]
    private static partial Regex Braces();

    [GeneratedRegex(@"\[[^\]]*\]")]
    private static partial Regex Brackets();

    [GeneratedRegex(@"\$\{[^}]*\}|\$[A-Za-z_]\w*")]
    private static partial Regex Variables();

    // Numbers (with exponent and duration units) first, so that 1e3 or 5m never look like identifiers.
    [GeneratedRegex(@"\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[a-zA-Z]*|[A-Za-z_:][A-Za-z0-9_:]*|[()]|[^\sA-Za-z0-9_:()]+")]
    private static partial Regex Tokens();

    [GeneratedRegex(@"^[A-Za-z_:]")]
    private static partial Regex IdentifierStart();

    [GeneratedRegex(@"label_values\(\s*(?<selector>[^,]+?)\s*,")]
    private static partial Regex LabelValues();
}
