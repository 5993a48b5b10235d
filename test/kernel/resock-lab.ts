// What the resock scenarios of the kernel-fault lab share: the timing allowances, and spawning a resock server and
// client in the lab's namespaces (fixtures/resock-server.ts, fixtures/resock-client.ts) with their pids tracked so a
// suite can check none outlives it.
import { detectionBounds } from '../../src/detect.js';
import { resolveOptions } from '../../src/options.js';
import type { ResilientSocketOptions, ResolvedOptions } from '../../src/index.js';
import type { ChildEvent, FaultLab, NodeChild } from './netns.js';

/** Child start-up (node + tsx) is ~0.3 s; this leaves room for a loaded CI machine. */
export const STARTUP_MS = 10_000;
/** On top of every bound: timer lateness, the child's stdout pipe, processes sharing 2 cores with another suite. */
export const SLACK_MS = 1_500;
export const PING = 'PING\n';
export const PONG = 'PONG\n';
export const FAST_RECONNECT = { minDelay: 100, maxDelay: 400 } as const;
export const CONNECT_TIMEOUT = 1_000;

export type ClientOptions = Omit<ResilientSocketOptions, 'host' | 'port'>;

export interface ConnectEvent extends ChildEvent {
  readonly event: 'connect';
  readonly attempt: number;
  readonly reconnected: boolean;
  readonly localPort: number | null;
  readonly keepAlive: { applied: Record<string, boolean> | false };
}

export const isConnect = (e: ChildEvent): e is ConnectEvent => e.event === 'connect';
export const isReconnect = (e: ChildEvent): e is ConnectEvent => isConnect(e) && e.reconnected;

/** The bounds detect.ts promises for exactly the options the fixture gets, and those options resolved. */
export function boundsFor(options: ClientOptions): { bounds: ReturnType<typeof detectionBounds>; resolved: ResolvedOptions } {
  const resolved = resolveOptions({ host: '10.0.0.1', port: 1, ...options });
  return { bounds: detectionBounds(resolved.heartbeat, resolved.keepAlive), resolved };
}

/** Spawns resock servers and clients in a lab, remembering every pid. */
export class ResockLab {
  readonly pids: number[] = [];

  spawnServer(lab: FaultLab, port = 0): NodeChild {
    const server = lab.server.spawnNode('resock-server.ts', [JSON.stringify({ host: '0.0.0.0', port, ping: PING, pong: PONG })]);
    this.pids.push(server.pid);
    return server;
  }

  async listeningPort(server: NodeChild): Promise<number> {
    const listening = await server.waitFor('listening', STARTUP_MS);
    if (typeof listening.port !== 'number') throw new Error(`server reported no port: ${JSON.stringify(listening)}`);
    return listening.port;
  }

  spawnClient(lab: FaultLab, port: number, options: ClientOptions): NodeChild {
    const client = lab.client.spawnNode('resock-client.ts', [JSON.stringify({ options: { host: lab.serverHost, port, ...options } })]);
    this.pids.push(client.pid);
    return client;
  }

  /** A resock-server, a resock client connected to it through the router, and the server's port. */
  async connectedPair(lab: FaultLab, options: ClientOptions) {
    const server = this.spawnServer(lab);
    const port = await this.listeningPort(server);
    const client = this.spawnClient(lab, port, options);
    const connected = await client.waitFor(isConnect, STARTUP_MS);
    await server.waitFor('connection', STARTUP_MS);
    return { server, client, port, connected };
  }
}
