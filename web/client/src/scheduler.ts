/**
 * Time and randomness, injectable so that tests drive timers deterministically.
 * @module
 */

/** Opaque timer handle. */
export type TimerHandle = unknown;

/** The clock, timers and random source the SDK uses. The default is the platform's. */
export interface Scheduler {
  /** Milliseconds on a monotonic clock. */
  now(): number;
  setTimeout(callback: () => void, delayMs: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
  /** Uniform in [0, 1). */
  random(): number;
}

/** The platform's timers, `performance.now()` and `Math.random()`. */
export const systemScheduler: Scheduler = {
  now: () => performance.now(),
  setTimeout: (callback, delayMs) => setTimeout(callback, delayMs),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
  random: () => Math.random(),
};
