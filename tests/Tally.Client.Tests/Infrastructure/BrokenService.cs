using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Tally.Client.Tests.Infrastructure;

/// <summary>
/// A listener on 127.0.0.1 that plays a service gone wrong, for what the real one cannot be made to do on demand:
/// <see cref="Behaviour.Hang"/> accepts connections and never answers; <see cref="Behaviour.BreakMidBody"/> answers
/// every request 200 with a Content-Length and closes the connection after the first bytes of the body.
/// </summary>
public sealed class BrokenService : IAsyncDisposable
{
    public enum Behaviour
    {
        Hang,
        BreakMidBody,
    }

    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentBag<TcpClient> _connections = [];
    private readonly Task _accepting;

    public BrokenService(Behaviour behaviour)
    {
        _listener.Start();
        BaseAddress = new Uri($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}");
        _accepting = AcceptAsync(behaviour);
    }

    public Uri BaseAddress { get; }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _accepting;
        foreach (var connection in _connections)
        {
            connection.Dispose();
        }
        _stop.Dispose();
    }

    private async Task AcceptAsync(Behaviour behaviour)
    {
        try
        {
            while (true)
            {
                var connection = await _listener.AcceptTcpClientAsync(_stop.Token);
                _connections.Add(connection);
                if (behaviour == Behaviour.BreakMidBody)
                {
                    _ = BreakAsync(connection);
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // Stopped.
        }
    }

    private async Task BreakAsync(TcpClient connection)
    {
        try
        {
            var stream = connection.GetStream();
            var head = new StringBuilder();
            var buffer = new byte[8192];
            while (!head.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
            {
                var read = await stream.ReadAsync(buffer, _stop.Token);
                if (read == 0)
                {
                    return;
                }
                head.Append(Encoding.ASCII.GetString(buffer, 0, read));
            }
            await stream.WriteAsync("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n{\"name\":\"half"u8.ToArray(), _stop.Token);
            await stream.FlushAsync(_stop.Token);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or ObjectDisposedException)
        {
            return;
        }
        finally
        {
            connection.Dispose();
        }
    }
}
