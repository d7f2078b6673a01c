using System.Globalization;
using System.Text;

namespace Tally.Server.Auth;

/// <summary>
/// API key names are printable text: they are shown in listings, logs and terminals, where a
/// control character, a bidi override or an invisible character could make one key look like another.
/// </summary>
internal static class KeyName
{
    /// <summary>In Unicode code points, so a name in any script gets the same room.</summary>
    public const int MaxLength = 100;

    /// <summary>Why <paramref name="name"/> is not a valid key name, in words for a person; null when it is valid.</summary>
    public static string? Check(string name)
    {
        if (name.Length == 0 || string.IsNullOrWhiteSpace(name))
        {
            return "'name' must not be empty or only spaces: say who or what the key is for.";
        }
        var length = 0;
        for (var at = 0; at < name.Length;)
        {
            if (Rune.DecodeFromUtf16(name.AsSpan(at), out var rune, out var consumed) != System.Buffers.OperationStatus.Done)
            {
                return $"'name' has an unpaired surrogate at character {at + 1}; send valid Unicode text.";
            }
            if (Refusal(rune) is { } why)
            {
                return $"'name' must be printable text; character {length + 1} is {Describe(rune)}, {why}.";
            }
            length++;
            at += consumed;
        }
        return length > MaxLength ? $"'name' must be at most {MaxLength} characters (it has {length})." : null;
    }

    private static string? Refusal(Rune rune) => Rune.GetUnicodeCategory(rune) switch
    {
        UnicodeCategory.Control => "a control character",
        // Bidi embeddings, overrides, isolates and marks (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F,
        // U+061C) and the zero-width characters are all format characters.
        UnicodeCategory.Format => IsBidiControl(rune.Value)
            ? "a bidirectional-text control, which can make text display in another order than it is stored"
            : "an invisible format character",
        UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator => "a line or paragraph separator",
        UnicodeCategory.PrivateUse => "a private-use code point, which has no agreed meaning",
        UnicodeCategory.OtherNotAssigned => "not an assigned Unicode character",
        UnicodeCategory.Surrogate => "a surrogate code point",
        _ => null,
    };

    private static bool IsBidiControl(int value) =>
        value is (>= 0x202A and <= 0x202E) or (>= 0x2066 and <= 0x2069) or 0x200E or 0x200F or 0x061C;

    private static string Describe(Rune rune) => $"U+{rune.Value:X4}";
}
