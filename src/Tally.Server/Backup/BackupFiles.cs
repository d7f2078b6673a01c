using Tally.Server.Storage.Sqlite;

namespace Tally.Server.Backup;

/// <summary>
/// The temporary copies behind <c>GET /admin/backup</c>, in <c>&lt;DataDir&gt;/backups</c>: one at a time
/// (a copy is as large as the data file, so concurrent backups could fill the disk), owner-only, and
/// deleted once sent, when the download fails or is aborted, and at start (a killed Tally cannot
/// delete its copy). Everything named <c>tally-*</c> in that directory is Tally's own scratch.
/// </summary>
internal sealed class BackupFiles(string dataDir, ILogger logger)
{
    private const string Prefix = "tally-";
    private int _busy;

    public string Directory => Path.Combine(dataDir, "backups");

    /// <summary>Starts the one backup that may run, or returns null while another runs (or is still being downloaded).</summary>
    public BackupLease? TryBegin()
    {
        if (Interlocked.CompareExchange(ref _busy, 1, 0) != 0)
        {
            return null;
        }
        try
        {
            // None runs, so whatever is here is left over.
            DeleteLeftovers();
            OwnerOnly.CreateDirectory(Directory);
            OwnerOnly.Restrict(Directory);
            var path = Path.Combine(Directory, $"{Prefix}{DateTime.UtcNow:yyyyMMddTHHmmssfff}-{Guid.NewGuid():N}.db");
            OwnerOnly.CreateFile(path);
            return new BackupLease(this, path);
        }
        catch
        {
            Volatile.Write(ref _busy, 0);
            throw;
        }
    }

    /// <summary>Deletes every temporary copy (and SQLite journal) in the backup directory.</summary>
    public void DeleteLeftovers()
    {
        if (!System.IO.Directory.Exists(Directory))
        {
            return;
        }
        foreach (var file in System.IO.Directory.EnumerateFiles(Directory, Prefix + "*"))
        {
            try
            {
                File.Delete(file);
                logger.LogDebug("Deleted the temporary backup file {File}", file);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                logger.LogWarning("The temporary backup file {File} could not be deleted ({Message})", file, ex.Message);
            }
        }
    }

    internal void End()
    {
        DeleteLeftovers();
        Volatile.Write(ref _busy, 0);
    }
}

/// <summary>The running backup: its file, deleted (and the next backup allowed) on dispose.</summary>
internal sealed class BackupLease(BackupFiles files, string path) : IDisposable
{
    private int _disposed;

    public string Path => path;

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            files.End();
        }
    }
}
