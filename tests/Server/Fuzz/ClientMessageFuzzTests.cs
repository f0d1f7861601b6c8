using Collab.Engine.Text;
using Collab.Protocol.V1;
using Collab.Server.Tests.Security.Infrastructure;
using CsCheck;
using Google.Protobuf;

namespace Collab.Server.Tests.Fuzz;

/// <summary>
/// Random, mutated and garbage client messages into real sessions (protobuf decoding, the op decoder, every
/// handler, rights and limits) over a real document registry and SQLite op log. Nothing may escape as an
/// exception, and documents change only through accepted submits: an observer sees exactly the ops that
/// were sequenced, every one of them from the fuzzed client, their replay equals the stored text, a refused
/// submit never appears, and a document the client may only read never changes.
/// </summary>
[Trait("Category", "Slow")]
public sealed class ClientMessageFuzzTests
{
    private const int Iterations = 60;
    private static int s_sample;

    private static readonly Gen<string> Text = Gen.OneOf(Gen.String[Gen.Char['a', 'e'], 1, 6], Gen.Const("é😀"), Gen.Const("\u0301"));

    /// <summary>An op recipe, made concrete against the document as the client last saw it (so most ops fit).</summary>
    private sealed record OpRecipe(int Kind, int Position, int Length, string Text, byte[]? Raw);

    private static readonly Gen<OpRecipe> OpGen = Gen.Frequency(
        (8, Gen.Select(Gen.Int[0, 2], Gen.Int[0, 64], Gen.Int[1, 4], Text, (kind, position, length, text) => new OpRecipe(kind, position, length, text, null))),
        (1, Gen.Byte.Array[0, 24].Select(raw => new OpRecipe(0, 0, 0, "", raw))));

    /// <summary>One input: a well-formed message on one of the sample's three documents (0 and 1 writable, 2 read-only), possibly mutated, or garbage.</summary>
    private sealed record Input(int Kind, int Doc, int Seq, int BaseBack, OpRecipe Op, Mutation[] Mutations, byte[]? Garbage);

    private static readonly Gen<Input> InputGen = Gen.Select(
        Gen.Frequency((2, Gen.Const(0)), (10, Gen.Const(1)), (2, Gen.Const(2)), (1, Gen.Int[3, 8])),
        Gen.Int[0, 2],
        Gen.Int[1, 24],
        Gen.Frequency((10, Gen.Const(0)), (3, Gen.Int[1, 3]), (1, Gen.Int[-2, -1])),
        OpGen,
        Gen.Frequency((4, Gen.Const(Array.Empty<Mutation>())), (1, FuzzCheck.Mutations(3))),
        Gen.Frequency((12, Gen.Const((byte[]?)null)), (1, Gen.Byte.Array[0, 40].Select(b => (byte[]?)b))),
        (kind, doc, seq, baseBack, op, mutations, garbage) => new Input(kind, doc, seq, baseBack, op, mutations, garbage));

    [Fact]
    public async Task MutatedClientMessagesNeverEscapeAndChangeDocumentsOnlyThroughAcceptedOps()
    {
        await using SessionHarness harness = await SessionHarness.StartAsync(
            limits: l =>
            {
                // Limits off: the fuzzer should reach deep states, not be closed early (limits have their own tests).
                l.MessagesPerSecond = 0;
                l.OpsPerSecond = 0;
                l.UserOpsPerSecond = 0;
                l.PresencePerSecond = 0;
                l.UserPresencePerSecond = 0;
            },
            documents: d => d.IdleCloseAfter = TimeSpan.FromMilliseconds(200));
        string fuzzerToken = harness.Tokens.Create("fuzzer", """{"read":["*"],"write":["fz/*"]}""");
        string observerToken = harness.Tokens.Create("observer", """{"read":["*"],"write":["*"]}""");

        await FuzzCheck.RunAsync(InputGen.Array[1, 60], inputs => RunSampleAsync(harness, fuzzerToken, observerToken, inputs), Iterations, Print, threads: 1);
    }

    private static async Task RunSampleAsync(SessionHarness harness, string fuzzerToken, string observerToken, Input[] inputs)
    {
        int sample = Interlocked.Increment(ref s_sample);
        string[] docs = [$"fz/{sample}/a", $"fz/{sample}/b", $"ro/{sample}"];
        FakeConnection observer = await harness.ConnectAsync(observerToken);
        foreach (string doc in docs)
        {
            await observer.SubscribeAndWaitAsync(doc, requestId: 1000);
        }

        var fuzzers = new List<FakeConnection> { await SubscribedFuzzerAsync(harness, fuzzerToken, docs) };

        // What the server parsed, as the test parses it: how often each (connection, document, seq) was submitted.
        var submitted = new Dictionary<(FakeConnection, string, ulong), int>();
        ulong seq = 0;
        foreach (Input input in inputs)
        {
            FakeConnection fuzzer = fuzzers[^1];
            if (fuzzer.CloseCode is not null)
            {
                // The session closed the connection (abuse, a wrong Reauthenticate): the client would reconnect.
                fuzzer = await SubscribedFuzzerAsync(harness, fuzzerToken, docs);
                fuzzers.Add(fuzzer);
            }

            // Seqs mostly increase (as a real client's do); some repeat (a resend) or go back (a client bug).
            seq = (input.Seq % 8) switch
            {
                0 => seq,
                1 => Math.Max(1, seq - 2),
                _ => seq + 1,
            };
            byte[] bytes = input.Garbage ?? FuzzCheck.Apply(Build(input, docs, observer, seq).ToByteArray(), input.Mutations);
            if (TryParse(bytes) is { Submit: { } submit })
            {
                (FakeConnection, string, ulong) key = (fuzzer, submit.DocId, submit.ClientSeq);
                submitted[key] = submitted.GetValueOrDefault(key) + 1;
            }

            // Must not throw, whatever the bytes.
            await fuzzer.SendRawAsync(bytes);
        }

        // Barrier: a clean submit per writable document; its ack comes after every earlier op of that document committed.
        string[] writable = [docs[0], docs[1]];
        foreach (string doc in writable)
        {
            long version = LastVersion(observer, doc);
            await observer.SubmitAsync(doc, (ulong)(1000 + sample), version, SessionHarness.Insert(0, "|"), requestId: 2000);
            ServerMessage barrier = await observer.NextAsync(m => (m.Ack is not null && m.Ack.DocId == doc) || (m.Error is not null && m.Error.DocId == doc && m.RequestId == 2000));
            Assert.True(barrier.Ack is not null, $"barrier refused: {barrier}");
        }

        HashSet<string> fuzzerIds = [.. fuzzers.Select(f => f.ClientId)];
        FakeConnection checker = await harness.ConnectAsync(observerToken);
        foreach (string doc in docs)
        {
            Snapshot snapshot = await checker.SubscribeAndWaitAsync(doc, requestId: 3000);
            SequencedOp[] ops = [.. observer.Received.Where(m => m.Ops is not null && m.Ops.DocId == doc).SelectMany(m => m.Ops.Ops_)];

            if (doc == docs[2])
            {
                Assert.Equal(0, snapshot.Version);
                Assert.Empty(ops);
                continue;
            }

            // Gap-free, and the replay of what was broadcast is what the server stores.
            Assert.Equal(Enumerable.Range(1, ops.Length).Select(v => (long)v), ops.Select(o => o.Version));
            Assert.Equal(snapshot.Version, ops.Length + 1); // + the barrier, acked to the observer (own ops are not echoed)
            string replay = ops.Aggregate(string.Empty, (text, op) => TextType.Apply(text, TextOpCodec.Decode(op.Op.Span)));
            Assert.Equal(snapshot.Text, "|" + replay);
            Assert.All(ops, op =>
            {
                Assert.Contains(op.ClientId, fuzzerIds);
                Assert.Equal("fuzzer", op.Author);
            });

            // Every ack names the op that got the version; a refused seq with no ack never became an op.
            foreach (FakeConnection fuzzer in fuzzers)
            {
                ServerMessage[] received = [.. fuzzer.Received];
                foreach (Ack ack in received.Where(m => m.Ack is not null && m.Ack.DocId == doc).Select(m => m.Ack))
                {
                    SequencedOp op = ops[ack.Version - 1];
                    Assert.Equal(fuzzer.ClientId, op.ClientId);
                    Assert.Equal(ack.ClientSeq, op.ClientSeq);
                }

                foreach (Error error in received.Where(m => m.Error is not null && m.Error.DocId == doc && m.Error.ClientSeq != 0).Select(m => m.Error))
                {
                    // A seq submitted once and refused was never sequenced (one submitted again may have been).
                    if (submitted.GetValueOrDefault((fuzzer, doc, error.ClientSeq)) == 1)
                    {
                        Assert.DoesNotContain(ops, op => op.ClientId == fuzzer.ClientId && op.ClientSeq == error.ClientSeq);
                    }
                }
            }
        }

        foreach (FakeConnection connection in fuzzers.Append(observer).Append(checker))
        {
            connection.Drop();
        }
    }

    private static ClientMessage? TryParse(byte[] bytes)
    {
        try
        {
            return ClientMessage.Parser.ParseFrom(bytes);
        }
        catch (InvalidProtocolBufferException)
        {
            return null;
        }
    }

    private static async Task<FakeConnection> SubscribedFuzzerAsync(SessionHarness harness, string token, string[] docs)
    {
        FakeConnection fuzzer = await harness.ConnectAsync(token);
        foreach (string doc in docs)
        {
            await fuzzer.SubscribeAndWaitAsync(doc, requestId: 900);
        }

        return fuzzer;
    }

    private static long LastVersion(FakeConnection observer, string doc) =>
        observer.Received.Where(m => m.Ops is not null && m.Ops.DocId == doc).SelectMany(m => m.Ops.Ops_).Select(o => o.Version).DefaultIfEmpty(0).Max();

    /// <summary>The document as the observer has seen it so far: (version, length in code points).</summary>
    private static (long Version, int Length) Known(FakeConnection observer, string doc)
    {
        string text = string.Empty;
        long version = 0;
        foreach (SequencedOp op in observer.Received.Where(m => m.Ops is not null && m.Ops.DocId == doc).SelectMany(m => m.Ops.Ops_))
        {
            text = TextType.Apply(text, TextOpCodec.Decode(op.Op.Span));
            version = op.Version;
        }

        return (version, text.EnumerateRunes().Count());
    }

    private static ByteString Concrete(OpRecipe recipe, int length)
    {
        if (recipe.Raw is not null)
        {
            return ByteString.CopyFrom(recipe.Raw);
        }

        int position = recipe.Position % (length + 1);
        int span = Math.Min(recipe.Length, length - position);
        return SessionHarness.Encode(recipe.Kind switch
        {
            0 => TextOp.Insert(position, recipe.Text),
            1 when span > 0 => TextOp.Delete(position, span),
            1 => TextOp.Insert(position, recipe.Text),
            _ => TextOp.Replace(position, Math.Max(span, 0), recipe.Text),
        });
    }

    private static ClientMessage Build(Input input, string[] docs, FakeConnection observer, ulong seq)
    {
        string doc = docs[input.Doc];
        (long version, int length) = Known(observer, doc);
        long baseVersion = version - input.BaseBack;
        ByteString op = Concrete(input.Op, length);
        var message = new ClientMessage { RequestId = (ulong)input.Seq };
        switch (input.Kind)
        {
            case 0:
                message.Subscribe = new Subscribe { DocId = doc, Snapshot = input.BaseBack % 2 == 0, FromVersion = baseVersion };
                break;
            case 1:
                message.Submit = new Submit { DocId = doc, ClientSeq = seq, BaseVersion = baseVersion, Op = op };
                break;
            case 2:
                message.Presence = new PresenceUpdate { DocId = doc, BaseVersion = baseVersion, Selection = new Selection { Anchor = input.Seq, Head = input.BaseBack }, UserData = op };
                break;
            case 3:
                message.Unsubscribe = new Unsubscribe { DocId = doc };
                break;
            case 4:
                message.FetchOps = new FetchOps { DocId = doc, FromVersion = baseVersion, ToVersion = input.Seq };
                break;
            case 5:
                message.Ping = new Ping { Nonce = (ulong)input.Seq };
                break;
            case 6:
                message.Reauth = new Reauthenticate { Token = op.ToBase64() };
                break;
            case 7:
                message.Hello = new Hello { ProtocolVersion = (uint)input.BaseBack, ClientId = doc.Replace('/', '-') };
                break;
            default:
                message.Submit = new Submit { DocId = doc, ClientSeq = ulong.MaxValue - (ulong)input.Seq, BaseVersion = -1 - input.BaseBack, Op = op };
                break;
        }

        return message;
    }

    private static string Print(Input[] inputs) => string.Join(" | ", inputs.Select(i =>
        i.Garbage is not null ? "garbage:" + Convert.ToHexString(i.Garbage) : $"kind={i.Kind} doc={i.Doc} seq={i.Seq} back={i.BaseBack} op={i.Op} mutations={string.Join(",", i.Mutations)}"));
}
