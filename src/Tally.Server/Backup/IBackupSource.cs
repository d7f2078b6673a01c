namespace Tally.Server.Backup;

/// <summary>A store that can copy itself, consistently, while it keeps serving.</summary>
internal interface IBackupSource
{
    /// <summary>Writes a consistent copy of the committed data to a new file at <paramref name="path"/>.</summary>
    Task BackupToAsync(string path, CancellationToken cancellationToken);
}
