// Lifecycle on node:diagnostics_channel, the way undici publishes its own: APM and logging tools subscribe by name without
// holding a reference to any socket. Each message carries the socket and the same payload as the matching event.
import dc from 'node:diagnostics_channel';

export const channels = {
  connecting: dc.channel('resock:connecting'),
  connect: dc.channel('resock:connect'),
  failure: dc.channel('resock:failure'),
  reconnecting: dc.channel('resock:reconnecting'),
  close: dc.channel('resock:close'),
} as const;

export type ChannelName = keyof typeof channels;
