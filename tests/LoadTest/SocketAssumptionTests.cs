using System.Net;
using System.Net.Sockets;

namespace Collab.LoadTest.Tests;

/// <summary>
/// The light client sends from the scheduler thread with synchronous Socket.Send on a socket switched to
/// non-blocking mode while a ReceiveAsync is pending. If a peer that stops reading could block that call, one
/// slow connection would stall the whole schedule: pin down that it returns WouldBlock instead.
/// </summary>
public sealed class SocketAssumptionTests
{
    [Fact]
    public async Task Send_to_a_peer_that_never_reads_returns_would_block_instead_of_blocking()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(listener.LocalEndPoint!);
        using Socket peer = await listener.AcceptAsync();

        Task<int> pendingReceive = client.ReceiveAsync(new byte[16].AsMemory(), SocketFlags.None).AsTask();
        client.Blocking = false;
        var chunk = new byte[64 * 1024];
        long total = 0;
        SocketError error = SocketError.Success;
        for (int i = 0; i < 100_000 && error == SocketError.Success; i++)
        {
            total += client.Send(chunk, SocketFlags.None, out error);
        }

        Assert.Equal(SocketError.WouldBlock, error);
        Assert.True(total > 0);
        Assert.False(pendingReceive.IsCompleted);
        peer.Close();
    }
}
