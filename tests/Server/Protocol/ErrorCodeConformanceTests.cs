using System.Globalization;
using Collab.Protocol.V1;
using Collab.Server.Sessions;

namespace Collab.Server.Tests.Protocol;

/// <summary>
/// docs/PROTOCOL.md section 9 against the one definition of error codes (<see cref="ErrorCode"/> in collab.proto) and
/// the server's retry classification: every documented code is the enum value of the same number and name, every
/// enum value is documented, and the Retryable column is what the server puts in <c>Error.retryable</c>.
/// </summary>
public sealed class ErrorCodeConformanceTests
{
    private static readonly IReadOnlyList<IReadOnlyDictionary<string, string>> s_rows = ProtocolSpec.Table("## 9. Errors");

    [Fact]
    public void The_table_lists_exactly_the_ErrorCode_enum_under_the_same_names()
    {
        SortedDictionary<int, string> documented = new(s_rows.ToDictionary(Code, row => ProtocolSpec.PascalCase(row["Name"].Trim('`'))));
        SortedDictionary<int, string> defined = new(Enum.GetValues<ErrorCode>().Where(c => c != ErrorCode.Unspecified).ToDictionary(c => (int)c, c => c.ToString()));
        Assert.Equal(defined, documented);
    }

    [Fact]
    public void The_retryable_column_is_what_the_server_sends()
    {
        foreach (IReadOnlyDictionary<string, string> row in s_rows)
        {
            var code = (ErrorCode)Code(row);
            bool documented = row["Retryable"] switch
            {
                "yes" => true,
                "no" => false,
                string other => throw new FormatException($"Retryable '{other}' for {code} is neither yes nor no."),
            };
            Assert.True(documented == ErrorCodes.IsRetryable(code), $"{code}: the spec says retryable={documented}, the server sends {ErrorCodes.IsRetryable(code)}.");
        }
    }

    private static int Code(IReadOnlyDictionary<string, string> row) => int.Parse(row["Code"], CultureInfo.InvariantCulture);
}
