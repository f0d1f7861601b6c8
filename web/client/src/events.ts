/**
 * A small typed event emitter, and the queue that makes events safe to handle: events raised while the SDK updates
 * its state are delivered once the update is complete, in order, so a listener may call any API (edit, close...)
 * and always sees a consistent document.
 * @module
 */

/** Removes the listener it was returned for. */
export type Unsubscribe = () => void;

type Listener<T> = (event: T) => void;

/** Typed `on` / `once` / `off` over an event map `{ name: payload }`. */
export class Emitter<Events extends object> {
  private readonly listeners = new Map<keyof Events, Set<Listener<never>>>();

  /** @internal */
  constructor(protected readonly queue: EventQueue) {}

  /** Calls `listener` for every `type` event until the returned function is called. */
  on<K extends keyof Events>(type: K, listener: (event: Events[K]) => void): Unsubscribe {
    let set = this.listeners.get(type);
    if (set === undefined) {
      set = new Set();
      this.listeners.set(type, set);
    }
    set.add(listener as Listener<never>);
    return () => this.off(type, listener);
  }

  /** Calls `listener` for the next `type` event only. */
  once<K extends keyof Events>(type: K, listener: (event: Events[K]) => void): Unsubscribe {
    const off = this.on(type, (event) => {
      off();
      listener(event);
    });
    return off;
  }

  /** Removes `listener`. */
  off<K extends keyof Events>(type: K, listener: (event: Events[K]) => void): void {
    this.listeners.get(type)?.delete(listener as Listener<never>);
  }

  /** @internal Queues the event; it is delivered when the current SDK operation completes. */
  protected emit<K extends keyof Events>(type: K, event: Events[K]): void {
    const set = this.listeners.get(type);
    if (set === undefined || set.size === 0) {
      return;
    }
    this.queue.push(() => {
      for (const listener of [...set]) {
        try {
          (listener as Listener<Events[K]>)(event);
        } catch (error) {
          // A throwing listener must not break the SDK's state machine: report it instead.
          this.queue.reportListenerError(error);
        }
      }
    });
  }
}

/** @internal Defers event delivery to the end of the outermost SDK operation. */
export class EventQueue {
  private readonly pending: (() => void)[] = [];
  private depth = 0;
  private draining = false;

  /** @param onListenerError Receives what a listener threw; default: rethrown as an uncaught error, asynchronously. */
  constructor(private readonly onListenerError?: (error: unknown) => void) {}

  reportListenerError(error: unknown): void {
    if (this.onListenerError !== undefined) {
      this.onListenerError(error);
      return;
    }
    queueMicrotask(() => {
      throw error;
    });
  }

  push(deliver: () => void): void {
    this.pending.push(deliver);
    if (this.depth === 0) {
      this.drain();
    }
  }

  /** Runs `fn` as one operation: events it raises are delivered after it returns (or throws). */
  run<T>(fn: () => T): T {
    this.depth++;
    try {
      return fn();
    } finally {
      this.depth--;
      if (this.depth === 0) {
        this.drain();
      }
    }
  }

  private drain(): void {
    if (this.draining) {
      return;
    }
    this.draining = true;
    try {
      for (let deliver = this.pending.shift(); deliver !== undefined; deliver = this.pending.shift()) {
        deliver();
      }
    } finally {
      this.draining = false;
    }
  }
}
