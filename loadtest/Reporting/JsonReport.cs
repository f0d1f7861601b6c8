using System.Text.Json;

namespace Collab.LoadTest.Reporting;

/// <summary>Writes the report as indented snake_case JSON (source-generated serializer: no reflection).</summary>
internal static class JsonReport
{
    public static void Write(RunReport report, string path)
    {
        System.IO.Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        using FileStream stream = File.Create(path);
        JsonSerializer.Serialize(stream, report, ReportJsonContext.Default.RunReport);
    }

    public static RunReport Read(string path)
    {
        using FileStream stream = File.OpenRead(path);
        return JsonSerializer.Deserialize(stream, ReportJsonContext.Default.RunReport) ?? throw new InvalidDataException($"{path} holds no report.");
    }
}
