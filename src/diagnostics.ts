// Lifecycle on node:diagnostics_channel, the way undici publishes its own: APM and logging tools subscribe by name without
// holding a reference to any socket. Each message carries the socket and the same payload as the matching event.
import * as dc from 'node:diagnostics_channel';
import type { ResilientSocket } from './socket.js';
import type { ResilientSocketEvents } from './types.js';

export const channels = {
  connecting: dc.channel('resock:connecting'),
  connect: dc.channel('resock:connect'),
  failure: dc.channel('resock:failure'),
  reconnecting: dc.channel('resock:reconnecting'),
  close: dc.channel('resock:close'),
} as const;

export type ChannelName = keyof typeof channels;

/** What each resock channel publishes: the socket, and the payload of the event of the same name. */
export type ResockChannelMessages = {
  [N in ChannelName as `resock:${N}`]: { socket: ResilientSocket } & Parameters<ResilientSocketEvents[N]>[0];
};

// Subscribing by name is typed too: dc.subscribe('resock:failure', ({ socket, kind, diagnosis }) => …) compiles.
declare module 'diagnostics_channel' {
  function subscribe<N extends keyof ResockChannelMessages>(
    name: N,
    onMessage: (message: ResockChannelMessages[N], name: string | symbol) => void,
  ): void;
  function unsubscribe<N extends keyof ResockChannelMessages>(
    name: N,
    onMessage: (message: ResockChannelMessages[N], name: string | symbol) => void,
  ): boolean;
}
