// The callers waiting in ready() for a socket to open. Kept apart from the event listeners: removing a listener deletes
// a key of eventemitter3's listener table, which turns it into a slow dictionary several hundred bytes larger, for the
// socket's whole life. Made on the first wait only.
import { ResockError } from './errors.js';

export interface ReadyOptions {
  /** Stop waiting when it aborts: the promise rejects with ERR_RESOCK_ABORTED. */
  signal?: AbortSignal;
  /** Stop waiting after this many ms: the promise rejects with ERR_RESOCK_READY_TIMEOUT. */
  timeout?: number;
}

interface Waiter {
  resolve(): void;
  reject(err: Error): void;
}

export class ReadyWaiters {
  #waiters: Waiter[] = [];

  /** A promise that settles exactly once: at resolveAll(), rejectAll(), the timeout or the signal, whichever is first. */
  wait(options: ReadyOptions | undefined, unref: boolean, describe: () => string): Promise<void> {
    const signal = options?.signal;
    const timeout = options?.timeout;
    if (timeout !== undefined && !(typeof timeout === 'number' && timeout >= 0 && timeout <= 2_147_483_647)) {
      throw new RangeError(`ready(): timeout must be a number of ms in [0, 2147483647], got ${String(timeout)}`);
    }
    if (signal?.aborted) return Promise.reject(aborted(signal));
    return new Promise((resolve, reject) => {
      if (signal === undefined && timeout === undefined) {
        this.#waiters.push({ resolve, reject });
        return;
      }
      let timer: NodeJS.Timeout | undefined;
      const done = (): void => {
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        const at = this.#waiters.indexOf(waiter);
        if (at >= 0) this.#waiters.splice(at, 1);
      };
      const waiter: Waiter = {
        resolve: () => {
          done();
          resolve();
        },
        reject: (err) => {
          done();
          reject(err);
        },
      };
      const onAbort = (): void => waiter.reject(aborted(signal!));
      if (timeout !== undefined) {
        timer = setTimeout(() => waiter.reject(new ResockError('ERR_RESOCK_READY_TIMEOUT', `not open within ${timeout} ms (${describe()})`)), timeout);
        if (unref) timer.unref();
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  resolveAll(): void {
    for (const w of this.#take()) w.resolve();
  }

  rejectAll(err: Error): void {
    for (const w of this.#take()) w.reject(err);
  }

  #take(): Waiter[] {
    const all = this.#waiters;
    this.#waiters = [];
    return all;
  }
}

function aborted(signal: AbortSignal): ResockError {
  return new ResockError('ERR_RESOCK_ABORTED', 'ready() was aborted', { cause: signal.reason });
}
