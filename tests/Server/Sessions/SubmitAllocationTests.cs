using System.Buffers;
using System.Net;
using Collab.Protocol.V1;
using Collab.Server.Security;
using Collab.Server.Sessions;
using Collab.Server.Tests.Security.Infrastructure;
using Collab.Server.Tests.Transport;
using Collab.Server.Transport;
using Collab.Testing;
using Google.Protobuf;

namespace Collab.Server.Tests.Sessions;

/// <summary>
/// What one edit costs the server in allocations from Submit to Ack, through the real session layer (session, hub,
/// sequencer, group commit, SQLite op log; <see cref="SessionHarness"/>), against the budget in
/// tests/allocation-budgets.json. The client's messages are encoded before the measurement and its connection only
/// counts frames, so what is counted is the server's work (on every thread: the process-wide figure, in a collection that
/// runs alone).
/// </summary>
[Trait("Category", "Allocation")]
[Collection(nameof(AllocationCollection))]
public sealed class SubmitAllocationTests
{
    private const int WarmUp = 200;
    private const int Measured = 1_000;

    [Fact]
    public async Task Submit_to_ack_stays_within_its_budget()
    {
        // Rate limits high enough for a client that submits as fast as its acks come back.
        await using SessionHarness harness = await SessionHarness.StartAsync(limits: l =>
        {
            l.MessagesPerSecond = l.OpsPerSecond = l.UserOpsPerSecond = 1_000_000;
            l.MessageBurst = l.OpsBurst = l.UserOpsBurst = 1_000_000;
        });
        var connection = new CountingConnection();
        var session = new ClientSession(connection, harness.Services, SessionPrincipal.Anonymous);
        connection.Session = session;

        await SendAndWaitAsync(connection, new ClientMessage { RequestId = 1, Hello = new Hello { ProtocolVersion = (uint)ProtocolVersion.Current } });
        await SendAndWaitAsync(connection, new ClientMessage { RequestId = 2, Subscribe = new Subscribe { DocId = "alloc", Snapshot = true } });

        byte[][] submits = new byte[WarmUp + Measured][];
        for (int i = 0; i < submits.Length; i++)
        {
            var submit = new Submit { DocId = "alloc", ClientSeq = (ulong)i + 1, BaseVersion = i, Op = SessionHarness.Insert(0, "a") };
            submits[i] = new ClientMessage { Submit = submit }.ToByteArray();
        }

        for (int i = 0; i < WarmUp; i++)
        {
            await SubmitAsync(connection, submits[i], expectAck: true);
        }

        connection.KeepPayload = false;
        long before = GC.GetTotalAllocatedBytes(precise: true);
        for (int i = WarmUp; i < submits.Length; i++)
        {
            await SubmitAsync(connection, submits[i], expectAck: false);
        }

        long allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        Assert.Null(connection.CloseCode);
        AllocationBudget.Check("session.submitToAck", allocated, Measured);
    }

    private static async Task SendAndWaitAsync(CountingConnection connection, ClientMessage message)
    {
        int expected = connection.Count + 1;
        await connection.Session.OnMessageAsync(new ReadOnlySequence<byte>(message.ToByteArray()), isText: false);
        connection.WaitFor(expected);
    }

    /// <summary>One submit, then its ack (the only frame a lone subscriber gets for its own op).</summary>
    private static async Task SubmitAsync(CountingConnection connection, byte[] submit, bool expectAck)
    {
        int expected = connection.Count + 1;
        await connection.Session.OnMessageAsync(new ReadOnlySequence<byte>(submit), isText: false);
        connection.WaitFor(expected);
        if (expectAck)
        {
            ServerMessage answer = ServerMessage.Parser.ParseFrom(connection.LastPayload);
            Assert.True(answer.Ack is not null, "expected an ack, got " + answer);
        }
    }

    /// <summary>A connection that counts what it is sent (and copies the last frame's payload only while warming up).</summary>
    private sealed class CountingConnection : IWebSocketConnection
    {
        private int _count;

        public long Id => 1;

        public IPEndPoint? RemoteEndPoint => null;

        public CancellationToken Closed => CancellationToken.None;

        internal ClientSession Session { get; set; } = null!;

        public int Count => Volatile.Read(ref _count);

        public byte[] LastPayload { get; private set; } = [];

        public bool KeepPayload { get; set; } = true;

        public ushort? CloseCode { get; private set; }

        public bool TrySend(OutboundMessage message)
        {
            if (KeepPayload)
            {
                LastPayload = message.Payload.ToArray();
            }

            Interlocked.Increment(ref _count);
            return true;
        }

        public void Close(ushort statusCode, string reason) => CloseCode = statusCode;

        /// <summary>Spins (no allocation) until <paramref name="count"/> frames arrived; the ack comes from the commit thread.</summary>
        public void WaitFor(int count)
        {
            var spin = default(SpinWait);
            long deadline = Environment.TickCount64 + 30_000;
            while (Count < count)
            {
                if (Environment.TickCount64 > deadline)
                {
                    throw new TimeoutException($"{Count} frames after 30 s, expected {count}.");
                }

                spin.SpinOnce();
            }
        }
    }
}
