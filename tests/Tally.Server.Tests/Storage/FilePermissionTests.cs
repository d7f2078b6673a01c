using Tally.Server.Counters;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Storage;

/// <summary>
/// The data directory holds key hashes and stored responses: Tally creates it 0700 and every file in
/// it 0600 (SQLite's -wal and -shm take the database file's mode), and narrows files left wider.
/// </summary>
public class FilePermissionTests
{
    [Fact]
    public async Task ANewDataDirectoryAndEveryFileInItAreTheOwnersOnly()
    {
        using var parent = new TempDirectory();
        var dataDir = Path.Combine(parent.Path, "data");
        await using var store = StoreTesting.Create("sqlite", dataDir, new ManualClock(1_700_000_000_000));
        await store.OpenAsync(CancellationToken.None);
        await store.CommitAsync(CounterCommand.Increment("a", 1));

        Assert.Equal(FileModes.OwnerOnlyDirectory, FileModes.Of(dataDir));
        foreach (var file in (string[])["tally.db", "tally.db-wal", "tally.db-shm", "tally.lock"])
        {
            var path = Path.Combine(dataDir, file);
            Assert.True(File.Exists(path), $"{file} is missing");
            Assert.True(FileModes.OwnerOnlyFile == FileModes.Of(path), $"{file} has mode {FileModes.Of(path)}");
        }
    }

    [Fact]
    public async Task FilesLeftReadableByOthersAreNarrowedAtStartAndTheDirectoryIsLeftAsItIs()
    {
        using var dataDir = new TempDirectory();
        var clock = new ManualClock(1_700_000_000_000);
        var store = StoreTesting.Create("sqlite", dataDir.Path, clock);
        await store.OpenAsync(CancellationToken.None);
        await store.CommitAsync(CounterCommand.Increment("a", 1));
        await store.DisposeAsync();
        // As an older Tally left them (umask 022), in a directory someone opened up.
        const UnixFileMode Wide = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
        const UnixFileMode WideDirectory = FileModes.OwnerOnlyDirectory | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;
        File.WriteAllBytes(Path.Combine(dataDir.Path, "tally.db-wal"), []);
        foreach (var file in (string[])["tally.db", "tally.db-wal", "tally.lock"])
        {
            FileModes.Set(Path.Combine(dataDir.Path, file), Wide);
        }
        FileModes.Set(dataDir.Path, WideDirectory);

        store = StoreTesting.Create("sqlite", dataDir.Path, clock);
        await using (store)
        {
            await store.OpenAsync(CancellationToken.None);
            await store.CommitAsync(CounterCommand.Increment("a", 1));
            Assert.Equal(2L, (await store.GetAsync("a"))?.Value);

            foreach (var file in (string[])["tally.db", "tally.db-wal", "tally.db-shm", "tally.lock"])
            {
                var path = Path.Combine(dataDir.Path, file);
                Assert.True(FileModes.OwnerOnlyFile == FileModes.Of(path), $"{file} has mode {FileModes.Of(path)}");
            }
            // An existing directory may not be Tally's to change (a mount point, a shared parent): a warning, no chmod.
            Assert.Equal(WideDirectory, FileModes.Of(dataDir.Path));
        }
    }
}

internal static class FileModes
{
    public const UnixFileMode OwnerOnlyFile = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    public const UnixFileMode OwnerOnlyDirectory = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    public static UnixFileMode Of(string path) => OperatingSystem.IsWindows()
        ? throw new PlatformNotSupportedException("Tally's data file permissions are Unix file modes.")
        : File.GetUnixFileMode(path);

    public static void Set(string path, UnixFileMode mode)
    {
        if (OperatingSystem.IsWindows())
        {
            throw new PlatformNotSupportedException("Tally's data file permissions are Unix file modes.");
        }
        File.SetUnixFileMode(path, mode);
    }
}
