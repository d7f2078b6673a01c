namespace Tally.Server.Counters;

/// <summary>Counter names: <c>^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$</c>, case-sensitive.</summary>
internal static class CounterName
{
    public const int MaxLength = 128;

    public static bool IsValid(string? name) =>
        name is { Length: > 0 and <= MaxLength } && IsAlphanumeric(name[0]) && AreNameChars(name.AsSpan(1));

    /// <summary>A listing prefix is any beginning of a valid name (or empty).</summary>
    public static bool IsValidPrefix(string? prefix) =>
        prefix is null || prefix.Length == 0 || IsValid(prefix);

    private static bool AreNameChars(ReadOnlySpan<char> chars)
    {
        foreach (var c in chars)
        {
            if (!IsAlphanumeric(c) && c is not ('.' or '_' or ':' or '-'))
            {
                return false;
            }
        }
        return true;
    }

    private static bool IsAlphanumeric(char c) => char.IsAsciiLetterOrDigit(c);
}
