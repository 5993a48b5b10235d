// What the benchmark processes agree on.

export const PING = 'PING\n';
export const PONG = 'PONG\n';
/** Dials in flight at once when opening many connections: well under a listen backlog of 511, so no SYN is dropped. */
export const DIAL_BATCH = 250;
