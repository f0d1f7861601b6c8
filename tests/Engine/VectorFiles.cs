using System.Text.Json;
using Collab.Testing;

namespace Collab.Engine.Tests;

/// <summary>
/// The codec vector files in tests/vectors: written by the C# codec tests (with <see cref="UpdateVariable"/>=1) and
/// replayed by the browser SDK's tests, so both codecs stay pinned to the same bytes.
/// </summary>
internal static class VectorFiles
{
    public const string UpdateVariable = "COLLAB_UPDATE_VECTORS";

    public static string PathOf(string name) => RepositoryFiles.PathOf(Path.Combine("tests", "vectors", name));

    public static JsonDocument Load(string name) => JsonDocument.Parse(File.ReadAllText(PathOf(name)));

    /// <summary>The file <paramref name="name"/> holds exactly <paramref name="expected"/> (written first when updating).</summary>
    public static void AssertFileIs(string name, string expected)
    {
        string path = PathOf(name);
        if (Environment.GetEnvironmentVariable(UpdateVariable) == "1")
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllText(path, expected);
        }

        Assert.True(File.Exists(path), $"{path} is missing: run this test with {UpdateVariable}=1 to write it.");
        string actual = File.ReadAllText(path).ReplaceLineEndings("\n");
        Assert.True(expected == actual, $"{path} differs from what the C# codec produces: run this test with {UpdateVariable}=1 and review the diff.");
    }
}
