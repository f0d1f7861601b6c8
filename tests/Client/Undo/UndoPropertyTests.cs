using Collab.Client.Sync;
using Collab.Engine.RichText;
using Collab.Engine.Text;
using Collab.Server.Tests.Fuzz;
using CsCheck;

namespace Collab.Client.Tests.Undo;

/// <summary>
/// Issue 18's property for the C# SDK's undo: after any interleaving of local edits, remote edits, undos and redos, all
/// replicas converge, and when every user has undone all their edits the document is the initial one again (each user
/// types and deletes only their own letters, so "undo restores the user's intent" has one exact answer: everything that
/// user did is gone and nothing of anyone else's is touched).
/// </summary>
public class UndoPropertyTests
{
    private const string Initial = "0123456789";
    private static readonly string[] Alphabets = ["ABCDEFGH", "abcdefgh", "αβγδεζηθ"];

    private static readonly Gen<(int[] Actions, bool Merge)> Scripts = Gen.Select(Gen.Int[0, int.MaxValue].Array[10, 160], Gen.Bool);

    [Fact]
    public void TextUndo_ConvergesAndUndoingEverythingRestoresTheInitialText() =>
        FuzzCheck.Run(Scripts, s => RunText(s.Actions, s.Merge), iterations: 300, print: s => $"merge={s.Merge} [{string.Join(",", s.Actions)}]");

    [Fact]
    public void RichUndo_ConvergesAndUndoingEverythingRestoresTheInitialDocument() =>
        FuzzCheck.Run(Scripts, s => RunRich(s.Actions, s.Merge), iterations: 200, print: s => $"merge={s.Merge} [{string.Join(",", s.Actions)}]");

    [Fact]
    public void Undo_OfAnInsert_RemovesItWhereRemoteEditsMovedIt()
    {
        var sim = new UndoSimulation<Rope, TextOp>(TextKind.Instance, Rope.FromString("hello"), 2, TimeSpan.Zero);
        UndoSimulation<Rope, TextOp>.Replica a = sim.Replicas[0];
        UndoSimulation<Rope, TextOp>.Replica b = sim.Replicas[1];
        a.Edit(TextOp.Insert(5, " world"));
        b.Edit(TextOp.Insert(0, ">> "));
        sim.Drain();
        Assert.Equal(">> hello world", a.Snapshot.ToString());

        Assert.True(a.Undo.Undo());
        Assert.Equal(">> hello", a.Snapshot.ToString());
        Assert.True(a.Undo.Redo());
        Assert.Equal(">> hello world", a.Snapshot.ToString());
        sim.Drain();
        Assert.Equal(">> hello world", b.Snapshot.ToString());
        Assert.False(b.Undo.CanRedo);
        Assert.True(b.Undo.Undo());
        sim.Drain();
        Assert.Equal("hello world", sim.Document.ToString());
        Assert.Equal("hello world", a.Snapshot.ToString());
    }

    [Fact]
    public void Undo_SkipsAStepThatOthersEdited_Away()
    {
        var sim = new UndoSimulation<Rope, TextOp>(TextKind.Instance, Rope.FromString("abc"), 2, TimeSpan.Zero);
        UndoSimulation<Rope, TextOp>.Replica a = sim.Replicas[0];
        UndoSimulation<Rope, TextOp>.Replica b = sim.Replicas[1];
        a.Edit(TextOp.Insert(3, "X"));
        sim.Drain();
        b.Edit(TextOp.Delete(0, 4));
        sim.Drain();

        // A's only step would delete the X that B deleted already: nothing to undo, and nothing is submitted.
        Assert.True(a.Undo.CanUndo);
        Assert.False(a.Undo.Undo());
        Assert.False(a.Undo.CanUndo);
        Assert.Empty(a.Outbox);
    }

    [Fact]
    public void Capture_MergesEditsWithinTheTimeoutIntoOneStep()
    {
        var sim = new UndoSimulation<Rope, TextOp>(TextKind.Instance, Rope.Empty, 1, TimeSpan.FromHours(1));
        UndoSimulation<Rope, TextOp>.Replica a = sim.Replicas[0];
        a.Edit(TextOp.Insert(0, "a"));
        a.Edit(TextOp.Insert(1, "b"));
        a.Undo.StopCapturing();
        a.Edit(TextOp.Insert(2, "c"));
        Assert.True(a.Undo.Undo());
        Assert.Equal("ab", a.Snapshot.ToString());
        Assert.True(a.Undo.Undo());
        Assert.Equal(string.Empty, a.Snapshot.ToString());
        Assert.False(a.Undo.CanUndo);
    }

    private static void RunText(int[] actions, bool merge)
    {
        var sim = new UndoSimulation<Rope, TextOp>(TextKind.Instance, Rope.FromString(Initial), Alphabets.Length, merge ? TimeSpan.FromHours(1) : TimeSpan.Zero);
        Run(sim, actions, (replica, text, random) => TextEdit(Alphabets[replica], text.ToString(), random), Initial, d => d.ToString());
    }

    private static void RunRich(int[] actions, bool merge)
    {
        RichDocument initial = RichDocument.FromOp(RichOp.Insert(0, Initial));
        var sim = new UndoSimulation<RichDocument, RichOp>(RichKind.Instance, initial, Alphabets.Length, merge ? TimeSpan.FromHours(1) : TimeSpan.Zero);
        Run(sim, actions, (replica, document, random) => RichEdit(replica, Alphabets[replica], document, random), initial.ToString(), d => d.ToString());
    }

    private static void Run<TSnapshot, TOp>(
        UndoSimulation<TSnapshot, TOp> sim,
        int[] actions,
        Func<int, TSnapshot, Random, TOp?> edit,
        string initial,
        Func<TSnapshot, string> show)
        where TSnapshot : notnull
        where TOp : struct
    {
        int n = sim.Replicas.Count;
        foreach (int action in actions)
        {
            var random = new Random(action);
            int index = action / 8 % n;
            UndoSimulation<TSnapshot, TOp>.Replica replica = sim.Replicas[index];
            switch (action % 8)
            {
                case 0 or 1 or 2:
                    if (edit(index, replica.Snapshot, random) is { } op)
                    {
                        replica.Edit(op);
                    }

                    break;
                case 3:
                    replica.Undo.Undo();
                    break;
                case 4:
                    replica.Undo.Redo();
                    break;
                case 5 or 6:
                    replica.DeliverFromServer();
                    break;
                default:
                    replica.DeliverToServer();
                    break;
            }
        }

        sim.Drain();
        AssertConverged(sim, show);

        // Everyone undoes everything, concurrently: what is left is what nobody did.
        var rest = new Random(actions.Length);
        while (sim.Replicas.Any(r => r.Undo.CanUndo))
        {
            foreach (UndoSimulation<TSnapshot, TOp>.Replica replica in sim.Replicas)
            {
                replica.Undo.Undo();
                if (rest.Next(2) == 0)
                {
                    sim.Replicas[rest.Next(n)].DeliverToServer();
                    sim.Replicas[rest.Next(n)].DeliverFromServer();
                }
            }
        }

        sim.Drain();
        AssertConverged(sim, show);
        Assert.Equal(initial, show(sim.Document));
    }

    private static void AssertConverged<TSnapshot, TOp>(UndoSimulation<TSnapshot, TOp> sim, Func<TSnapshot, string> show)
        where TSnapshot : notnull
        where TOp : notnull
    {
        string server = show(sim.Document);
        foreach (UndoSimulation<TSnapshot, TOp>.Replica replica in sim.Replicas)
        {
            Assert.Equal(server, show(replica.Snapshot));
        }
    }

    /// <summary>An insert of this user's letters anywhere, or a delete of a run of this user's own letters.</summary>
    private static TextOp? TextEdit(string alphabet, string text, Random random)
    {
        (int Start, int Length)? run = OwnRun(alphabet, text, random);
        if (run is { } r && random.Next(3) == 0)
        {
            // Positions count code points; the alphabets are all in the BMP, as is the initial text.
            return TextOp.Delete(r.Start, r.Length);
        }

        string inserted = new([.. Enumerable.Range(0, random.Next(1, 4)).Select(_ => alphabet[random.Next(alphabet.Length)])]);
        return TextOp.Insert(random.Next(text.Length + 1), inserted);
    }

    /// <summary>Rich edits of this user's own letters: inserts (some formatted), deletes, and formatting of own runs.</summary>
    private static RichOp? RichEdit(int replica, string alphabet, RichDocument document, Random random)
    {
        string text = document.ToPlainText();
        (int Start, int Length)? run = OwnRun(alphabet, text, random);
        if (run is { } r)
        {
            switch (random.Next(4))
            {
                case 0:
                    return RichOp.Delete(r.Start, r.Length);
                case 1:
                    // Each user formats only their own letters, with a value of their own or a removal (null).
                    RichValue value = random.Next(3) == 0 ? RichValue.Null : RichValue.FromString($"c{replica}-{random.Next(3)}");
                    return RichOp.Format(r.Start, r.Length, AttributeMap.Of(random.Next(2) == 0 ? "bold" : "color", value));
            }
        }

        string inserted = new([.. Enumerable.Range(0, random.Next(1, 4)).Select(_ => alphabet[random.Next(alphabet.Length)])]);
        AttributeMap? attributes = random.Next(3) == 0 ? AttributeMap.Of("italic", RichValue.True) : null;
        return RichOp.Insert(random.Next(document.Length + 1), inserted, attributes);
    }

    private static (int Start, int Length)? OwnRun(string alphabet, string text, Random random)
    {
        List<int> own = [.. Enumerable.Range(0, text.Length).Where(i => alphabet.Contains(text[i], StringComparison.Ordinal))];
        if (own.Count == 0)
        {
            return null;
        }

        int start = own[random.Next(own.Count)];
        int length = 1;
        while (length < 3 && start + length < text.Length && alphabet.Contains(text[start + length], StringComparison.Ordinal))
        {
            length++;
        }

        return (start, length);
    }
}
