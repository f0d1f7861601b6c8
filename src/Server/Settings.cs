using System.ComponentModel;
using System.Globalization;
using System.Reflection;
using Microsoft.Extensions.Options;

namespace Collab.Server;

/// <summary>
/// The invalid settings of one options class, each as "<c>Section:Name: why</c>" (the form Program prints after
/// "collab: invalid configuration: "), thrown together as one <see cref="OptionsValidationException"/> so an operator
/// sees every mistake of a start-up at once.
/// </summary>
public sealed class SettingErrors(string section, Type optionsType)
{
    private readonly List<string> _failures = [];

    /// <summary>Records that <paramref name="setting"/> (a property name, or a path below the section) is invalid and why.</summary>
    public void Add(string setting, string reason) => _failures.Add($"{section}:{setting}: {reason}");

    public bool HasErrors => _failures.Count > 0;

    /// <summary>The exception for one invalid setting, for code that finds it alone (<c>throw SettingErrors.ForSetting(...)</c>).</summary>
    public static OptionsValidationException ForSetting(string section, Type optionsType, string setting, string reason) =>
        new(section, optionsType, [$"{section}:{setting}: {reason}"]);

    public void ThrowIfAny()
    {
        if (_failures.Count > 0)
        {
            throw new OptionsValidationException(section, optionsType, _failures);
        }
    }

    /// <summary>Adds an error when a duration is negative, or zero unless <paramref name="allowZero"/>.</summary>
    public void Positive(TimeSpan value, string setting, bool allowZero = false)
    {
        if (value < TimeSpan.Zero || (!allowZero && value == TimeSpan.Zero))
        {
            Add(setting, $"must be {(allowZero ? "zero or positive" : "positive")} (was {value}).");
        }
    }

    /// <summary>Adds an error when a number is negative, or zero unless <paramref name="allowZero"/>.</summary>
    public void Positive(long value, string setting, bool allowZero = false)
    {
        if (value < 0 || (!allowZero && value == 0))
        {
            Add(setting, $"must be {(allowZero ? "zero or positive" : "positive")} (was {value}).");
        }
    }
}

/// <summary>
/// Binds a configuration section to an options class with the configuration binder, after checking every key of the
/// section against the class: a key that names no setting (a typo such as <c>Auth:Mod</c> would otherwise be ignored
/// and leave a default in force) and a value that does not convert to the setting's type (<c>Auth:Mode=jwt-typo</c>,
/// <c>Transport:PingInterval=30s</c>) become
/// <see cref="SettingErrors"/> naming the setting, instead of the binder's exception (which named the path inside a
/// stack trace and stopped at the first one). Values are converted exactly as the binder converts them
/// (<see cref="TypeDescriptor"/> converters, invariant culture), so what passes the check binds.
/// </summary>
public static class SettingsBinder
{
    /// <summary>Binds <paramref name="section"/> of <paramref name="configuration"/> to a new <typeparamref name="T"/>; throws <see cref="OptionsValidationException"/> listing every bad key.</summary>
    public static T Bind<T>(IConfiguration configuration, string section)
        where T : class, new()
    {
        var options = new T();
        BindInto(configuration, section, options);
        return options;
    }

    /// <summary>
    /// Binds <paramref name="section"/> of <paramref name="configuration"/> into <paramref name="options"/> (the
    /// options pattern's configure step); throws <see cref="OptionsValidationException"/> listing every bad key.
    /// </summary>
    public static void BindInto<T>(IConfiguration configuration, string section, T options)
        where T : class
    {
        IConfigurationSection root = configuration.GetSection(section);
        var errors = new SettingErrors(section, typeof(T));
        Dictionary<string, PropertyInfo> settings = typeof(T)
            .GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.SetMethod is { IsPublic: true })
            .ToDictionary(p => p.Name, StringComparer.OrdinalIgnoreCase);

        foreach (IConfigurationSection entry in root.GetChildren())
        {
            if (!settings.TryGetValue(entry.Key, out PropertyInfo? property))
            {
                string? closest = Closest(entry.Key, settings.Keys);
                errors.Add(entry.Key, "is not a setting" + (closest is null ? "." : $"; did you mean {section}:{closest}?"));
                continue;
            }

            Check(entry, property.PropertyType, errors);
        }

        if (errors.HasErrors)
        {
            errors.ThrowIfAny();
        }

        try
        {
            root.Bind(options, binder => binder.ErrorOnUnknownConfiguration = true);
        }
        catch (InvalidOperationException ex)
        {
            // Not expected after the checks above; still reported as a configuration error, never a crash.
            errors.Add("*", ex.Message);
            errors.ThrowIfAny();
        }
    }

    /// <summary>
    /// The command-line arguments that set nothing: a <c>--key</c> that is neither a switch nor in one of
    /// <paramref name="sections"/> (<c>--prot 9000</c>, <c>--Trasnport:Port=1</c>: the configuration would keep them as
    /// keys nobody reads), a short <c>-x</c> switch that is not defined (the configuration provider would throw), and a
    /// stray value. One failure each, in the "setting: why" form.
    /// </summary>
    public static IReadOnlyList<string> CheckCommandLine(IReadOnlyList<string> args, IReadOnlyDictionary<string, string> switches, IReadOnlyCollection<string> sections)
    {
        // Host settings WebApplication itself reads from the command line.
        string[] hostKeys = ["environment", "applicationName", "contentRoot"];
        var failures = new List<string>();
        for (int i = 0; i < args.Count; i++)
        {
            string arg = args[i];
            bool isSwitch = switches.ContainsKey(arg.Split('=', 2)[0]);
            string? key = isSwitch ? null
                : arg.StartsWith("--", StringComparison.Ordinal) ? arg[2..]
                : arg.StartsWith('/') ? arg[1..]
                : null;
            if (!isSwitch && key is null)
            {
                if (!arg.StartsWith('-'))
                {
                    failures.Add($"{arg}: is an argument without a setting; write --Section:Name=value (or --Section:Name value).");
                    continue;
                }

                failures.Add($"{arg.Split('=', 2)[0]}: is not a switch; the switches are {string.Join(", ", switches.Keys)}, and --Section:Name=value sets any setting.");
                i += arg.Contains('=', StringComparison.Ordinal) ? 0 : 1; // its value
                continue;
            }

            if (!arg.Contains('=', StringComparison.Ordinal))
            {
                i++; // "--key value": the next argument is the value
            }

            if (key is null)
            {
                continue;
            }

            key = key.Split('=', 2)[0];
            string first = key.Split(':', 2)[0];
            bool known = sections.Contains(first, StringComparer.OrdinalIgnoreCase) && key.Contains(':', StringComparison.Ordinal)
                || hostKeys.Contains(key, StringComparer.OrdinalIgnoreCase);
            if (!known && sections.Contains(key, StringComparer.OrdinalIgnoreCase))
            {
                failures.Add($"--{key}: is a section, not a setting; write --{key}:Name=value.");
            }
            else if (!known)
            {
                string? closest = Closest(key, [.. switches.Keys.Select(k => k.TrimStart('-')), .. sections.Select(s => s + key[first.Length..])]);
                string shown = key.Contains(':', StringComparison.Ordinal) ? key : "--" + key;
                failures.Add($"{shown}: is not a setting" + (closest is null ? "; write --Section:Name=value." : $"; did you mean {(switches.ContainsKey("--" + closest) ? "--" : string.Empty)}{closest}?"));
            }
        }

        return failures;
    }

    /// <summary>What a value of <paramref name="type"/> looks like, for error messages.</summary>
    public static string Describe(Type type)
    {
        Type target = Nullable.GetUnderlyingType(type) ?? type;
        return target switch
        {
            _ when target.IsEnum => "one of " + string.Join(", ", Enum.GetNames(target)),
            _ when target == typeof(bool) => "true or false",
            _ when target == typeof(int) || target == typeof(long) => $"a whole number ({(target == typeof(int) ? "32" : "64")}-bit)",
            _ when target == typeof(double) => "a number",
            _ when target == typeof(TimeSpan) => "a duration as [d.]hh:mm:ss[.fff], e.g. 00:00:05 for 5 s",
            _ => "a " + target.Name,
        };
    }

    private static void Check(IConfigurationSection entry, Type type, SettingErrors errors)
    {
        string key = entry.Key;
        bool hasChildren = entry.GetChildren().Any();
        if (IsList(type, out Type? element))
        {
            if (entry.Value is { Length: > 0 })
            {
                errors.Add(key, $"is a list: set {entry.Path}:0, {entry.Path}:1, ... (environment: {entry.Path.Replace(":", "__", StringComparison.Ordinal)}__0), not one value.");
            }

            foreach (IConfigurationSection item in entry.GetChildren())
            {
                if (!int.TryParse(item.Key, NumberStyles.None, CultureInfo.InvariantCulture, out _))
                {
                    errors.Add($"{key}:{item.Key}", $"list entries are numbered {entry.Path}:0, {entry.Path}:1, ...");
                }
                else
                {
                    CheckValue(item, $"{key}:{item.Key}", element!, errors);
                }
            }

            return;
        }

        if (hasChildren)
        {
            errors.Add(key, $"is a single value ({Describe(type)}), not a section.");
            return;
        }

        CheckValue(entry, key, type, errors);
    }

    private static void CheckValue(IConfigurationSection entry, string setting, Type type, SettingErrors errors)
    {
        Type target = Nullable.GetUnderlyingType(type) ?? type;
        string? value = entry.Value;
        if (target == typeof(string) || value is null)
        {
            return;
        }

        if (value.Length == 0)
        {
            if (target.IsValueType && Nullable.GetUnderlyingType(type) is null)
            {
                errors.Add(setting, $"is empty; expected {Describe(type)}.");
            }

            return;
        }

        object? converted;
        try
        {
            converted = TypeDescriptor.GetConverter(target).ConvertFromInvariantString(value);
        }
        catch (Exception ex) when (ex is FormatException or ArgumentException or NotSupportedException or OverflowException)
        {
            errors.Add(setting, $"'{value}' is not {Describe(type)}.");
            return;
        }

        if (target.IsEnum && (converted is null || !Enum.IsDefined(target, converted)))
        {
            // EnumConverter also takes numbers, including ones that name no member.
            errors.Add(setting, $"'{value}' is not {Describe(type)}.");
        }
    }

    private static bool IsList(Type type, out Type? element)
    {
        element = type.IsArray ? type.GetElementType() : type.IsGenericType && type.GetGenericTypeDefinition() is var definition
            && (definition == typeof(IList<>) || definition == typeof(List<>) || definition == typeof(IReadOnlyList<>) || definition == typeof(ICollection<>) || definition == typeof(IEnumerable<>))
            ? type.GetGenericArguments()[0]
            : null;
        return element is not null;
    }

    /// <summary>The known name closest to a misspelt one (at most a third of its letters off), or null.</summary>
    private static string? Closest(string name, IEnumerable<string> known)
    {
        string? best = null;
        int bestDistance = int.MaxValue;
        foreach (string candidate in known)
        {
            int distance = Distance(name.ToUpperInvariant(), candidate.ToUpperInvariant());
            if (distance < bestDistance)
            {
                (best, bestDistance) = (candidate, distance);
            }
        }

        return bestDistance <= Math.Max(1, name.Length / 3) ? best : null;
    }

    /// <summary>Edit distance counting a swap of two neighbours as one edit (optimal string alignment): "prot" is 1 from "port".</summary>
    private static int Distance(string a, string b)
    {
        int[,] d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++)
        {
            d[i, 0] = i;
        }

        for (int j = 0; j <= b.Length; j++)
        {
            d[0, j] = j;
        }

        for (int i = 1; i <= a.Length; i++)
        {
            for (int j = 1; j <= b.Length; j++)
            {
                int cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                {
                    d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
                }
            }
        }

        return d[a.Length, b.Length];
    }
}
