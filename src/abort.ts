// One 'abort' listener per AbortSignal, however many sockets share it. A service commonly hands one shutdown signal
// to every connection; a listener each would trip Node's MaxListenersExceededWarning from the eleventh on, and
// raising the user's limit is not ours to do.

interface Watch {
  readonly listener: () => void;
  readonly callbacks: Set<() => void>;
}

const watches = new WeakMap<AbortSignal, Watch>();

/** Calls `callback` once when `signal` aborts; the function returned stops that. Expects a signal not yet aborted. */
export function onAbort(signal: AbortSignal, callback: () => void): () => void {
  let watch = watches.get(signal);
  if (watch === undefined) {
    const callbacks = new Set<() => void>();
    const listener = (): void => {
      watches.delete(signal);
      // A callback closes its socket, which calls its stop function: iterate over a copy.
      for (const cb of [...callbacks]) cb();
    };
    watch = { listener, callbacks };
    watches.set(signal, watch);
    signal.addEventListener('abort', listener, { once: true });
  }
  const w = watch;
  w.callbacks.add(callback);
  return () => {
    if (!w.callbacks.delete(callback) || w.callbacks.size > 0) return;
    if (watches.get(signal) === w) watches.delete(signal);
    signal.removeEventListener('abort', w.listener);
  };
}
