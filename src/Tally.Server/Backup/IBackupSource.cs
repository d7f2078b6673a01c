namespace Tally.Server.Backup;

/// <summary>A store that can copy itself, consistently, while it keeps serving.</summary>
internal interface IBackupSource
{
    /// <summary>Where the copies are written before they are sent, one at a time.</summary>
    BackupFiles Backups { get; }

    /// <summary>Writes a consistent copy of the committed data into the existing empty file at <paramref name="path"/>; a failure is an <see cref="IOException"/>.</summary>
    Task BackupToAsync(string path, CancellationToken cancellationToken);
}
