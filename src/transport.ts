// The only file that creates raw sockets: TCP, TLS or IPC, chosen by the endpoint and the tls option.
import * as net from 'node:net';
import * as tls from 'node:tls';
import * as dc from 'node:diagnostics_channel';
import { OwnedNetSocket } from './connection.js';
import { isError } from './classify.js';
import { codeError, describeValue, invalidOption } from './errors.js';
import type { Endpoint } from './types.js';

export function describeEndpoint(endpoint: Endpoint): string {
  return 'path' in endpoint ? endpoint.path : `${endpoint.host}:${endpoint.port}`;
}

/**
 * Opens one raw connection and resolves once it is usable (after the TLS handshake for TLS). On failure the socket is
 * destroyed and the low-level error rejected as is, for classify() to read. `signal` cancels the attempt (timeout or close).
 * A socket it gives up on keeps a listener that swallows its late errors: nobody else holds it any more.
 */
export function dial(
  endpoint: Endpoint,
  tlsOptions: tls.ConnectionOptions | undefined,
  noDelay: boolean,
  signal: AbortSignal,
  onTcpConnect?: () => void,
  unref = false,
): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    let socket: net.Socket;
    const readyEvent = tlsOptions ? 'secureConnect' : 'connect';
    try {
      if (tlsOptions) checkLateTlsOptions(tlsOptions);
      if ('path' in endpoint) {
        socket = tlsOptions ? tls.connect({ ...tlsOptions, path: endpoint.path }) : connectNet({ path: endpoint.path });
      } else if (tlsOptions) {
        socket = tls.connect({
          // SNI must not be an IP address; Node warns and the server ignores it.
          servername: net.isIP(endpoint.host) ? undefined : endpoint.host,
          ...tlsOptions,
          host: endpoint.host,
          port: endpoint.port,
        });
      } else {
        socket = connectNet({ host: endpoint.host, port: endpoint.port, noDelay });
      }
    } catch (err) {
      // Node refused an option before any socket of ours existed (connectNet cleans up its own): the same options
      // would be refused on every attempt, so this is not a failure to retry.
      reject(refusedAtDial(err, tlsOptions !== undefined));
      return;
    }
    if (unref) socket.unref();

    // For TLS, knowing that TCP got through tells a stalled TLS handshake apart from a dropped SYN.
    const onTcp = (): void => onTcpConnect?.();
    const cleanup = (): void => {
      if (tlsOptions) socket.off('connect', onTcp);
      socket.off(readyEvent, onReady);
      socket.off('error', onError);
      socket.off('close', onClose);
      signal.removeEventListener('abort', onAbort);
    };
    const onReady = (): void => {
      cleanup();
      if (noDelay && tlsOptions) socket.setNoDelay(true);
      resolve(socket);
    };
    const onError = (err: Error): void => {
      cleanup();
      // A TLS socket can report a second error (the reset that follows a failed handshake) after this one.
      socket.on('error', noop);
      socket.destroy();
      reject(err);
    };
    const onClose = (): void => {
      cleanup();
      socket.on('error', noop);
      reject(codeError('ECONNRESET', 'connection closed before it was established'));
    };
    const onAbort = (): void => {
      cleanup();
      // Swallow a late error from the socket being torn down: nobody listens any more.
      socket.on('error', noop);
      socket.destroy();
      reject(signal.reason);
    };

    if (tlsOptions) socket.once('connect', onTcp);
    socket.once(readyEvent, onReady);
    socket.once('error', onError);
    socket.once('close', onClose);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
}

function noop(): void {}

/**
 * tls.connect() applies servername and session only after it has started the TCP connection, so a throw there would
 * leave a connection open that no one can reach to close. resolveOptions refuses such values; this keeps that true
 * for any caller.
 */
function checkLateTlsOptions(o: tls.ConnectionOptions): void {
  if (o.servername !== undefined && typeof o.servername !== 'string') {
    throw invalidOption('type', 'tls.servername', `tls.servername must be a string, got ${describeValue(o.servername)}`);
  }
  if (o.session !== undefined && !(o.session instanceof Uint8Array)) {
    throw invalidOption('type', 'tls.session', `tls.session must be a Buffer, got ${describeValue(o.session)}`);
  }
}

/** An option Node refused while dialing, as the non-retryable ERR_RESOCK_INVALID_OPTION naming it where known. */
function refusedAtDial(err: unknown, isTls: boolean): Error {
  if ((err as { code?: unknown } | undefined)?.code === 'ERR_RESOCK_INVALID_OPTION') return err as Error;
  const option = isTls ? 'tls' : 'endpoint';
  const why = isError(err) ? err.message : describeValue(err);
  return invalidOption('type', option, `${option} options were refused when dialing: ${why}`, err);
}

// Node announces every client socket net.connect() makes here; APM tools listen.
const clientSocketChannel = dc.channel('net.client.socket');

/** What net.connect() does, with resock's socket class (connection.ts says why). */
function connectNet(options: net.NetConnectOpts): net.Socket {
  const socket = new OwnedNetSocket(options);
  if (clientSocketChannel.hasSubscribers) clientSocketChannel.publish({ socket });
  try {
    return socket.connect(options);
  } catch (err) {
    socket.on('error', noop);
    socket.destroy();
    throw err;
  }
}
