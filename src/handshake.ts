// Pieces of one connection attempt that wait on something the user or the peer controls, each cancelled by a signal.
import type * as net from 'node:net';
import { isError } from './classify.js';
import { codeError, describeValue } from './errors.js';
import type { OnConnect } from './types.js';

/** Runs the user's handshake, raced against the socket dying and the attempt being cancelled. */
export function handshake(
  socket: net.Socket,
  onConnect: OnConnect,
  signal: AbortSignal,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (err?: unknown): void => {
      if (done) return;
      done = true;
      socket.off('error', onError);
      socket.off('close', onClose);
      signal.removeEventListener('abort', onAbort);
      if (err === undefined) {
        resolve();
        return;
      }
      // The caller destroys the socket it now abandons: a late 'error' from it must not become an uncaught exception.
      socket.on('error', noop);
      reject(err);
    };
    const onError = (err: Error): void => finish(err);
    const onClose = (): void => finish(codeError('ERR_RESOCK_PEER_CLOSED', 'the peer closed the connection during the handshake'));
    const onAbort = (): void => finish(signal.reason);
    socket.once('error', onError);
    socket.once('close', onClose);
    signal.addEventListener('abort', onAbort, { once: true });
    Promise.resolve()
      .then(() => onConnect(socket, signal))
      .then(
        () => finish(),
        (err: unknown) => finish(isError(err) ? err : nonErrorThrown(err)),
      );
  });
}

/** A string, object or undefined thrown by onConnect: never a code to read, only the cause of a handshake failure. */
function nonErrorThrown(value: unknown): Error {
  return codeError('ERR_RESOCK_HANDSHAKE', `onConnect threw a value that is not an Error: ${describeValue(value)}`, value);
}

function noop(): void {}

/**
 * setTimeout as a promise that a signal cancels. `unref`: the wait alone does not keep the process alive. `onWake`
 * receives a function that ends the wait early.
 */
export function sleep(ms: number, signal: AbortSignal, unref = false, onWake?: (wake: () => void) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const wake = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      resolve();
    };
    const timer = setTimeout(wake, ms);
    if (unref) timer.unref();
    signal.addEventListener('abort', onAbort, { once: true });
    onWake?.(wake);
  });
}
