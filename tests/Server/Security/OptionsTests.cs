using Collab.Server.Security;
using Microsoft.Extensions.Options;

namespace Collab.Server.Tests.Security;

public sealed class OptionsTests
{
    private static AuthOptions ValidJwt() => new()
    {
        Mode = AuthMode.Jwt,
        Issuers = ["https://idp/"],
        Audiences = ["collab"],
        SigningKey = new string('k', 32),
    };

    [Fact]
    public void DefaultsAreAnonymousAndValid()
    {
        var options = new AuthOptions();
        Assert.Equal(AuthMode.Anonymous, options.Mode);
        options.Validate();
        new LimitsOptions().Validate();
    }

    [Fact]
    public void JwtWithSharedSecretDefaultsToHs256Only()
    {
        AuthOptions options = ValidJwt();
        options.Validate();
        Assert.Equal(new[] { "HS256" }, options.EffectiveAlgorithms());
    }

    [Theory]
    [InlineData("Issuers")]
    [InlineData("Audiences")]
    [InlineData("Keys")]
    public void JwtNeedsIssuersAudiencesAndKeys(string missing)
    {
        AuthOptions options = ValidJwt();
        switch (missing)
        {
            case "Issuers":
                options.Issuers.Clear();
                break;
            case "Audiences":
                options.Audiences.Clear();
                break;
            default:
                options.SigningKey = null;
                break;
        }

        OptionsValidationException error = Assert.Throws<OptionsValidationException>(options.Validate);
        Assert.Contains(missing == "Keys" ? "needs keys" : missing, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ShortSharedSecretsAreRefused()
    {
        AuthOptions options = ValidJwt();
        options.SigningKey = "too-short";
        Assert.Contains("at least 32 bytes", Assert.Throws<OptionsValidationException>(options.Validate).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Base64SecretsAreDecoded()
    {
        AuthOptions options = ValidJwt();
        options.SigningKey = "base64:" + Convert.ToBase64String(new byte[48]);
        options.Validate();
        Assert.Equal(48, options.SigningKeyBytes()!.Length);
        options.SigningKey = "base64:!!!";
        Assert.Throws<OptionsValidationException>(options.Validate);
    }

    [Theory]
    [InlineData("none")]
    [InlineData("None")]
    [InlineData("HS1")]
    public void AlgorithmNoneAndUnknownAlgorithmsAreRefusedWithOneClearError(string algorithm)
    {
        string expected = string.Equals(algorithm, "none", StringComparison.OrdinalIgnoreCase) ? "never allowed" : "is not one of";
        AuthOptions options = ValidJwt();
        options.AllowedAlgorithms = ["HS256", algorithm];
        string failure = Assert.Single(Assert.Throws<OptionsValidationException>(options.Validate).Failures);
        Assert.StartsWith("Auth:AllowedAlgorithms:1: ", failure, StringComparison.Ordinal);
        Assert.Contains(expected, failure, StringComparison.Ordinal);

        // Alone, too: no second error claiming it is an asymmetric algorithm without a key set.
        options.AllowedAlgorithms = [algorithm];
        failure = Assert.Single(Assert.Throws<OptionsValidationException>(options.Validate).Failures);
        Assert.StartsWith("Auth:AllowedAlgorithms:0: ", failure, StringComparison.Ordinal);
        Assert.Contains(expected, failure, StringComparison.Ordinal);
    }

    [Fact]
    public void AsymmetricAlgorithmsNeedAKeySet()
    {
        AuthOptions options = ValidJwt();
        options.AllowedAlgorithms = ["RS256"];
        Assert.Throws<OptionsValidationException>(options.Validate);
    }

    [Theory]
    [InlineData("http://idp.example.com/jwks", false)]
    [InlineData("ftp://idp.example.com/jwks", false)]
    [InlineData("https://idp.example.com/jwks", true)]
    [InlineData("http://127.0.0.1:9999/jwks", true)]
    public void JwksUrlMustBeHttpsUnlessLoopback(string url, bool valid)
    {
        AuthOptions options = ValidJwt();
        options.SigningKey = null;
        options.JwksUrl = url;
        if (valid)
        {
            options.Validate();
            Assert.Equal(new[] { "RS256", "ES256" }, options.EffectiveAlgorithms());
        }
        else
        {
            Assert.Throws<OptionsValidationException>(options.Validate);
        }
    }

    [Fact]
    public void JwksPathMustExistAndExcludesUrl()
    {
        AuthOptions options = ValidJwt();
        options.JwksPath = "/nonexistent/jwks.json";
        Assert.Contains("does not exist", Assert.Throws<OptionsValidationException>(options.Validate).Message, StringComparison.Ordinal);
        options.JwksUrl = "https://idp/jwks";
        Assert.Contains("not both", Assert.Throws<OptionsValidationException>(options.Validate).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AdminTokenMustBeLong()
    {
        AuthOptions options = new() { AdminToken = "short" };
        Assert.Throws<OptionsValidationException>(options.Validate);
        options.AdminToken = new string('a', AuthOptions.MinAdminTokenLength);
        options.Validate();
    }

    [Fact]
    public void LimitsRefuseNegativeRatesAndZeroBursts()
    {
        Assert.Throws<OptionsValidationException>(new LimitsOptions { OpsPerSecond = -1 }.Validate);
        Assert.Throws<OptionsValidationException>(new LimitsOptions { OpsBurst = 0 }.Validate);
        Assert.Throws<OptionsValidationException>(new LimitsOptions { ViolationsBeforeClose = 0 }.Validate);
        Assert.Throws<OptionsValidationException>(new LimitsOptions { ConnectionAttemptsPerIpPerMinute = -5 }.Validate);
        new LimitsOptions { OpsPerSecond = 0, OpsBurst = 0 }.Validate(); // 0 turns the limit off
    }
}
