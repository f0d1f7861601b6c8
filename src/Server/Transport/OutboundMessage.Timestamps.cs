using Collab.Engine.Sequencing;

namespace Collab.Server.Transport;

public sealed partial class OutboundMessage
{
    /// <summary>
    /// Set on an Ack frame: when its op was received, sequenced and committed. The connection that writes the frame
    /// observes the stages with the moment it was written (<see cref="Hosting.LatencyMetrics"/>). Unset on every other
    /// frame; reset when the message returns to its pool.
    /// </summary>
    internal OpTimestamps Timestamps { get; set; }

    /// <summary>Stamps this (Ack) frame with its op's timestamps and returns it.</summary>
    internal OutboundMessage WithTimestamps(in OpTimestamps timestamps)
    {
        Timestamps = timestamps;
        return this;
    }
}
