namespace Tally.Server.Counters;

/// <summary>Counter names: <see cref="Pattern"/>, case-sensitive.</summary>
internal static class CounterName
{
    public const int MaxLength = 128;

    /// <summary>What <see cref="IsValid"/> accepts, as the OpenAPI document and the problems state it ({0,127}: <see cref="MaxLength"/> - 1).</summary>
    public const string Pattern = "^" + Chars + "$";

    /// <summary>A listing prefix (<see cref="IsValidPrefix"/>): empty, or the beginning of a name.</summary>
    public const string PrefixPattern = "^(" + Chars + ")?$";

    private const string Chars = "[A-Za-z0-9][A-Za-z0-9._:-]{0,127}";

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
