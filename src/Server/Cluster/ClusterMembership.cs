using System.Diagnostics;
using Collab.Protocol.V1;

namespace Collab.Server.Cluster;

/// <summary>
/// Which nodes are alive, from their heartbeats (<c>collab.v1.nodes.heartbeat</c>). A node is live while heard from
/// within <see cref="ClusterOptions.NodeExpiry"/>, and gone at once when it announces it is leaving. Ownership is
/// computed over the <em>eligible</em> nodes: live ones that have been around for <see cref="ClusterOptions.JoinGracePeriod"/>
/// (or were already there when this node started), so a node that flaps does not make documents move back and forth.
/// This node is always live and eligible in its own view. Thread-safe.
/// </summary>
internal sealed class ClusterMembership
{
    private readonly object _gate = new();
    private readonly Dictionary<string, Member> _members = new(StringComparer.Ordinal);
    private readonly long _expiryTicks;
    private readonly long _graceTicks;
    private readonly long _startedAt;
    private string[] _eligible;
    private long _eligibleComputedAt;

    public ClusterMembership(string selfId, ClusterOptions options)
    {
        SelfId = selfId;
        _expiryTicks = ToTicks(options.NodeExpiry);
        _graceTicks = ToTicks(options.JoinGracePeriod);
        _startedAt = Stopwatch.GetTimestamp();
        _eligible = [selfId];
    }

    public string SelfId { get; }

    /// <summary>
    /// Records a heartbeat; returns true when it introduced a node not known before (for logging). <paramref name="left"/>
    /// is true when a known incarnation of the node is gone: it announced it is leaving, or it restarted (another process
    /// start) or had expired without being swept yet. Whatever that incarnation's clients left behind (presence) goes.
    /// </summary>
    public bool Observe(NodeHeartbeat heartbeat, out bool left)
    {
        left = false;
        if (string.Equals(heartbeat.NodeId, SelfId, StringComparison.Ordinal) || heartbeat.NodeId.Length == 0)
        {
            return false;
        }

        long now = Stopwatch.GetTimestamp();
        lock (_gate)
        {
            if (heartbeat.Leaving)
            {
                left = _members.Remove(heartbeat.NodeId);
                _eligibleComputedAt = 0;
                return false;
            }

            if (_members.TryGetValue(heartbeat.NodeId, out Member? member) && member.StartedAtMs == heartbeat.StartedAtMs && now - member.LastSeen < _expiryTicks)
            {
                member.LastSeen = now;
                return false;
            }

            // New, expired, or restarted (another incarnation): it joins afresh and waits out the grace period again.
            left = member is not null;
            _members[heartbeat.NodeId] = new Member(heartbeat.StartedAtMs, firstSeen: now) { LastSeen = now };
            _eligibleComputedAt = 0;
            return true;
        }
    }

    /// <summary>Whether <paramref name="nodeId"/> was heard from recently (this node always is).</summary>
    public bool IsLive(string nodeId)
    {
        if (string.Equals(nodeId, SelfId, StringComparison.Ordinal))
        {
            return true;
        }

        lock (_gate)
        {
            return _members.TryGetValue(nodeId, out Member? member) && Stopwatch.GetTimestamp() - member.LastSeen < _expiryTicks;
        }
    }

    /// <summary>The nodes among which documents are placed, sorted; cached for a few milliseconds.</summary>
    public IReadOnlyList<string> Eligible()
    {
        long now = Stopwatch.GetTimestamp();
        lock (_gate)
        {
            if (_eligibleComputedAt != 0 && now - _eligibleComputedAt < Stopwatch.Frequency / 100)
            {
                return _eligible;
            }

            var eligible = new List<string> { SelfId };
            foreach ((string nodeId, Member member) in _members)
            {
                bool live = now - member.LastSeen < _expiryTicks;
                bool settled = now - member.FirstSeen >= _graceTicks || member.FirstSeen - _startedAt < _graceTicks;
                if (live && settled)
                {
                    eligible.Add(nodeId);
                }
            }

            eligible.Sort(StringComparer.Ordinal);
            _eligible = [.. eligible];
            _eligibleComputedAt = now;
            return _eligible;
        }
    }

    /// <summary>Drops nodes not heard from within the expiry; returns their ids (for logging).</summary>
    public List<string> Sweep()
    {
        var gone = new List<string>();
        long now = Stopwatch.GetTimestamp();
        lock (_gate)
        {
            foreach ((string nodeId, Member member) in _members)
            {
                if (now - member.LastSeen >= _expiryTicks)
                {
                    gone.Add(nodeId);
                }
            }

            foreach (string nodeId in gone)
            {
                _members.Remove(nodeId);
            }

            if (gone.Count > 0)
            {
                _eligibleComputedAt = 0;
            }
        }

        return gone;
    }

    /// <summary>Live nodes including this one.</summary>
    public int LiveCount
    {
        get
        {
            long now = Stopwatch.GetTimestamp();
            lock (_gate)
            {
                return 1 + _members.Values.Count(m => now - m.LastSeen < _expiryTicks);
            }
        }
    }

    private static long ToTicks(TimeSpan span) => (long)(span.TotalSeconds * Stopwatch.Frequency);

    private sealed class Member(long startedAtMs, long firstSeen)
    {
        public long StartedAtMs { get; } = startedAtMs;

        public long FirstSeen { get; } = firstSeen;

        public long LastSeen { get; set; }
    }
}
