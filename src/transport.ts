// The only file that creates raw sockets: TCP, TLS or IPC, chosen by the endpoint and the tls option.
import net from 'node:net';
import tls from 'node:tls';
import dc from 'node:diagnostics_channel';
import { OwnedNetSocket } from './connection.js';
import { codeError } from './errors.js';
import type { Endpoint } from './types.js';

export function describeEndpoint(endpoint: Endpoint): string {
  return 'path' in endpoint ? endpoint.path : `${endpoint.host}:${endpoint.port}`;
}

/**
 * Opens one raw connection and resolves once it is usable (after the TLS handshake for TLS). On failure the socket is
 * destroyed and the low-level error rejected as is, for classify() to read. `signal` cancels the attempt (timeout or close).
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
      reject(err);
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
      socket.destroy();
      reject(err);
    };
    const onClose = (): void => {
      cleanup();
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

// Node announces every client socket net.connect() makes here; APM tools listen.
const clientSocketChannel = dc.channel('net.client.socket');

/** What net.connect() does, with resock's socket class (connection.ts says why). */
function connectNet(options: net.NetConnectOpts): net.Socket {
  const socket = new OwnedNetSocket(options);
  if (clientSocketChannel.hasSubscribers) clientSocketChannel.publish({ socket });
  return socket.connect(options);
}
