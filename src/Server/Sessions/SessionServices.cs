using Collab.Server.Security;

namespace Collab.Server.Sessions;

/// <summary>What every session of this node shares.</summary>
internal sealed class SessionServices
{
    public SessionServices(DocumentRegistry documents, DocumentOptions options, string nodeId, int maxMessageBytes, SecurityServices security, ClientIdIssuer? clientIds = null)
    {
        Documents = documents;
        ClientIds = clientIds ?? new ClientIdIssuer(documents.Store);
        Security = security;
        Options = options;
        NodeId = nodeId;
        MaxMessageBytes = maxMessageBytes;
        Log = documents.Log;
    }

    public DocumentRegistry Documents { get; }

    public DocumentOptions Options { get; }

    public string NodeId { get; }

    public int MaxMessageBytes { get; }

    public SessionLog Log { get; }

    /// <summary>Authentication, authorization and abuse limits.</summary>
    public SecurityServices Security { get; }

    /// <summary>Issues and recognises client ids.</summary>
    public ClientIdIssuer ClientIds { get; }

    /// <summary>The live session of each client id on this node (a second Hello with one takes it over).</summary>
    public LiveClients LiveClients { get; } = new();
}
