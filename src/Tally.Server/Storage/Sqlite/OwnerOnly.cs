namespace Tally.Server.Storage.Sqlite;

/// <summary>
/// The data directory holds API key hashes and stored responses: what Tally creates there is for the
/// user it runs as only (directories 0700, files 0600). SQLite gives its -wal and -shm files the mode
/// of the database file, so creating that file 0600 before SQLite opens it covers them too.
/// On Windows, where there are no Unix modes, these do nothing.
/// </summary>
internal static class OwnerOnly
{
    public const UnixFileMode FilePermissions = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    public const UnixFileMode DirectoryPermissions = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const UnixFileMode GroupOrOther = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
        | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    /// <summary>Creates the directory (and missing parents) 0700; an existing one is left as it is.</summary>
    public static void CreateDirectory(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(path);
        }
        else
        {
            Directory.CreateDirectory(path, DirectoryPermissions);
        }
    }

    /// <summary>Whether group or others have any access to the file or directory.</summary>
    public static bool IsOpenToOthers(string path) =>
        !OperatingSystem.IsWindows() && (File.GetUnixFileMode(path) & GroupOrOther) != 0;

    /// <summary>The mode in octal (e.g. <c>755</c>), for messages.</summary>
    public static string ModeText(string path) =>
        OperatingSystem.IsWindows() ? "n/a" : Convert.ToString((int)File.GetUnixFileMode(path), 8);

    /// <summary>Creates an empty file 0600 if it does not exist yet.</summary>
    public static void CreateFile(string path)
    {
        using var file = Open(path, FileMode.OpenOrCreate, FileAccess.Write, FileShare.ReadWrite);
    }

    /// <summary>A file stream whose file, if this call creates it, is 0600.</summary>
    public static FileStream Open(string path, FileMode mode, FileAccess access, FileShare share, FileOptions options = FileOptions.None, int bufferSize = 4096)
    {
        var streamOptions = new FileStreamOptions { Mode = mode, Access = access, Share = share, Options = options, BufferSize = bufferSize };
        if (!OperatingSystem.IsWindows())
        {
            streamOptions.UnixCreateMode = FilePermissions;
        }
        return new FileStream(path, streamOptions);
    }

    /// <summary>
    /// Takes group and other access away from an existing file or directory (one created by an older Tally, or copied in).
    /// False when that is refused (a file of another user that this one may still write).
    /// </summary>
    public static bool Restrict(string path)
    {
        try
        {
            if (!OperatingSystem.IsWindows() && Path.Exists(path) && (File.GetUnixFileMode(path) & GroupOrOther) != 0)
            {
                File.SetUnixFileMode(path, File.GetUnixFileMode(path) & ~GroupOrOther);
            }
            return true;
        }
        catch (Exception ex) when (ex is UnauthorizedAccessException or IOException)
        {
            return false;
        }
    }
}
