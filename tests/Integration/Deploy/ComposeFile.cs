using System.Globalization;
using System.Text.RegularExpressions;

namespace Collab.Integration.Tests.Deploy;

/// <summary>A service of deploy/compose.yaml, with Compose's variable defaults applied (<c>${NAME:-default}</c>).</summary>
internal sealed record ComposeService(string Name, Dictionary<object, object> Definition)
{
    public IReadOnlyDictionary<string, string> Environment =>
        DeployAssets.StringMap(Definition.Get("environment"), $"{Name}.environment").ToDictionary(kv => kv.Key, kv => ComposeFile.Interpolate(kv.Value), StringComparer.Ordinal);

    /// <summary>Published ports: (host address or null, host port, container port).</summary>
    public IReadOnlyList<(string? Address, int Host, int Container)> Ports =>
        (Definition.Get("ports") as List<object> ?? []).Select(p => ComposeFile.ParsePort(DeployAssets.Str(p, $"{Name}.ports[]"))).ToList();

    public IReadOnlyList<int> Expose =>
        (Definition.Get("expose") as List<object> ?? []).Select(p => int.Parse(DeployAssets.Str(p, $"{Name}.expose[]"), CultureInfo.InvariantCulture)).ToList();

    /// <summary>Bind mounts: the file or directory under deploy/ and where the container sees it.</summary>
    public IReadOnlyList<(string HostPath, string ContainerPath)> BindMounts =>
        (Definition.Get("volumes") as List<object> ?? [])
            .Select(v => DeployAssets.Str(v, $"{Name}.volumes[]").Split(':'))
            .Where(parts => parts[0].StartsWith('.'))
            .Select(parts => (Path.GetFullPath(Path.Combine(DeployAssets.Directory, parts[0])), parts[1]))
            .ToList();

    /// <summary>The file under deploy/ that the container sees at <paramref name="containerPath"/> through a bind mount.</summary>
    public string HostPathOf(string containerPath)
    {
        foreach ((string host, string container) in BindMounts.OrderByDescending(m => m.ContainerPath.Length))
        {
            if (containerPath == container || containerPath.StartsWith(container + "/", StringComparison.Ordinal))
            {
                return Path.Combine(host, containerPath[container.Length..].TrimStart('/'));
            }
        }

        throw new InvalidDataException($"{Name}: nothing is mounted at {containerPath}");
    }

    public IReadOnlyList<string> Command =>
        Definition.Get("command") switch
        {
            List<object> list => list.Select(c => DeployAssets.Str(c, $"{Name}.command[]")).ToList(),
            string text => text.Split(' ', StringSplitOptions.RemoveEmptyEntries),
            _ => [],
        };
}

/// <summary>deploy/compose.yaml and the repository's Dockerfile, read the way Docker Compose and Docker would.</summary>
internal static partial class ComposeFile
{
    public static IReadOnlyList<ComposeService> Services()
    {
        var compose = DeployAssets.Map(DeployAssets.LoadYaml(DeployAssets.ComposeFile), "compose.yaml");
        return DeployAssets.Map(compose.Get("services"), "services")
            .Select(kv => new ComposeService(DeployAssets.Str(kv.Key, "service name"), DeployAssets.Map(kv.Value, $"service {kv.Key}")))
            .ToList();
    }

    public static ComposeService Service(string name) => Services().Single(s => s.Name == name);

    /// <summary>The services built from the repository's Dockerfile: the Collab nodes.</summary>
    public static IReadOnlyList<ComposeService> Nodes() =>
        Services().Where(s => s.Definition.Get("build") is not null).ToList();

    public static IReadOnlyDictionary<string, string> Volumes()
    {
        var compose = DeployAssets.Map(DeployAssets.LoadYaml(DeployAssets.ComposeFile), "compose.yaml");
        return DeployAssets.Map(compose.Get("volumes"), "volumes").ToDictionary(kv => DeployAssets.Str(kv.Key, "volume"), _ => string.Empty, StringComparer.Ordinal);
    }

    /// <summary>
    /// Compose's interpolation with nothing in the environment: <c>${NAME:-default}</c> is the default, <c>$$</c> a
    /// dollar sign. A variable without a default fails, since the file must run as it is.
    /// </summary>
    public static string Interpolate(string value) => Variable().Replace(value.Replace("$$", "\0", StringComparison.Ordinal), m =>
        m.Groups["default"].Success ? m.Groups["default"].Value : throw new InvalidDataException($"compose.yaml needs ${{{m.Groups["name"].Value}}} set: give it a default")).Replace('\0', '$');

    public static (string? Address, int Host, int Container) ParsePort(string mapping)
    {
        string[] parts = mapping.Split(':');
        Assert.True(parts.Length is 2 or 3, $"port mapping \"{mapping}\": expected [address:]host:container");
        int Number(string text) => int.Parse(text, CultureInfo.InvariantCulture);
        return parts.Length == 3 ? (parts[0], Number(parts[1]), Number(parts[2])) : (null, Number(parts[0]), Number(parts[1]));
    }

    /// <summary>Compose durations as used here: "30s", "1m30s".</summary>
    public static TimeSpan ParseDuration(string text)
    {
        Match match = Duration().Match(text);
        Assert.True(match.Success, $"duration \"{text}\"");
        int Part(string name) => match.Groups[name].Success ? int.Parse(match.Groups[name].Value, CultureInfo.InvariantCulture) : 0;
        return new TimeSpan(0, Part("m"), Part("s"));
    }

    /// <summary>The Dockerfile's ENV settings of the final stage and its EXPOSEd ports.</summary>
    public static (IReadOnlyDictionary<string, string> Environment, IReadOnlyList<int> Exposed) Dockerfile()
    {
        string text = File.ReadAllText(Path.Combine(DeployAssets.RepositoryRoot, "Dockerfile")).Replace("\\\n", " ", StringComparison.Ordinal);
        var lines = text.Split('\n').Select(l => l.Trim()).ToList();
        int lastStage = lines.FindLastIndex(l => l.StartsWith("FROM ", StringComparison.Ordinal));
        var environment = new Dictionary<string, string>(StringComparer.Ordinal);
        var exposed = new List<int>();
        foreach (string line in lines.Skip(lastStage))
        {
            if (line.StartsWith("ENV ", StringComparison.Ordinal))
            {
                foreach (Match pair in EnvPair().Matches(line[4..]))
                {
                    environment[pair.Groups["key"].Value] = pair.Groups["value"].Value.Trim('"');
                }
            }
            else if (line.StartsWith("EXPOSE ", StringComparison.Ordinal))
            {
                exposed.AddRange(line[7..].Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(p => int.Parse(p.Split('/')[0], CultureInfo.InvariantCulture)));
            }
        }

        return (environment, exposed);
    }

    /// <summary>What a node's process sees: the image's ENV overlaid with the service's environment.</summary>
    public static IReadOnlyDictionary<string, string> EffectiveEnvironment(ComposeService node)
    {
        var environment = new Dictionary<string, string>(Dockerfile().Environment, StringComparer.Ordinal);
        foreach ((string key, string value) in node.Environment)
        {
            environment[key] = value;
        }

        return environment;
    }

    [GeneratedRegex(@"\$\{(?<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?<default>[^}]*))?\}")]
    private static partial Regex Variable();

    [GeneratedRegex(@"^(?:(?<m>\d+)m)?(?:(?<s>\d+)s)?$")]
    private static partial Regex Duration();

    [GeneratedRegex(@"(?<key>[A-Za-z_][A-Za-z0-9_]*)=(?<value>""[^""]*""|\S*)")]
    private static partial Regex EnvPair();
}
