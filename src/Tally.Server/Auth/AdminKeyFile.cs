using System.Security.Cryptography;
using Microsoft.Extensions.Options;
using Tally.Server.Configuration;

namespace Tally.Server.Auth;

/// <summary>
/// <c>&lt;DataDir&gt;/admin.key</c>, where the first admin key's secret is saved (with <c>Store=sqlite</c>;
/// with <c>Store=memory</c> there is no file). Kept truthful: once its key is revoked the file is deleted,
/// so whoever finds it later is not sent after a key that no longer works.
/// </summary>
internal sealed class AdminKeyFile(IOptions<TallyOptions> options, ILogger<AdminKeyFile> logger)
{
    public const string FileName = "admin.key";

    /// <summary>The file's full path, or null when keys are not kept on disk.</summary>
    public string? Path { get; } = options.Value.Store == StoreKind.Sqlite
        ? System.IO.Path.GetFullPath(System.IO.Path.Combine(options.Value.DataDir, FileName))
        : null;

    /// <summary>Writes the secret, readable by this user only (mode 0600 from the start).</summary>
    public async Task WriteAsync(string secret, CancellationToken cancellationToken)
    {
        var path = Path ?? throw new InvalidOperationException("Keys are not kept on disk with this store.");
        File.Delete(path);
        var create = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows())
        {
            // Created 0600, never readable by others, not even for a moment.
            create.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }
        await using (var stream = new FileStream(path, create))
        {
            await stream.WriteAsync(System.Text.Encoding.UTF8.GetBytes(secret + "\n"), cancellationToken);
            stream.Flush(flushToDisk: true);
        }
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
    }

    /// <summary>The secret in the file; null when there is no file or it cannot be read (which is logged).</summary>
    public string? ReadSecret()
    {
        if (Path is null || !File.Exists(Path))
        {
            return null;
        }
        try
        {
            // The file holds one secret; anything much larger was not written by Tally: it is left alone, unread.
            if (new FileInfo(Path).Length > 4 * ApiKeySecret.MaxLength)
            {
                logger.LogWarning("The admin key file {File} is too large to hold an API key; it is left as it is", Path);
                return null;
            }
            return File.ReadAllText(Path).Trim();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            logger.LogWarning("The admin key file {File} cannot be read ({Reason})", Path, ex.Message);
            return null;
        }
    }

    /// <summary>At start: says where a still-valid first admin key is kept, or deletes the file when its key no longer works.</summary>
    public void Report(ApiKeyStore keys)
    {
        if (ReadSecret() is not { } secret)
        {
            return;
        }
        var key = keys.Find(secret);
        if (key is { Scopes: var scopes } && scopes.HasFlag(ApiScopes.Admin))
        {
            logger.LogInformation("The admin key {KeyId} '{KeyName}' is in {File}", key.Id, key.Name, Path);
        }
        else if (key is not null)
        {
            logger.LogInformation("The key {KeyId} '{KeyName}' is in {File}; it is not an admin key", key.Id, key.Name, Path);
        }
        else
        {
            Delete("its key is no longer valid");
        }
    }

    /// <summary>After <paramref name="revoked"/> was revoked: deletes the file if it held that key's secret.</summary>
    public void ForgetIfHolds(ApiKey revoked)
    {
        if (ReadSecret() is { } secret && CryptographicOperations.FixedTimeEquals(ApiKeySecret.Hash(secret), revoked.Hash))
        {
            Delete($"its key {revoked.Id} was revoked");
        }
    }

    private void Delete(string why)
    {
        try
        {
            File.Delete(Path!);
            logger.LogInformation("Deleted the admin key file {File}: {Reason}", Path, why);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            logger.LogWarning("The admin key file {File} could not be deleted although {Reason} ({Error}); delete it by hand", Path, why, ex.Message);
        }
    }
}
