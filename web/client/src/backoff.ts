/**
 * Reconnect backoff (docs/PROTOCOL.md section 4.3): exponential with full jitter above a floor.
 * @module
 */

/** When and how often a dropped connection is re-established. */
export interface ReconnectPolicy {
  /** Smallest delay before any attempt, ms (default 250). */
  minDelayMs?: number;
  /** Largest delay before any attempt, ms (default 30,000). */
  maxDelayMs?: number;
  /** Consecutive failed attempts before giving up (the client closes); default unbounded. 0 never reconnects. */
  maxAttempts?: number;
}

/** @internal The policy with every default filled in. */
export interface ResolvedReconnectPolicy {
  minDelayMs: number;
  maxDelayMs: number;
  maxAttempts: number;
}

/** @internal */
export function resolveReconnectPolicy(policy: ReconnectPolicy | undefined): ResolvedReconnectPolicy {
  const resolved = {
    minDelayMs: policy?.minDelayMs ?? 250,
    maxDelayMs: policy?.maxDelayMs ?? 30_000,
    maxAttempts: policy?.maxAttempts ?? Number.POSITIVE_INFINITY,
  };
  if (!(resolved.minDelayMs > 0) || !(resolved.maxDelayMs >= resolved.minDelayMs) || !(resolved.maxAttempts >= 0)) {
    throw new RangeError("reconnect: minDelayMs must be positive, maxDelayMs at least minDelayMs, maxAttempts non-negative.");
  }
  return resolved;
}

/**
 * The delay before attempt `attempt` (1-based): uniform in `[min, min(max, min * 2^attempt)]`, `unit` being a
 * uniform sample in [0, 1). The jitter spreads the reconnect storm after a server restart over the whole window.
 */
export function backoffDelay(policy: ResolvedReconnectPolicy, attempt: number, unit: number): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.minDelayMs * 2 ** Math.min(Math.max(attempt, 1), 62));
  return policy.minDelayMs + (ceiling - policy.minDelayMs) * unit;
}
