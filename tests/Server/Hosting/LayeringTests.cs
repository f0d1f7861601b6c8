using System.Text.RegularExpressions;
using Collab.Testing;

namespace Collab.Server.Tests.Hosting;

/// <summary>
/// The server's layers depend one way: Transport and Storage on no other layer, Security on Transport, Sessions on
/// Security, Storage and Transport; Hosting, Cluster and Api compose them. A layer that named a higher one (a using or
/// a qualified name) would close a cycle, as Sessions and Security once did over the id validators.
/// </summary>
public sealed partial class LayeringTests
{
    public static TheoryData<string, string[]> Layers() => new()
    {
        { "Transport", [] },
        { "Storage", [] },
        { "Security", ["Transport"] },
        { "Sessions", ["Security", "Storage", "Transport"] },
    };

    [Theory]
    [MemberData(nameof(Layers))]
    public void A_layer_names_only_the_layers_below_it(string layer, string[] allowed)
    {
        string directory = RepositoryFiles.PathOf(Path.Combine("src", "Server", layer));
        string[] files = Directory.GetFiles(directory, "*.cs", SearchOption.AllDirectories);
        Assert.NotEmpty(files);
        foreach (string file in files)
        {
            foreach (Match match in LayerReference().Matches(File.ReadAllText(file)))
            {
                string named = match.Groups[1].Value;
                Assert.True(named == layer || allowed.Contains(named), $"{Path.GetRelativePath(RepositoryFiles.Root, file)} names Collab.Server.{named}, a layer {layer} must not depend on.");
            }
        }
    }

    [GeneratedRegex(@"\bCollab\.Server\.(Transport|Storage|Security|Sessions|Hosting|Cluster|Api|Web)\b")]
    private static partial Regex LayerReference();
}
