using Collab.Protocol.V1;

namespace Collab.Protocol;

/// <summary>
/// The limits of the wire contract in one place: the defaults a server enforces when it is not configured
/// otherwise, and how they are announced in <see cref="Welcome"/> (docs/PROTOCOL.md section 11). The server
/// takes its defaults from here and announces what it enforces; an SDK reads the announcement, and uses the
/// defaults only against a server that announces nothing.
/// </summary>
public static class ProtocolLimits
{
    /// <summary>Largest <see cref="ClientMessage"/> (all fragments together) a server accepts by default: 1 MiB.</summary>
    public const int DefaultMaxMessageBytes = 1024 * 1024;

    /// <summary>Largest encoded <see cref="Submit.Op"/> a server accepts by default: 256 KiB.</summary>
    public const int DefaultMaxOpBytes = 256 * 1024;

    /// <summary>Largest <see cref="PresenceUpdate.UserData"/> a server accepts by default: 1 KiB.</summary>
    public const int DefaultMaxPresenceBytes = 1024;
}

/// <summary>The limits a server announces in <see cref="Welcome"/>; 0 in a field means "not announced".</summary>
/// <param name="MaxMessageBytes">Largest <see cref="ClientMessage"/>; a bigger one closes the connection with 1009.</param>
/// <param name="MaxOpBytes">Largest encoded <see cref="Submit.Op"/>; a bigger one gets <c>Error{OP_TOO_LARGE}</c>.</param>
/// <param name="MaxPresenceBytes">Largest <see cref="PresenceUpdate.UserData"/>; a bigger one gets <c>Error{BAD_MESSAGE}</c>.</param>
public readonly record struct AnnouncedLimits(int MaxMessageBytes, int MaxOpBytes, int MaxPresenceBytes)
{
    /// <summary>What a server that announces nothing is assumed to enforce: the protocol's defaults.</summary>
    public static AnnouncedLimits Defaults { get; } = new(ProtocolLimits.DefaultMaxMessageBytes, ProtocolLimits.DefaultMaxOpBytes, ProtocolLimits.DefaultMaxPresenceBytes);

    /// <summary>Reads the announcement; a field the server left at 0 (an older server) takes the protocol default.</summary>
    public static AnnouncedLimits FromWelcome(Welcome welcome)
    {
        ArgumentNullException.ThrowIfNull(welcome);
        return new AnnouncedLimits(
            Read(welcome.MaxMessageBytes, ProtocolLimits.DefaultMaxMessageBytes),
            Read(welcome.MaxOpBytes, ProtocolLimits.DefaultMaxOpBytes),
            Read(welcome.MaxPresenceBytes, ProtocolLimits.DefaultMaxPresenceBytes));

        static int Read(uint announced, int fallback) => announced == 0 ? fallback : (int)Math.Min(announced, int.MaxValue);
    }

    /// <summary>Writes these limits into <paramref name="welcome"/>.</summary>
    public void AnnounceIn(Welcome welcome)
    {
        ArgumentNullException.ThrowIfNull(welcome);
        welcome.MaxMessageBytes = checked((uint)MaxMessageBytes);
        welcome.MaxOpBytes = checked((uint)MaxOpBytes);
        welcome.MaxPresenceBytes = checked((uint)MaxPresenceBytes);
    }
}
