using System.Text.Json;

namespace Tally.Client;

/// <summary>
/// The fields of a <c>PUT /counters/{name}</c> (create, or update). A property left unset is not sent: on create it takes
/// its default, on update it keeps its setting. Setting <see cref="Min"/> or <see cref="Max"/> to null removes that bound.
/// </summary>
public sealed class CounterSettings
{
    private long? _min;
    private long? _max;

    /// <summary>The value; on create, defaults to <see cref="Initial"/>.</summary>
    public long? Value { get; init; }

    /// <summary>What a reset returns to; on create, defaults to 0.</summary>
    public long? Initial { get; init; }

    /// <summary>The inclusive lower bound; null (set explicitly) removes it.</summary>
    public long? Min
    {
        get => _min;
        init
        {
            _min = value;
            MinIsSet = true;
        }
    }

    /// <summary>The inclusive upper bound; null (set explicitly) removes it.</summary>
    public long? Max
    {
        get => _max;
        init
        {
            _max = value;
            MaxIsSet = true;
        }
    }

    /// <summary>Whether <see cref="Min"/> was given (and is sent, null included).</summary>
    public bool MinIsSet { get; private init; }

    /// <summary>Whether <see cref="Max"/> was given (and is sent, null included).</summary>
    public bool MaxIsSet { get; private init; }

    internal void WriteMembers(Utf8JsonWriter json)
    {
        if (Value is { } value)
        {
            json.WriteNumber("value", value);
        }
        if (Initial is { } initial)
        {
            json.WriteNumber("initial", initial);
        }
        WriteBound(json, "min", MinIsSet, _min);
        WriteBound(json, "max", MaxIsSet, _max);
    }

    private static void WriteBound(Utf8JsonWriter json, string name, bool isSet, long? bound)
    {
        if (!isSet)
        {
            return;
        }
        if (bound is { } given)
        {
            json.WriteNumber(name, given);
        }
        else
        {
            json.WriteNull(name);
        }
    }
}
