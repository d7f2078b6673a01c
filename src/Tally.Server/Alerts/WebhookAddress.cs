using System.Net;
using System.Net.Sockets;

namespace Tally.Server.Alerts;

/// <summary>
/// Where webhooks may go (SSRF protection): <c>http</c> or <c>https</c> URLs whose host resolves to public addresses
/// only, unless the host is listed in <c>Alerts:AllowedHosts</c>. Checked when an alert is stored, and again at every
/// delivery (DNS may have changed): the sender resolves the name, checks every address and connects to a checked one
/// (<see cref="ConnectAsync"/>), so a name cannot be checked as one address and connected as another.
/// </summary>
internal static class WebhookAddress
{
    public const int MaxLength = 2048;

    /// <summary>The URL, or null with why not (a syntax or scheme problem, not yet the host's addresses).</summary>
    public static Uri? Parse(string text, out string? problem)
    {
        problem = null;
        if (text.Length is 0 or > MaxLength || !Uri.TryCreate(text, UriKind.Absolute, out var uri))
        {
            problem = $"'webhook' must be an absolute http or https URL of at most {MaxLength} characters.";
            return null;
        }
        if (uri.Scheme != Uri.UriSchemeHttps && uri.Scheme != Uri.UriSchemeHttp)
        {
            problem = $"'webhook' must be an http or https URL (got the scheme '{uri.Scheme}').";
            return null;
        }
        if (uri.UserInfo.Length > 0)
        {
            problem = "'webhook' must not carry a user name or password; the receiver checks the signature instead.";
            return null;
        }
        if (uri.Fragment.Length > 0)
        {
            problem = "'webhook' must not have a fragment (#…): it is never sent.";
            return null;
        }
        return uri;
    }

    /// <summary>
    /// Null when webhooks may go to <paramref name="host"/> (listed in <paramref name="allowedHosts"/>, or resolving
    /// to public addresses only), else why not. Throws <see cref="SocketException"/> when the name does not resolve.
    /// </summary>
    public static async Task<string?> CheckHostAsync(string host, IReadOnlySet<string> allowedHosts, CancellationToken cancellationToken)
    {
        if (allowedHosts.Contains(host.Trim('[', ']')))
        {
            return null;
        }
        var addresses = await ResolveAsync(host, cancellationToken);
        return Refusal(host, addresses);
    }

    /// <summary>
    /// <see cref="SocketsHttpHandler.ConnectCallback"/>: resolves the host, refuses it unless every address is public
    /// (or the host is allowed), then connects to the checked addresses in turn.
    /// </summary>
    public static async ValueTask<Stream> ConnectAsync(DnsEndPoint endpoint, IReadOnlySet<string> allowedHosts, CancellationToken cancellationToken)
    {
        var addresses = await ResolveAsync(endpoint.Host, cancellationToken);
        if (!allowedHosts.Contains(endpoint.Host.Trim('[', ']')) && Refusal(endpoint.Host, addresses) is { } refusal)
        {
            throw new WebhookRefusedException(refusal);
        }
        SocketException? last = null;
        foreach (var address in addresses)
        {
            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(new IPEndPoint(address, endpoint.Port), cancellationToken);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch (SocketException ex)
            {
                socket.Dispose();
                last = ex;
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }
        throw last ?? new SocketException((int)SocketError.HostNotFound);
    }

    /// <summary>Why webhooks may not go to these addresses of <paramref name="host"/>, or null when all are public.</summary>
    public static string? Refusal(string host, IReadOnlyList<IPAddress> addresses)
    {
        if (addresses.Count == 0)
        {
            return $"The webhook host '{host}' has no address.";
        }
        foreach (var address in addresses)
        {
            if (NotPublic(address) is { } kind)
            {
                var shown = host.Trim('[', ']') == address.ToString() ? $"'{host}' is" : $"'{host}' resolves to {address}, which is";
                return $"The webhook host {shown} {kind}; webhooks go to public addresses only, unless the host is listed in Alerts:AllowedHosts.";
            }
        }
        return null;
    }

    /// <summary>What kind of non-public address this is (loopback, private, link-local…), or null for a public one.</summary>
    public static string? NotPublic(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6)
        {
            return NotPublic(address.MapToIPv4());
        }
        var b = address.GetAddressBytes();
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            return b[0] switch
            {
                0 => "a 'this network' address (0.0.0.0/8)",
                10 => "a private address (10.0.0.0/8)",
                127 => "a loopback address (127.0.0.0/8)",
                100 when (b[1] & 0xC0) == 64 => "a shared (carrier-grade NAT) address (100.64.0.0/10)",
                169 when b[1] == 254 => "a link-local address (169.254.0.0/16)",
                172 when (b[1] & 0xF0) == 16 => "a private address (172.16.0.0/12)",
                192 when b[1] == 168 => "a private address (192.168.0.0/16)",
                192 when b[1] == 0 && b[2] == 0 => "a protocol assignment address (192.0.0.0/24)",
                198 when (b[1] & 0xFE) == 18 => "a benchmarking address (198.18.0.0/15)",
                >= 224 => "a multicast, reserved or broadcast address (224.0.0.0/3)",
                _ => null,
            };
        }
        if (address.AddressFamily != AddressFamily.InterNetworkV6)
        {
            return "not an IP address";
        }
        if (address.Equals(IPAddress.IPv6Loopback))
        {
            return "a loopback address (::1)";
        }
        if (address.Equals(IPAddress.IPv6Any))
        {
            return "the unspecified address (::)";
        }
        if (b[0] == 0xFE && (b[1] & 0xC0) == 0x80)
        {
            return "a link-local address (fe80::/10)";
        }
        if (b[0] == 0xFE && (b[1] & 0xC0) == 0xC0)
        {
            return "a site-local address (fec0::/10)";
        }
        if ((b[0] & 0xFE) == 0xFC)
        {
            return "a unique local address (fc00::/7)";
        }
        if (b[0] == 0xFF)
        {
            return "a multicast address (ff00::/8)";
        }
        // IPv4 inside IPv6: IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::a.b.c.d) and 6to4 (2002:aabb:ccdd::) carry an
        // IPv4 address a router may reach: it must be public too.
        if (b.AsSpan(0, 12).IndexOfAnyExcept((byte)0) < 0)
        {
            return NotPublic(new IPAddress(b.AsSpan(12, 4)));
        }
        if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xFF && b[3] == 0x9B && b.AsSpan(4, 8).IndexOfAnyExcept((byte)0) < 0)
        {
            return NotPublic(new IPAddress(b.AsSpan(12, 4)));
        }
        if (b[0] == 0x20 && b[1] == 0x02)
        {
            return NotPublic(new IPAddress(b.AsSpan(2, 4)));
        }
        return null;
    }

    private static async Task<IReadOnlyList<IPAddress>> ResolveAsync(string host, CancellationToken cancellationToken)
    {
        var bare = host.Trim('[', ']');
        if (IPAddress.TryParse(bare, out var literal))
        {
            return [literal];
        }
        return await Dns.GetHostAddressesAsync(bare, cancellationToken);
    }
}

/// <summary>A delivery refused before connecting: the host resolved to an address webhooks may not go to.</summary>
internal sealed class WebhookRefusedException(string message) : Exception(message);
