// Type tests for the public surface: this file must compile (npm run typecheck, and test/types.test.ts), and each line
// marked as an expected error must not. Nothing here runs.
import dc from 'node:diagnostics_channel';
import plainDc from 'diagnostics_channel';
import { once, on } from 'node:events';
import type { Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { connect, lines, type Failure, type FailureCode, type ResilientSocket, type WarningCode } from 'resock';

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function expectType<T extends true>(): void {}

declare const sock: ResilientSocket;

export async function nodeHelpers(): Promise<void> {
  // Node's own helpers take a ResilientSocket as the EventEmitter it is.
  const [info] = await once(sock, 'connect');
  void info;
  for await (const [chunk] of on(sock, 'data')) void chunk;
  sock.setMaxListeners(50).prependListener('failure', (f) => void f.kind);
}

export function channels(): void {
  dc.subscribe('resock:failure', ({ socket, kind, diagnosis }) => {
    expectType<Equal<typeof socket, ResilientSocket>>();
    void [kind, diagnosis.cause];
  });
  plainDc.subscribe('resock:connect', ({ socket, reconnected }) => void [socket.state, reconnected]);
  // Other channels keep Node's own signature.
  dc.subscribe('undici:request:create', (message) => void message);
}

export function codes(f: Failure): void {
  expectType<Equal<typeof f.code, FailureCode>>();
  if (f.code === 'ECONNRESET' || f.code === 'ERR_RESOCK_HEARTBEAT_TIMEOUT') void f;
  sock.on('warning', ({ code }) => {
    expectType<Equal<typeof code, WarningCode>>();
  });
  // @ts-expect-error not a warning resock emits
  const nope: WarningCode = 'SOMETHING_ELSE';
  void nope;
}

export async function writes(): Promise<void> {
  sock.write('68656c6c6f', 'hex', (err) => void err);
  sock.write(Buffer.from('x'), (err) => void err);
  sock.write(new Uint8Array(1));
  await sock.send('aGk=', 'base64');
  // @ts-expect-error not bytes
  sock.write(123);
  sock.cork();
  sock.uncork();
}

export async function dropIn(): Promise<void> {
  const s = connect({ port: 6379, framing: lines({ eol: '\r\n' }) });
  const stream: Duplex = s.stream();
  await pipeline(stream, stream);
  await s.ready({ timeout: 1000, signal: AbortSignal.timeout(2000) });
  s.pause().resume().unref().ref().reconnect();
  const port: number | undefined = s.remotePort;
  void port;
  await s[Symbol.asyncDispose]();
  connect({
    port: 1,
    framing: lines(),
    heartbeat: { ping: 'PING', isPong: (frame, held) => (held.length === 0 && frame.length === 4 ? true : 'more') },
  });
}
