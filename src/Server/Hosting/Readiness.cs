namespace Collab.Server.Hosting;

/// <summary>The answer of one readiness check.</summary>
public readonly record struct ReadinessResult(bool IsReady, string? Reason)
{
    public static ReadinessResult Ready => new(true, null);

    public static ReadinessResult NotReady(string reason) => new(false, reason);
}

/// <summary>
/// One condition /readyz depends on (storage reachable, NATS connected, not draining...). Register
/// implementations in DI as <see cref="IReadinessCheck"/>; /readyz is 200 only when every check is ready.
/// </summary>
public interface IReadinessCheck
{
    /// <summary>Short stable name shown in the /readyz body.</summary>
    string Name { get; }

    /// <summary>Evaluated on every /readyz request: must be cheap and must not block.</summary>
    ReadinessResult Check();
}

/// <summary>Evaluates every registered <see cref="IReadinessCheck"/>.</summary>
public sealed class ReadinessRegistry
{
    private readonly IReadinessCheck[] _checks;

    public ReadinessRegistry(IEnumerable<IReadinessCheck> checks)
    {
        _checks = checks.ToArray();
    }

    /// <summary>The registered checks, in registration order.</summary>
    public IReadOnlyList<IReadinessCheck> Checks => _checks;

    /// <summary>Runs all checks; a check that throws counts as not ready with the exception message.</summary>
    public bool Evaluate(out IReadOnlyList<(string Name, ReadinessResult Result)> results)
    {
        var list = new (string, ReadinessResult)[_checks.Length];
        bool ready = true;
        for (int i = 0; i < _checks.Length; i++)
        {
            ReadinessResult result;
            try
            {
                result = _checks[i].Check();
            }
            catch (Exception ex)
            {
                result = ReadinessResult.NotReady($"check failed: {ex.Message}");
            }

            ready &= result.IsReady;
            list[i] = (_checks[i].Name, result);
        }

        results = list;
        return ready;
    }
}
