using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Collab.Testing;

namespace Collab.Integration.Tests.Infrastructure;

/// <summary>
/// The repository's Dockerfile read as Docker reads the parts the tests need: ENV, EXPOSE, VOLUME, HEALTHCHECK and
/// ENTRYPOINT of the final stage, the sources COPY takes from the build context (every stage), and the comments.
/// </summary>
public sealed partial record Dockerfile(
    IReadOnlyDictionary<string, string> Env,
    IReadOnlyList<int> Expose,
    IReadOnlyList<string> Volumes,
    string[] HealthCheck,
    string[] Entrypoint,
    IReadOnlyList<string> CopiedSources,
    IReadOnlyList<string> Comments)
{
    public static Dockerfile Parse(string text)
    {
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        var expose = new List<int>();
        var volumes = new List<string>();
        var copied = new List<string>();
        var comments = new List<string>();
        string[] health = [];
        string[] entrypoint = [];
        foreach (string instruction in Instructions(text, comments))
        {
            string[] parts = instruction.Split(' ', 2, StringSplitOptions.TrimEntries);
            string arguments = parts.Length > 1 ? parts[1] : "";
            switch (parts[0].ToUpperInvariant())
            {
                case "FROM":
                    // A new stage: what the image runs with is the final stage's.
                    env.Clear();
                    expose.Clear();
                    volumes.Clear();
                    (health, entrypoint) = ([], []);
                    break;
                case "ENV":
                    foreach (Match pair in EnvPair().Matches(arguments))
                    {
                        env[pair.Groups[1].Value] = pair.Groups[2].Value.Trim('"');
                    }

                    break;
                case "EXPOSE":
                    expose.AddRange(arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(p => int.Parse(p.Split('/')[0], CultureInfo.InvariantCulture)));
                    break;
                case "VOLUME":
                    volumes.AddRange(JsonSerializer.Deserialize<string[]>(arguments)!);
                    break;
                case "HEALTHCHECK":
                    health = JsonSerializer.Deserialize<string[]>(arguments[(arguments.IndexOf("CMD ", StringComparison.Ordinal) + 4)..])!;
                    break;
                case "ENTRYPOINT":
                    entrypoint = JsonSerializer.Deserialize<string[]>(arguments)!;
                    break;
                case "COPY" when !arguments.StartsWith("--from", StringComparison.Ordinal):
                    string[] paths = arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    copied.AddRange(paths[..^1]);
                    break;
            }
        }

        return new Dockerfile(env, expose, volumes, health, entrypoint, copied, comments);
    }

    /// <summary>Instructions with continuation lines joined; comment lines go to <paramref name="comments"/>.</summary>
    private static IEnumerable<string> Instructions(string text, List<string> comments)
    {
        string pending = "";
        foreach (string raw in text.Split('\n'))
        {
            string line = raw.Trim();
            if (line.StartsWith('#'))
            {
                comments.Add(line[1..].Trim());
                continue;
            }

            if (line.EndsWith('\\'))
            {
                pending += line[..^1] + " ";
                continue;
            }

            string instruction = (pending + line).Trim();
            pending = "";
            if (instruction.Length > 0)
            {
                yield return instruction;
            }
        }
    }

    /// <summary>The repository's Dockerfile.</summary>
    public static Dockerfile Repository() => Parse(File.ReadAllText(RepositoryFiles.PathOf("Dockerfile")));

    [GeneratedRegex(@"([A-Za-z_][A-Za-z0-9_]*)=(""[^""]*""|\S*)")]
    private static partial Regex EnvPair();
}
