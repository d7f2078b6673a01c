using System.Text.Json;

namespace Tally.Client;

/// <summary>One operation of a batch (<c>POST /batch</c>). Build them with the static methods.</summary>
public sealed class BatchOperation
{
    private readonly string _op;
    private readonly long? _by;
    private readonly long? _ifMatch;
    private readonly CounterSettings? _settings;

    private BatchOperation(string op, string name, long? by = null, long? ifMatch = null, CounterSettings? settings = null)
    {
        _op = op;
        Name = name;
        _by = by;
        _ifMatch = ifMatch;
        _settings = settings;
    }

    /// <summary>The counter the operation is about.</summary>
    public string Name { get; }

    /// <summary>Add <paramref name="by"/> (1 to 2^63-1).</summary>
    public static BatchOperation Increment(string name, long by = 1, long? ifMatch = null) => new("increment", name, by, ifMatch);

    /// <summary>Subtract <paramref name="by"/> (1 to 2^63-1).</summary>
    public static BatchOperation Decrement(string name, long by = 1, long? ifMatch = null) => new("decrement", name, by, ifMatch);

    /// <summary>Create or update the counter's fields, as PUT.</summary>
    public static BatchOperation Set(string name, CounterSettings settings, long? ifMatch = null) => new("set", name, ifMatch: ifMatch, settings: settings);

    /// <summary>Read the counter.</summary>
    public static BatchOperation Get(string name) => new("get", name);

    /// <summary>Set the value back to its initial value.</summary>
    public static BatchOperation Reset(string name, long? ifMatch = null) => new("reset", name, ifMatch: ifMatch);

    /// <summary>Delete the counter.</summary>
    public static BatchOperation Delete(string name, long? ifMatch = null) => new("delete", name, ifMatch: ifMatch);

    internal void Write(Utf8JsonWriter json)
    {
        json.WriteStartObject();
        json.WriteString("op", _op);
        json.WriteString("name", Name);
        if (_by is { } by)
        {
            json.WriteNumber("by", by);
        }
        if (_ifMatch is { } version)
        {
            json.WriteNumber("ifMatch", version);
        }
        _settings?.WriteMembers(json);
        json.WriteEndObject();
    }
}
