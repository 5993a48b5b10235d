// The one lifecycle value of a ResilientSocket and the transitions it may take. An illegal transition is a bug in resock,
// so it throws with "from X => Y" rather than leaving the socket in a state no code expects.
import type { SocketState } from './types.js';

const TRANSITIONS: Readonly<Record<SocketState, readonly SocketState[]>> = {
  idle: ['connecting', 'closed'],
  connecting: ['open', 'reconnecting', 'closing', 'closed'],
  open: ['reconnecting', 'closing', 'closed'],
  reconnecting: ['connecting', 'closing', 'closed'],
  closing: ['closed'],
  closed: [],
};

export class Lifecycle {
  #state: SocketState = 'idle';

  get state(): SocketState {
    return this.#state;
  }

  to(next: SocketState): void {
    if (!TRANSITIONS[this.#state].includes(next)) {
      throw new Error(`resock: illegal state transition from ${this.#state} => ${next}`);
    }
    this.#state = next;
  }

  get terminal(): boolean {
    return this.#state === 'closing' || this.#state === 'closed';
  }
}
