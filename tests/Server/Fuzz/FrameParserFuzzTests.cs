using System.Text;
using Collab.Server.Tests.Transport.Infrastructure;
using Collab.Server.Transport;
using CsCheck;

namespace Collab.Server.Tests.Fuzz;

/// <summary>
/// Random and mutated WebSocket frame streams through the real transport connection (handshake, frame parser,
/// unmasking, fragment assembly, UTF-8 validation, control frames). Every run must end by itself, for a
/// recorded reason other than an internal error, and hand the application only messages within the size
/// limit and, for text, valid UTF-8. An unmutated stream must deliver exactly the messages it encodes.
/// </summary>
public sealed class FrameParserFuzzTests
{
    private const int MaxMessageBytes = 2048;
    private const int Iterations = 400;

    private static readonly ConnectionEndReason[] AcceptableEnds =
    [
        ConnectionEndReason.ClientClosed,
        ConnectionEndReason.ConnectionReset,
        ConnectionEndReason.ProtocolError,
        ConnectionEndReason.InvalidPayload,
        ConnectionEndReason.MessageTooBig,
        ConnectionEndReason.HandshakeRejected,
        ConnectionEndReason.PolicyViolation,
    ];

    /// <summary>One data message: text or binary, split into fragments, with control frames between them.</summary>
    private sealed record MessageSpec(bool IsText, byte[] Payload, int[] Cuts, bool[] PingsBetween);

    private sealed record StreamSpec(MessageSpec[] Messages, bool EndsWithClose, uint MaskSeed, int ChunkSize, Mutation[] Mutations)
    {
        public byte[] Encode()
        {
            var bytes = new List<byte>(Encoding.ASCII.GetBytes(PipeTransport.Handshake));
            uint key = MaskSeed;
            foreach (MessageSpec message in Messages)
            {
                int[] cuts = [0, .. message.Cuts.Where(c => c > 0 && c < message.Payload.Length).Distinct().Order(), message.Payload.Length];
                for (int i = 0; i + 1 < cuts.Length; i++)
                {
                    byte opcode = i == 0 ? (message.IsText ? (byte)0x1 : (byte)0x2) : (byte)0x0;
                    bool fin = i + 2 == cuts.Length;
                    key = (key * 1_103_515_245) + 12_345;
                    bytes.AddRange(RawWebSocketClient.EncodeFrame(opcode, message.Payload.AsSpan(cuts[i], cuts[i + 1] - cuts[i]), fin, maskKey: key));
                    if (!fin && i < message.PingsBetween.Length && message.PingsBetween[i])
                    {
                        bytes.AddRange(RawWebSocketClient.EncodeFrame(0x9, "ping"u8, maskKey: key ^ 0xFFFF));
                    }
                }
            }

            if (EndsWithClose)
            {
                bytes.AddRange(RawWebSocketClient.EncodeFrame(0x8, [0x03, 0xE8], maskKey: key));
            }

            return [.. bytes];
        }
    }

    private static readonly Gen<string> TextGen = Gen.OneOf(
        Gen.String[Gen.Char.AlphaNumeric, 0, 200],
        Gen.String[Gen.Char['a', 'z'], 0, 50].Select(s => s + "é中😀" + s),
        Gen.Const(""));

    private static readonly Gen<MessageSpec> MessageGen = Gen.Select(
        Gen.Bool,
        TextGen,
        Gen.Byte.Array[0, 600],
        Gen.Int[0, 700].Array[0, 4],
        Gen.Bool.Array[4],
        (isText, text, binary, cuts, pings) => new MessageSpec(isText, isText ? Encoding.UTF8.GetBytes(text) : binary, cuts, pings));

    private static readonly Gen<StreamSpec> StreamGen = Gen.Select(
        MessageGen.Array[0, 5],
        Gen.Bool,
        Gen.UInt,
        Gen.OneOf(Gen.Int[1, 7], Gen.Int[8, 4096]),
        Gen.Frequency((1, Gen.Const(Array.Empty<Mutation>())), (3, FuzzCheck.Mutations(6))),
        (messages, close, mask, chunk, mutations) => new StreamSpec(messages, close, mask, chunk, mutations));

    /// <summary>Pure garbage after a valid handshake, in random chunks.</summary>
    private static readonly Gen<(byte[] Bytes, int Chunk)> GarbageGen = Gen.Select(Gen.Byte.Array[0, 3000], Gen.Int[1, 512]);

    private static TransportOptions Options() => new() { MaxMessageBytes = MaxMessageBytes };

    [Fact]
    public Task MutatedFrameStreamsNeverCrashHangOrLeakInvalidMessages() => FuzzCheck.RunAsync(StreamGen, async spec =>
    {
        byte[] clean = spec.Encode();
        byte[] bytes = FuzzCheck.Apply(clean, spec.Mutations);
        PipeRun run = await PipeTransport.RunAsync(bytes, spec.ChunkSize, Options());
        AssertSafe(run);

        if (spec.Mutations.Length == 0)
        {
            // The model: every encoded message arrives, whole and in order.
            Assert.True(run.Opened);
            Assert.Equal(spec.Messages.Length, run.Messages.Count);
            for (int i = 0; i < spec.Messages.Length; i++)
            {
                Assert.Equal(spec.Messages[i].IsText, run.Messages[i].IsText);
                Assert.Equal(spec.Messages[i].Payload, run.Messages[i].Payload);
            }

            Assert.Equal(spec.EndsWithClose ? ConnectionEndReason.ClientClosed : ConnectionEndReason.ConnectionReset, run.EndReason);
        }
    }, Iterations, spec => $"{Convert.ToHexString(FuzzCheck.Apply(spec.Encode(), spec.Mutations))} chunk={spec.ChunkSize}");

    [Fact]
    public Task RandomBytesAfterTheHandshakeNeverCrashOrHang() => FuzzCheck.RunAsync(GarbageGen, async t =>
    {
        byte[] bytes = [.. Encoding.ASCII.GetBytes(PipeTransport.Handshake), .. t.Bytes];
        AssertSafe(await PipeTransport.RunAsync(bytes, t.Chunk, Options()));
    }, Iterations, t => Convert.ToHexString(t.Bytes));

    [Fact]
    public Task MutatedHandshakesNeverCrashOrHang() => FuzzCheck.RunAsync(
        Gen.Select(FuzzCheck.Mutations(4), Gen.Int[1, 64]),
        async t =>
        {
            byte[] bytes = FuzzCheck.Apply([.. Encoding.ASCII.GetBytes(PipeTransport.Handshake), .. RawWebSocketClient.EncodeFrame(0x2, "after"u8)], t.Item1);
            AssertSafe(await PipeTransport.RunAsync(bytes, t.Item2, Options()));
        },
        Iterations);

    internal static void AssertSafe(PipeRun run)
    {
        if (run.Outcome == TransportOutcome.HandedOff)
        {
            // The mutation changed the request line away from the WebSocket path: the HTTP pipeline's business, and
            // nothing of it reached the WebSocket application.
            Assert.Null(run.EndReason);
            Assert.False(run.Opened);
            Assert.Empty(run.Messages);
            return;
        }

        Assert.NotNull(run.EndReason);
        Assert.Contains(run.EndReason!.Value, AcceptableEnds);
        Assert.True(run.ClosedCalls <= 1, "OnClosed was called more than once");
        Assert.Equal(run.Opened ? 1 : 0, run.ClosedCalls);
        foreach ((bool isText, byte[] payload) in run.Messages)
        {
            Assert.True(payload.Length <= MaxMessageBytes, $"a {payload.Length}-byte message passed the {MaxMessageBytes}-byte limit");
            Assert.True(!isText || PipeRun.IsValidUtf8(payload), "a text message with invalid UTF-8 reached the application");
        }
    }
}
