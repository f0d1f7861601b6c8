namespace Collab.Testing;

/// <summary>
/// Files of the repository the tests check or run (docs, README, Dockerfile, build outputs), found from the test binaries
/// upwards. In tests/Collab.Testing, which every test project references (tests/Directory.Build.props).
/// </summary>
public static class RepositoryFiles
{
    private static readonly Lazy<string> s_root = new(() =>
    {
        for (DirectoryInfo? dir = new(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Collab.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("Collab.sln not found above " + AppContext.BaseDirectory);
    });

    /// <summary>The repository's root directory (the one holding Collab.sln).</summary>
    public static string Root => s_root.Value;

    /// <summary>The full path of a file given relative to the root, e.g. "docs/PROTOCOL.md".</summary>
    public static string PathOf(string relative) => Path.Combine(Root, relative);

    public static string ReadAllText(string relative) => File.ReadAllText(PathOf(relative));
}
