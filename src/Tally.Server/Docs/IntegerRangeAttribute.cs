namespace Tally.Server.Docs;

/// <summary>An integer's inclusive range, written into the schema (<c>minimum</c>, <c>maximum</c>) exactly, as 64-bit integers.</summary>
[AttributeUsage(AttributeTargets.Property)]
internal sealed class IntegerRangeAttribute(long minimum, long maximum) : Attribute
{
    public long Minimum { get; } = minimum;

    public long Maximum { get; } = maximum;
}
