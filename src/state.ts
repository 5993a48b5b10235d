// The one lifecycle value of a ResilientSocket and the transitions it may take. An illegal transition is a bug in resock,
// so it throws with "from X => Y" rather than leaving the socket in a state no code expects. Plain functions over a
// value the socket holds itself: an object per socket for one field would cost more than the field.
import type { SocketState } from './types.js';

const TRANSITIONS: Readonly<Record<SocketState, readonly SocketState[]>> = {
  idle: ['connecting', 'closed'],
  connecting: ['open', 'reconnecting', 'closing', 'closed'],
  open: ['reconnecting', 'closing', 'closed'],
  reconnecting: ['connecting', 'closing', 'closed'],
  closing: ['closed'],
  closed: [],
};

/** Returns `next` when `from => next` is allowed; throws otherwise. */
export function transition(from: SocketState, next: SocketState): SocketState {
  if (!TRANSITIONS[from].includes(next)) {
    throw new Error(`resock: illegal state transition from ${from} => ${next}`);
  }
  return next;
}

export function isTerminal(state: SocketState): boolean {
  return state === 'closing' || state === 'closed';
}
