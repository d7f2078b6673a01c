using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Json.Schema;

namespace Tally.Server.Tests.Infrastructure;

/// <summary>
/// The service's own OpenAPI document as a checker of answers: a response's status must be documented for its
/// operation, its media type for that status, and a JSON body (or each line of JSON lines) must match the schema.
/// Schemas are checked with JsonSchema.Net (JSON Schema 2020-12, the dialect of OpenAPI 3.1).
/// </summary>
internal sealed partial class OpenApiContract
{
    private const string ProblemMediaType = "application/problem+json";
    private static readonly ConcurrentDictionary<string, OpenApiContract> Parsed = new(StringComparer.Ordinal);

    private readonly JsonObject _document;
    private readonly string _definitions;
    private readonly List<(string Method, string Template, Regex Path, JsonObject Operation)> _operations = [];
    private readonly ConcurrentDictionary<string, JsonSchema> _schemas = new(StringComparer.Ordinal);
    private int _schemaCount;

    private OpenApiContract(JsonObject document)
    {
        _document = document;
        _definitions = document["components"]?["schemas"]?.ToJsonString() ?? "{}";
        foreach (var (template, item) in document["paths"]!.AsObject())
        {
            var pattern = "^" + TemplateParameter().Replace(Regex.Escape(template).Replace("\\{", "{", StringComparison.Ordinal), "[^/]+") + "/?$";
            foreach (var (method, operation) in item!.AsObject())
            {
                _operations.Add((method.ToUpperInvariant(), template, new Regex(pattern, RegexOptions.CultureInvariant), operation!.AsObject()));
            }
        }
        // Literal paths before templated ones (/counters before /counters/{name}).
        _operations.Sort((a, b) => a.Template.Count(c => c == '{').CompareTo(b.Template.Count(c => c == '{')));
    }

    /// <summary>The contract of a document's text (parsed once per distinct text).</summary>
    public static OpenApiContract Of(string documentJson) =>
        Parsed.GetOrAdd(documentJson, text => new OpenApiContract(JsonNode.Parse(text)!.AsObject()));

    /// <summary>A contract built from a document the caller may have changed (not cached).</summary>
    public static OpenApiContract From(JsonObject document) => new(document);

    /// <summary>What is wrong with this answer, or nothing.</summary>
    public IReadOnlyList<string> Check(string method, string path, int status, string? contentType, ReadOnlySpan<byte> body)
    {
        var errors = new List<string>();
        var lookup = method == "HEAD" ? "GET" : method;
        var mediaType = contentType?.Split(';')[0].Trim().ToLowerInvariant();
        var match = _operations.FirstOrDefault(o => o.Method == lookup && o.Path.IsMatch(path));
        var what = $"{method} {path} answered {status}";
        if (match.Operation is null)
        {
            // Not an operation of the document (an unknown path or method): a problem must still be one.
            if (mediaType == ProblemMediaType && body.Length > 0)
            {
                Validate(errors, what, "#/components/schemas/ProblemDetails", body);
            }
            return errors;
        }
        what = $"{method} {path} ({match.Method} {match.Template}) answered {status}";
        var responses = match.Operation["responses"]?.AsObject();
        var response = responses?[status.ToString(System.Globalization.CultureInfo.InvariantCulture)] ?? responses?["default"];
        if (response is null)
        {
            errors.Add($"{what}, a status the document does not list for the operation (it lists {string.Join(", ", responses?.Select(r => r.Key) ?? [])}).");
            return errors;
        }
        if (body.Length == 0 || method == "HEAD" || mediaType is null)
        {
            return errors;
        }
        var content = response["content"]?.AsObject();
        if (content is null || !content.TryGetPropertyValue(mediaType, out var media))
        {
            errors.Add($"{what} with {mediaType}, which the document does not list for that status (it lists {string.Join(", ", content?.Select(c => c.Key) ?? [])}).");
            return errors;
        }
        if (media?["schema"] is not { } schema)
        {
            return errors;
        }
        var schemaText = schema.ToJsonString();
        if (mediaType is "application/json" or ProblemMediaType || mediaType.EndsWith("+json", StringComparison.Ordinal))
        {
            ValidateText(errors, what, schemaText, body);
        }
        else if (mediaType is "application/x-ndjson")
        {
            var line = 0;
            foreach (var text in System.Text.Encoding.UTF8.GetString(body).Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                ValidateText(errors, $"{what}, line {++line}", schemaText, System.Text.Encoding.UTF8.GetBytes(text));
            }
        }
        return errors;
    }

    /// <summary>Every example in the document's schemas checked against its own schema.</summary>
    public IReadOnlyList<string> CheckExamples()
    {
        var errors = new List<string>();
        foreach (var (name, schema) in _document["components"]!["schemas"]!.AsObject())
        {
            foreach (var example in schema?["examples"]?.AsArray() ?? [])
            {
                Validate(errors, $"the example of {name}", $"#/components/schemas/{name}", System.Text.Encoding.UTF8.GetBytes(example!.ToJsonString()));
            }
        }
        return errors;
    }

    private void Validate(List<string> errors, string what, string reference, ReadOnlySpan<byte> body) =>
        ValidateText(errors, what, new JsonObject { ["$ref"] = reference }.ToJsonString(), body);

    private void ValidateText(List<string> errors, string what, string schemaText, ReadOnlySpan<byte> body)
    {
        JsonDocument instance;
        try
        {
            instance = JsonDocument.Parse(body.ToArray());
        }
        catch (JsonException)
        {
            errors.Add($"{what} with a body that is not JSON: {Shown(body)}");
            return;
        }
        using (instance)
        {
            var results = SchemaFor(schemaText).Evaluate(instance.RootElement, new EvaluationOptions { OutputFormat = OutputFormat.List });
            if (!results.IsValid)
            {
                var reasons = (results.Details ?? []).Where(d => d.Errors is { Count: > 0 })
                    .SelectMany(d => d.Errors!.Select(e => $"{d.InstanceLocation}: {e.Value} ({d.EvaluationPath})")).Take(8);
                errors.Add($"{what} with a body that does not match its schema {schemaText}: {string.Join("; ", reasons)}. Body: {Shown(body)}");
            }
        }
    }

    /// <summary>One schema with the document's component schemas as its $defs, references rewritten to them.</summary>
    private JsonSchema SchemaFor(string schemaText) => _schemas.GetOrAdd(schemaText, text =>
    {
        var root = JsonNode.Parse(text)!.AsObject();
        root["$schema"] = "https://json-schema.org/draft/2020-12/schema";
        root["$defs"] = JsonNode.Parse(_definitions);
        var rewritten = root.ToJsonString().Replace("\"#/components/schemas/", "\"#/$defs/", StringComparison.Ordinal);
        var options = new BuildOptions { SchemaRegistry = new SchemaRegistry() };
        return JsonSchema.FromText(rewritten, options, new Uri($"https://tally.test/openapi/{Interlocked.Increment(ref _schemaCount)}"));
    });

    private static string Shown(ReadOnlySpan<byte> body)
    {
        var text = System.Text.Encoding.UTF8.GetString(body);
        return text.Length <= 400 ? text : text[..400] + "…";
    }

    [GeneratedRegex("\\{[^}/]+\\}")]
    private static partial Regex TemplateParameter();
}
