// The emitter a ResilientSocket is: eventemitter3 (fast, typed by one event map) plus what Node's EventEmitter has and
// eventemitter3 lacks, so Node's helpers and their types take a ResilientSocket (events.once(sock, 'connect'),
// events.on(sock, 'data'), code that calls setMaxListeners() on every emitter it is handed). And one shielded way to
// call the application's listeners, which resock's own bookkeeping uses everywhere.
import { EventEmitter } from 'eventemitter3';
import type { ResilientSocketEvents } from './types.js';

type Events = ResilientSocketEvents;

export class SocketEmitter extends EventEmitter<Events> {
  #maxListeners = 10;

  /** eventemitter3 never warns about listener counts: the value is kept only for getMaxListeners(). */
  setMaxListeners(n: number): this {
    if (!(typeof n === 'number' && n >= 0)) {
      throw new RangeError(`setMaxListeners(): n must be a non-negative number, got ${String(n)}`);
    }
    this.#maxListeners = n;
    return this;
  }

  getMaxListeners(): number {
    return this.#maxListeners;
  }

  rawListeners<E extends keyof Events>(event: E): Array<Events[E]> {
    return this.listeners(event) as Array<Events[E]>;
  }

  prependListener<E extends keyof Events>(event: E, listener: Events[E]): this {
    this.on(event, listener as never);
    moveLastListenerFirst(this, event);
    return this;
  }

  prependOnceListener<E extends keyof Events>(event: E, listener: Events[E]): this {
    this.once(event, listener as never);
    moveLastListenerFirst(this, event);
    return this;
  }

  /**
   * Emits to the application's listeners. A listener that throws never changes what resock does next: its exception
   * surfaces as an uncaught exception on a later tick. As with Node's own emitters, the listeners after it do not run
   * for this event.
   */
  protected emitShielded<E extends keyof Events>(name: E, ...args: Parameters<Events[E]>): void {
    try {
      (this.emit as (event: E, ...a: unknown[]) => boolean)(name, ...args);
    } catch (err) {
      surface(err);
    }
  }
}

/**
 * eventemitter3 keeps one event's listeners in `_events[name]`: one record, or an array of them in call order. It
 * has no prepend, so the record just added moves to the front. Tested against the pinned eventemitter3 version.
 */
function moveLastListenerFirst(emitter: object, event: string): void {
  const records = (emitter as { _events?: Record<string, unknown> })._events?.[event];
  if (Array.isArray(records) && records.length > 1) records.unshift(records.pop());
}

/** Rethrows on a later tick: an application's bug must surface, but never inside resock's own bookkeeping. */
export function surface(err: unknown): void {
  process.nextTick(rethrow, err);
}

function rethrow(err: unknown): never {
  throw err;
}
