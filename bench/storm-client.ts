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
for (let i = 0; i < cfg.clients; i += SETUP_BATCH) {
  const batch: Promise<void>[] = [];
  for (let j = i; j < Math.min(cfg.clients, i + SETUP_BATCH); j++) {
    const s = connect({
      host: '127.0.0.1',
      port: cfg.port,
      reconnect: { minDelay: cfg.minDelay, maxDelay: cfg.maxDelay, factor: 2, jitter: cfg.jitter, stableAfter: cfg.stableAfter },
    });
    s.on('failure', onFailure);
    socks.push(s);
    batch.push(s.ready());
  }
  await Promise.all(batch);
}
emit('open', { clients: socks.length });
onCommand(({ cmd }) => {
  if (cmd === 'count') emit('count', { refused });
  else throw new Error(`unknown command ${cmd}`);
});
