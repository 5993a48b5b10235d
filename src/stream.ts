// sock.stream(): a standard stream.Duplex over a ResilientSocket, for code that pipes, iterates or composes sockets.
// The Duplex adds Node's stream machinery and nothing else: bytes in and out go through the socket's own events and
// write(), so reconnects, the offline queue and write accounting behave exactly as without it.
import { Duplex } from 'node:stream';
import { ResockError } from './errors.js';
import type { CloseReason, Failure, ResilientSocketEvents } from './types.js';

/** What the stream needs of its socket. */
export interface StreamHost {
  readonly state: string;
  write(data: Uint8Array, cb: (err?: Error | null) => void): boolean;
  close(): Promise<void>;
  destroy(err?: Error): void;
  on<E extends keyof ResilientSocketEvents>(event: E, fn: ResilientSocketEvents[E]): unknown;
  off<E extends keyof ResilientSocketEvents>(event: E, fn: ResilientSocketEvents[E]): unknown;
}

/**
 * `framed`: one chunk per message, in object mode. `holdReads(true)` asks the socket to stop delivering (the
 * readable side is full), `holdReads(false)` to go on.
 */
export function createStream(host: StreamHost, framed: boolean, holdReads: (hold: boolean) => void): Duplex {
  let held = false;
  const hold = (on: boolean): void => {
    if (held === on) return;
    held = on;
    holdReads(on);
  };

  const duplex = new Duplex({
    readableObjectMode: framed,
    writableObjectMode: framed,
    // The readable side's buffer ends where the socket's own paused buffer begins.
    readableHighWaterMark: framed ? 64 : 64 * 1024,
    read() {
      hold(false);
    },
    write(chunk: Buffer | string, encoding: BufferEncoding, cb: (err?: Error | null) => void) {
      const data = typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk;
      // The callback comes once the bytes are in the kernel (or an error says they never will be): the Duplex's own
      // buffer then bounds what waits, connected or not.
      host.write(data, (err) => cb(err ?? null));
    },
    final(cb) {
      host.close().then(() => cb(), cb);
    },
    destroy(err, cb) {
      detach();
      if (host.state !== 'closed') host.destroy(err ?? undefined);
      cb(err);
    },
  });

  const onIn = (chunk: Buffer): void => {
    if (!duplex.push(chunk)) hold(true);
  };
  const onClose = ({ reason, failure }: { reason: CloseReason; failure?: Failure }): void => {
    detach();
    if (reason === 'closed') {
      duplex.push(null);
      return;
    }
    duplex.destroy(closingError(reason, failure));
  };
  const name = framed ? 'message' : 'data';
  host.on(name, onIn);
  host.on('close', onClose);
  function detach(): void {
    host.off(name, onIn);
    host.off('close', onClose);
  }
  if (host.state === 'closed') queueMicrotask(() => onClose({ reason: 'closed' }));
  return duplex;
}

function closingError(reason: CloseReason, failure: Failure | undefined): Error {
  const code = reason === 'aborted' ? 'ERR_RESOCK_ABORTED' : 'ERR_RESOCK_CLOSED';
  const why = failure === undefined ? reason : `${reason}: ${failure.diagnosis.summary}`;
  return Object.assign(new ResockError(code, `the socket closed for good (${why})`, { cause: failure?.error }), {
    reason,
    failure,
  });
}
