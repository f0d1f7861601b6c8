using System.Diagnostics;
using Collab.Protocol.V1;
using Collab.Server.Cluster;
using CsCheck;
using Microsoft.Extensions.Options;

namespace Collab.Integration.Tests.Cluster;

/// <summary>The pure parts of cluster mode: subject names, rendezvous placement, membership, local lease deadlines, options.</summary>
public sealed class ClusterPlacementTests
{
    private static readonly Gen<string> DocIds =
        Gen.Char["abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:/-"].Array[1, 128]
            .Select(chars => new string(chars))
            .Where(Collab.Protocol.DocumentId.IsValid);

    [Fact]
    public void Document_ids_become_one_reversible_subject_token()
    {
        DocIds.Sample(id =>
        {
            string token = ClusterSubjects.Token(id);
            Assert.All(token, c => Assert.True(char.IsAsciiLetterOrDigit(c) || c is '_' or '-', $"'{c}' in token {token}"));
            Assert.Equal(id, ClusterSubjects.Untoken(token));
        }, iter: 5_000);

        Assert.Equal("org1_2Fnotes_2Etxt", ClusterSubjects.Token("org1/notes.txt"));
        Assert.Equal("a_5Fb_3Ac", ClusterSubjects.Token("a_b:c"));
        Assert.Equal("collab.v1.doc.a_2Eb.ops", ClusterSubjects.Ops("a.b"));
        Assert.Equal("collab.v1.doc.a_2Eb.submit", ClusterSubjects.Submit("a.b"));
        Assert.Equal("collab.v1.doc.a_2Eb.presence", ClusterSubjects.Presence("a.b"));
        Assert.Equal("collab.v1.node.n_C3_A91.open", ClusterSubjects.Open("né1"));
        Assert.Null(ClusterSubjects.Untoken("a.b"));
        Assert.Null(ClusterSubjects.Untoken("a_2"));
    }

    [Fact]
    public void Rendezvous_spreads_documents_and_moves_only_what_a_joining_or_leaving_node_changes()
    {
        string[] three = ["node1", "node2", "node3"];
        string[] four = [.. three, "node4"];
        var docs = Enumerable.Range(0, 6000).Select(i => $"doc/{i}").ToArray();

        var placed = docs.ToDictionary(d => d, d => Rendezvous.Choose(d, three)!);
        foreach (IGrouping<string, string> share in placed.GroupBy(p => p.Value, p => p.Key))
        {
            Assert.InRange(share.Count(), 1700, 2300);
        }

        // Deterministic and independent of the order nodes are listed in.
        Assert.All(docs.Take(500), d => Assert.Equal(placed[d], Rendezvous.Choose(d, [.. three.Reverse()])));

        // A joiner takes about a quarter, only for itself; nothing else moves.
        int moved = 0;
        foreach (string doc in docs)
        {
            string now = Rendezvous.Choose(doc, four)!;
            if (now != placed[doc])
            {
                Assert.Equal("node4", now);
                moved++;
            }
        }

        Assert.InRange(moved, 1200, 1800);

        // A leaver's documents spread over the others; the others' stay put.
        foreach (string doc in docs)
        {
            string now = Rendezvous.Choose(doc, ["node1", "node3"])!;
            if (placed[doc] != "node2")
            {
                Assert.Equal(placed[doc], now);
            }
        }

        Assert.Null(Rendezvous.Choose("doc", []));
    }

    [Fact]
    public void Membership_follows_heartbeats_expiry_leaving_and_the_join_grace()
    {
        var options = new ClusterOptions
        {
            HeartbeatInterval = TimeSpan.FromMilliseconds(20),
            NodeExpiry = TimeSpan.FromMilliseconds(300),
            JoinGracePeriod = TimeSpan.FromMilliseconds(200),
        };
        var membership = new ClusterMembership("self", options);
        Assert.Equal(["self"], membership.Eligible());

        // Seen while this node was starting: eligible at once (nodes started together agree straight away).
        Assert.True(membership.Observe(new NodeHeartbeat { NodeId = "early", StartedAtMs = 1 }, out _));
        Assert.True(membership.IsLive("early"));
        Assert.Equal(["early", "self"], membership.Eligible());

        Thread.Sleep(250);
        Assert.True(membership.Observe(new NodeHeartbeat { NodeId = "late", StartedAtMs = 2 }, out bool newLeft));
        Assert.False(newLeft); // a new node replaces no incarnation
        Assert.False(membership.Observe(new NodeHeartbeat { NodeId = "early", StartedAtMs = 1 }, out bool sameLeft));
        Assert.False(sameLeft);
        Assert.True(membership.IsLive("late"));
        Assert.DoesNotContain("late", membership.Eligible());
        Thread.Sleep(220);
        membership.Observe(new NodeHeartbeat { NodeId = "late", StartedAtMs = 2 }, out _);
        membership.Observe(new NodeHeartbeat { NodeId = "early", StartedAtMs = 1 }, out _);
        Assert.Equal(["early", "late", "self"], membership.Eligible());
        Assert.Equal(3, membership.LiveCount);

        // A restart (another incarnation) waits out the grace again, and its previous incarnation has left (its clients'
        // presence goes); leaving drops at once.
        Assert.True(membership.Observe(new NodeHeartbeat { NodeId = "late", StartedAtMs = 3 }, out bool restartLeft));
        Assert.True(restartLeft);
        Assert.DoesNotContain("late", membership.Eligible());
        membership.Observe(new NodeHeartbeat { NodeId = "late", StartedAtMs = 3, Leaving = true }, out bool left);
        Assert.True(left);
        Assert.False(membership.IsLive("late"));

        // Silence expires a node.
        Thread.Sleep(350);
        Assert.False(membership.IsLive("early"));
        Assert.Equal(["self"], membership.Eligible());
        Assert.Equal(["early"], membership.Sweep());
        Assert.True(membership.IsLive("self"));
        Assert.False(membership.Observe(new NodeHeartbeat { NodeId = "self", StartedAtMs = 9 }, out _));
    }

    [Fact]
    public void Local_lease_deadline_runs_from_the_send_time_and_only_matching_epochs_change()
    {
        var options = new ClusterOptions { LeaseDuration = TimeSpan.FromSeconds(4), LeaseSafetyMargin = TimeSpan.FromSeconds(1) };
        var leases = new LeaseTable("n1", options);
        long now = Stopwatch.GetTimestamp();
        long threeSecondsAgo = now - (3 * Stopwatch.Frequency) - (Stopwatch.Frequency / 10);

        leases.Add("fresh", 7, now);
        leases.Add("old", 3, threeSecondsAgo);
        Assert.True(leases.TryGetEpoch("fresh", out long epoch));
        Assert.Equal(7, epoch);

        // Sent 3.1 s ago with a 4 s lease and a 1 s margin: no longer held locally, whatever the database says.
        Assert.False(leases.TryGetEpoch("old", out _));
        Assert.Equal([("old", 3L)], leases.Expired());

        // A renewal of the wrong epoch does not revive it; the right one does.
        leases.Extend("old", 2, now);
        Assert.False(leases.IsHeld("old", 3));
        leases.Extend("old", 3, now);
        Assert.True(leases.IsHeld("old", 3));
        Assert.Empty(leases.Expired());

        // Removing an older epoch leaves a newer lease alone.
        leases.Add("fresh", 8, now);
        leases.Remove("fresh", 7);
        Assert.True(leases.IsHeld("fresh", 8));
        leases.Remove("fresh", 8);
        Assert.False(leases.TryGetEpoch("fresh", out _));
        Assert.Equal(1, leases.Count);
        Assert.Equal(options.LeaseSafetyMargin, leases.WriteTimeout);
    }

    [Fact]
    public void Options_refuse_leases_that_cannot_survive_a_failed_renewal()
    {
        new ClusterOptions { Enabled = true }.Validate();
        Assert.Throws<OptionsValidationException>(() => new ClusterOptions { LeaseDuration = TimeSpan.FromSeconds(2), RenewInterval = TimeSpan.FromSeconds(1) }.Validate());
        Assert.Throws<OptionsValidationException>(() => new ClusterOptions { NodeExpiry = TimeSpan.FromMilliseconds(900), HeartbeatInterval = TimeSpan.FromMilliseconds(500) }.Validate());
        Assert.Throws<OptionsValidationException>(() => new ClusterOptions { Enabled = true, NatsUrl = " " }.Validate());
        Assert.Throws<OptionsValidationException>(() => new ClusterOptions { ForwardTimeout = TimeSpan.Zero }.Validate());
        Assert.Throws<OptionsValidationException>(() => new ClusterOptions { SubscriptionPendingMessages = 1 }.Validate());
        // One lost refresh must not expire a live client's presence.
        Assert.Throws<OptionsValidationException>(() => new ClusterOptions { PresenceRefreshInterval = TimeSpan.FromSeconds(10), PresenceExpiry = TimeSpan.FromSeconds(20) }.Validate());
        Assert.Throws<OptionsValidationException>(() => new ClusterOptions { PresenceRefreshInterval = TimeSpan.Zero }.Validate());
        var failure = Assert.Throws<OptionsValidationException>(() => new ClusterOptions { VersionTicksAfterActivity = 0, MaxPublishQueue = 0 }.Validate());
        Assert.Equal(2, failure.Failures.Count());
    }
}
