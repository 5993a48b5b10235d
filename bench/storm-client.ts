// Worker of comparison 5: a share of the storm's clients. The crowd is split over several processes so that it is the
// backoff policy that shapes the arrivals, not how fast one event loop can dial: 1,000 clients on 1,000 machines would
// all hit at once, one process dials them one after another.
import { connect, type JitterKind, type ResilientSocket } from '../src/index.js';
import { emit, onCommand, readConfig, reportCrashes } from './child.js';

export interface StormClientConfig {
  port: number;
  clients: number;
  jitter: JitterKind;
  minDelay: number;
  maxDelay: number;
  stableAfter: number;
}

// Initial dials in flight at once, under the listen backlog: the setup must not itself become a storm.
const SETUP_BATCH = 100;

reportCrashes();
const cfg = readConfig<StormClientConfig>();
const socks: ResilientSocket[] = [];
let refused = 0;
const onFailure = ({ phase }: { phase: string }): void => {
  if (phase === 'connect') refused++;
};
/** Wall-clock ms (sub-ms precision, comparable across processes) of now. */
const wallNow = (): number => performance.timeOrigin + performance.now();
// When each socket's current attempt started, and when the attempts that reconnected started: the moment their SYN
// went out, which on loopback is the moment the server's kernel completed the connection and queued it for accept.
const attemptStartedAt = new Map<ResilientSocket, number>();
let arrivals: number[] = [];
function track(s: ResilientSocket): void {
  s.on('connecting', () => attemptStartedAt.set(s, wallNow()));
  s.on('connect', ({ reconnected }) => {
    if (reconnected) arrivals.push(attemptStartedAt.get(s)!);
  });
}
for (let i = 0; i < cfg.clients; i += SETUP_BATCH) {
  const batch: Promise<void>[] = [];
  for (let j = i; j < Math.min(cfg.clients, i + SETUP_BATCH); j++) {
    const s = connect({
      host: '127.0.0.1',
      port: cfg.port,
      reconnect: { minDelay: cfg.minDelay, maxDelay: cfg.maxDelay, factor: 2, jitter: cfg.jitter, stableAfter: cfg.stableAfter },
    });
    s.on('failure', onFailure);
    track(s);
    socks.push(s);
    batch.push(s.ready());
  }
  await Promise.all(batch);
}
emit('open', { clients: socks.length });
onCommand(({ cmd }) => {
  if (cmd === 'count') emit('count', { refused });
  else if (cmd === 'arrivals') {
    emit('arrivals', { at: arrivals });
    arrivals = [];
  } else throw new Error(`unknown command ${cmd}`);
});
