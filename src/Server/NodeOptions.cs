namespace Collab.Server;

/// <summary>This node's identity (configuration section "Node").</summary>
public sealed class NodeOptions
{
    public const string Section = "Node";

    /// <summary>Stable id of this node in logs, metrics, Welcome.server_id and (in a cluster) ownership leases. Default: host name and process id.</summary>
    public string NodeId { get; set; } = $"{Environment.MachineName}-{Environment.ProcessId}";

    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(NodeId) || NodeId.Length > 64)
        {
            throw SettingErrors.ForSetting(Section, typeof(NodeOptions), nameof(NodeId), "must be 1-64 characters.");
        }
    }
}
