namespace Tally.Server.Tests.Infrastructure;

/// <summary>A fresh directory under the system temp folder, deleted (best effort) on dispose.</summary>
public sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = Directory.CreateTempSubdirectory("tally-test-").FullName;
    }

    public string Path { get; }

    public static void Delete(string path)
    {
        try
        {
            if (Directory.Exists(path))
            {
                Directory.Delete(path, recursive: true);
            }
        }
        catch (IOException)
        {
            // A process still holding a file must not fail the test that owned the directory.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    public void Dispose() => Delete(Path);
}
