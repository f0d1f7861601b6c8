namespace Collab.Server.Sessions;

/// <summary>Source-generated log messages of the session layer, with stable event ids (2000–2099).</summary>
internal sealed partial class SessionLog
{
    private readonly ILogger _logger;

    public SessionLog(ILogger logger) => _logger = logger;

    /// <summary>The logger behind these messages, for work started with <see cref="FireAndForget"/>.</summary>
    public ILogger Logger => _logger;

    [LoggerMessage(2000, LogLevel.Debug, "Document {DocId} opened at version {Version} ({OpsReplayed} ops replayed after the snapshot)")]
    public partial void DocumentOpened(string docId, long version, int opsReplayed);

    [LoggerMessage(2001, LogLevel.Debug, "Document {DocId} closed at version {Version}")]
    public partial void DocumentClosed(string docId, long version);

    [LoggerMessage(2002, LogLevel.Warning, "Document {DocId} could not be closed cleanly")]
    public partial void DocumentCloseFailed(string docId, Exception exception);

    [LoggerMessage(2003, LogLevel.Warning, "Document {DocId} was fenced ({Reason}); reloading it from the op log and resuming its {Subscribers} subscribers")]
    public partial void DocumentFenced(string docId, string reason, int subscribers);

    [LoggerMessage(2004, LogLevel.Warning, "Snapshot of document {DocId} failed; the op log still holds every op")]
    public partial void SnapshotFailed(string docId, Exception exception);

    [LoggerMessage(2005, LogLevel.Warning, "History of document {DocId} after version {FromVersion} could not be read")]
    public partial void HistoryReadFailed(string docId, long fromVersion, Exception exception);

    [LoggerMessage(2006, LogLevel.Warning, "Document {DocId} could not be opened")]
    public partial void DocumentLoadFailed(string docId, Exception exception);

    [LoggerMessage(2007, LogLevel.Debug, "Connection {ConnectionId}: client {ClientId} said hello (resumed: {Resumed})")]
    public partial void Hello(long connectionId, string clientId, bool resumed);

    [LoggerMessage(2008, LogLevel.Information, "Connection {ConnectionId} closed with {CloseCode} for what the client sent: {Reason}")]
    public partial void ProtocolAbuse(long connectionId, int closeCode, string reason);

    [LoggerMessage(2009, LogLevel.Error, "Connection {ConnectionId}: unexpected error handling a message")]
    public partial void MessageFailed(long connectionId, Exception exception);

    [LoggerMessage(2010, LogLevel.Error, "Document {DocId} stopped on an unexpected fault ({Failure}); reloading it from the op log and resuming its {Subscribers} subscribers")]
    public partial void DocumentFaulted(string docId, DocumentFailure failure, int subscribers, Exception reason);

    [LoggerMessage(2011, LogLevel.Error, "Recovery of document {DocId} after a failure went wrong; its clients reconnect instead")]
    public partial void RecoveryFailed(string docId, Exception exception);

    [LoggerMessage(2012, LogLevel.Information, "Connection {ConnectionId}: subscription to document {DocId} resumed from version {Version} after the document was reloaded")]
    public partial void SubscriptionResumed(long connectionId, string docId, long version);

    [LoggerMessage(2013, LogLevel.Warning, "Connection {ConnectionId}: subscription to document {DocId} could not be resumed after the document failed; the client reconnects")]
    public partial void SubscriptionNotResumed(long connectionId, string docId, Exception? exception);
}
