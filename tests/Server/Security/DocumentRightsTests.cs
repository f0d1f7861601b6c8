using System.Text.Json;
using Collab.Protocol;
using Collab.Server.Security;
using CsCheck;

namespace Collab.Server.Tests.Security;

public sealed class DocumentRightsTests
{
    private static DocumentRights Parse(string json) => DocumentRights.ParseJson(json);

    [Fact]
    public void ExactIdsMatchOnlyThemselves()
    {
        DocumentRights rights = Parse("""{"read":["org1/doc42"]}""");
        Assert.True(rights.CanRead("org1/doc42"));
        Assert.False(rights.CanRead("org1/doc4"));
        Assert.False(rights.CanRead("org1/doc420"));
        Assert.False(rights.CanWrite("org1/doc42"));
    }

    [Fact]
    public void PrefixPatternsMatchEveryIdStartingWithThePrefix()
    {
        DocumentRights rights = Parse("""{"read":["org1/*"],"write":["org1/drafts/*"]}""");
        Assert.True(rights.CanRead("org1/a"));
        Assert.True(rights.CanRead("org1/deep/nested/doc"));
        Assert.False(rights.CanRead("org10/a"));
        Assert.False(rights.CanRead("org2/a"));
        Assert.True(rights.CanWrite("org1/drafts/x"));
        Assert.False(rights.CanWrite("org1/final"));
    }

    [Fact]
    public void StarAloneGrantsEverything()
    {
        DocumentRights rights = Parse("""{"write":["*"]}""");
        Assert.True(rights.CanWrite("anything/at.all"));
        Assert.True(rights.CanRead("x"));
    }

    [Fact]
    public void WriteImpliesRead()
    {
        DocumentRights rights = Parse("""{"write":["notes/1"]}""");
        Assert.True(rights.CanRead("notes/1"));
        Assert.True(rights.CanWrite("notes/1"));
    }

    [Fact]
    public void ASingleStringIsOnePattern()
    {
        DocumentRights rights = Parse("""{"read":"help/*"}""");
        Assert.True(rights.CanRead("help/index"));
        Assert.False(rights.CanWrite("help/index"));
    }

    [Fact]
    public void AClaimHoldingJsonTextIsParsed()
    {
        using JsonDocument document = JsonDocument.Parse("\"{\\\"read\\\":[\\\"a\\\"]}\"");
        DocumentRights rights = DocumentRights.Parse(document.RootElement);
        Assert.True(rights.CanRead("a"));
    }

    [Fact]
    public void UnknownMembersAreIgnoredAndMissingOnesGrantNothing()
    {
        DocumentRights rights = Parse("""{"admin":true,"comment":["*"]}""");
        Assert.True(rights.IsEmpty);
        Assert.False(rights.CanRead("x"));
    }

    [Theory]
    [InlineData("""{"read":["org1/*/x"]}""")]
    [InlineData("""{"read":["a**"]}""")]
    [InlineData("""{"read":["has space"]}""")]
    [InlineData("""{"read":["/rooted"]}""")]
    [InlineData("""{"read":["a/../b"]}""")]
    [InlineData("""{"read":[""]}""")]
    [InlineData("""{"read":[42]}""")]
    [InlineData("""{"read":{"a":1}}""")]
    [InlineData("""["*"]""")]
    [InlineData("""not json""")]
    public void MalformedClaimsAreRefusedNotReadAsNoRights(string json)
    {
        Assert.Throws<FormatException>(() => Parse(json));
    }

    [Fact]
    public void TooManyPatternsAreRefused()
    {
        string many = string.Join(",", Enumerable.Range(0, DocumentRights.MaxPatterns + 1).Select(i => $"\"d{i}\""));
        Assert.Throws<FormatException>(() => Parse($$"""{"read":[{{many}}]}"""));
    }

    [Fact]
    public void PrefixMatchingIsExactlyStartsWith()
    {
        Gen<string> idChars = Gen.Char["abc/._-"].Array[1, 12].Select(chars => "d" + new string(chars));
        Gen<(string Prefix, string Id)> gen = Gen.Select(idChars, idChars);
        foreach (string? seed in new[] { "0000000000001", "0000000000002", null })
        {
            gen.Sample(t =>
            {
                (string prefix, string id) = t;
                if (!DocumentId.IsValid(prefix + "x") || !DocumentId.IsValid(id))
                {
                    return;
                }

                DocumentRights rights = DocumentRights.Create(read: [prefix + "*"], write: []);
                Assert.Equal(id.StartsWith(prefix, StringComparison.Ordinal), rights.CanRead(id));
                Assert.False(rights.CanWrite(id));
            }, seed: seed, iter: 3000);
        }
    }
}
