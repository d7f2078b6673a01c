namespace Tally.Server.Docs;

/// <summary>A counter name: the schema gets <see cref="Counters.CounterName.Pattern"/>.</summary>
[AttributeUsage(AttributeTargets.Property)]
internal sealed class CounterNamePatternAttribute : Attribute;
