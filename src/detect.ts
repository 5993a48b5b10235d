// Heartbeat and keepalive settings derived from one number, detectWithin (D): every fault of FAULTS.md rows 9–11 must
// be noticed within D ms. Pure arithmetic, so the guarantee can be checked for any D without a socket.
import { describeValue, invalidOption } from './errors.js';
import type { ResolvedKeepAlive } from './types.js';

/**
 * 1 s: a heartbeat of 0.4 s + 0.4 s and a TCP_USER_TIMEOUT of 0.8 s + one 200 ms RTO still fit. Below 2.5 s the 0.8·D
 * budget holds less than 2 whole seconds, so keepalive takes its smallest honest values (1 s idle, one 1 s probe) and
 * the heartbeat and TCP_USER_TIMEOUT carry the bound (see deriveLiveness).
 */
export const MIN_DETECT_WITHIN = 1000;
/** From this D on the budget holds 1 s idle + one 1 s probe, and keepalive alone meets the idle black-hole bound. */
export const KEEPALIVE_ALONE_FROM = 2500;
/** Node's setTimeout limit; the derived heartbeat timers stay far below it. */
export const MAX_DETECT_WITHIN = 2_147_483_647;

/** Share of D the settings may use; the rest absorbs timer lateness and the one RTO of an unacked black hole. */
const BUDGET_NUMERATOR = 4;
const BUDGET_DENOMINATOR = 5;

// Linux accepts 1..32767 s for TCP_KEEPIDLE and TCP_KEEPINTVL (MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL).
const MAX_KEEPALIVE_SECONDS = 32_767;
const MAX_PROBES = 3;

/** Linux's TCP_RTO_MIN: the smallest retransmission timeout, what a loopback or LAN path gets. */
export const TCP_RTO_MIN = 200;

// With TCP_USER_TIMEOUT 0, tcp_retries2 = 15 (the default) ends a connection whose data is never acknowledged once
// 924.6 s have passed since the first retransmission, checked only when the RTO timer fires (at most TCP_RTO_MAX,
// 120 s, apart): keepalive cannot help, Linux skips keepalive while data is in flight.
const RETRIES2_TIMEOUT = 924_600;
const TCP_RTO_MAX = 120_000;

export interface Liveness {
  heartbeat: { interval: number; timeout: number };
  keepAlive: ResolvedKeepAlive;
}

export interface DetectionBounds {
  /** Row 9: both directions black-holed while nothing is in flight. */
  idleBlackHole: number;
  /** Row 10: black-holed while our data waits for an acknowledgement. */
  unackedBlackHole: number;
  /** Row 11: the peer's kernel still ACKs but its process is stopped. */
  hungPeer: number;
}

/** Shared with options.ts so both name the same reason. */
export function detectWithinMessage(value: unknown): string {
  return (
    `detectWithin must be an integer in ${MIN_DETECT_WITHIN}..${MAX_DETECT_WITHIN} ms ` +
    '(heartbeat and TCP_USER_TIMEOUT work in ms; keepalive in whole seconds, so below 2500 it needs a heartbeat for an idle black hole), ' +
    `got ${describeValue(value)}`
  );
}

/** What the kernel keeps of a keepalive duration: whole seconds, at least one (as keepalive.ts applies it). */
const kernelSeconds = (ms: number): number => Math.max(1, Math.floor(ms / 1000));

/**
 * The TCP_USER_TIMEOUT that matches a keepalive configuration: idle + interval × count in the kernel's whole seconds.
 * Linux replaces TCP_KEEPCNT by TCP_USER_TIMEOUT in its keepalive abort rule once the latter is set, so this value
 * keeps `count` meaningful while also bounding how long sent data may stay unacknowledged.
 */
export function matchingUserTimeout(idle: number, interval: number, count: number): number {
  return (kernelSeconds(idle) + kernelSeconds(interval) * count) * 1000;
}

/**
 * Heartbeat and keepalive settings that detect FAULTS.md rows 9–11 within `detectWithin` (D, ms, >= 1000).
 *
 * Four fifths of D are spent, one fifth is slack:
 * - heartbeat: interval = timeout = floor(0.4·D), so a hung peer is declared after H + T = 0.8·D. The slack, 0.2·D,
 *   equals T/2, the most a timer may be late before heartbeat.ts calls it an event-loop stall instead.
 * - keepalive, in the kernel's whole seconds, budget s = floor(0.8·D / 1 s): half of it is idle time, the other half
 *   holds up to three probes (three so that two lost probes do not kill a live connection), and the rounding remainder
 *   goes back to idle, so idle + interval × count = s exactly: nothing of the budget is wasted and a healthy idle
 *   connection sends as few probes as the bound allows. userTimeout = that same sum, so an idle black hole ends at
 *   s either way and an unacked one at s + 1 RTO, leaving 0.2·D >= 600 ms for the RTO.
 * - idle and interval are capped at the kernel's 32767 s, which only shortens detection.
 * - below D = 2500 the budget holds less than 2 s: keepalive takes its smallest honest values (idle 1 s, one 1 s
 *   probe), which alone find an idle black hole after 2 s, not within D; userTimeout = floor(0.8·D) ms still bounds
 *   an unacked black hole by D (0.8·D + one 200 ms RTO), and the heartbeat (0.8·D) bounds the rest, so a socket
 *   that needs every fault within D < 2500 needs a heartbeat.
 *
 * | D (ms) | heartbeat H / T | idle  | interval × count | userTimeout | idle BH | unacked BH | hung peer |
 * |-------:|----------------:|------:|-----------------:|------------:|--------:|-----------:|----------:|
 * |   1000 |       400 / 400 |  1000 |         1000 × 1 |         800 |    2000 |       1000 |       800 |
 * |   2000 |       800 / 800 |  1000 |         1000 × 1 |        1600 |    2000 |       1800 |      1600 |
 * |   3000 |     1200 / 1200 |  1000 |         1000 × 1 |        2000 |    2000 |       2200 |      2400 |
 * |  10000 |     4000 / 4000 |  5000 |         1000 × 3 |        8000 |    8000 |       8200 |      8000 |
 * |  30000 |   12000 / 12000 | 12000 |         4000 × 3 |       24000 |   24000 |      24200 |     24000 |
 * |  60000 |   24000 / 24000 | 24000 |         8000 × 3 |       48000 |   48000 |      48200 |     48000 |
 *
 * The last three columns are {@link detectionBounds} with keepalive alone (black holes, RTO 200 ms) and with the
 * heartbeat alone (hung peer; it would also end either black hole at H + T).
 *
 * @throws RangeError (ERR_RESOCK_INVALID_OPTION) unless detectWithin is an integer in 1000..2147483647.
 */
export function deriveLiveness(detectWithin: number): Liveness {
  if (!Number.isInteger(detectWithin) || detectWithin < MIN_DETECT_WITHIN || detectWithin > MAX_DETECT_WITHIN) {
    throw invalidOption('range', 'detectWithin', detectWithinMessage(detectWithin));
  }
  const share = Math.floor((detectWithin * 2) / 5);
  if (detectWithin < KEEPALIVE_ALONE_FROM) {
    return {
      heartbeat: { interval: share, timeout: share },
      keepAlive: { idle: 1000, interval: 1000, count: 1, userTimeout: Math.floor((detectWithin * BUDGET_NUMERATOR) / BUDGET_DENOMINATOR) },
    };
  }
  const budget = Math.floor((detectWithin * BUDGET_NUMERATOR) / (BUDGET_DENOMINATOR * 1000));
  const half = Math.max(1, Math.floor(budget / 2));
  const probing = budget - half;
  const count = Math.max(1, Math.min(MAX_PROBES, probing));
  const interval = Math.min(MAX_KEEPALIVE_SECONDS, Math.max(1, Math.floor(probing / count)));
  const idle = Math.min(MAX_KEEPALIVE_SECONDS, budget - interval * count);
  return {
    heartbeat: { interval: share, timeout: share },
    keepAlive: {
      idle: idle * 1000,
      interval: interval * 1000,
      count,
      userTimeout: (idle + interval * count) * 1000,
    },
  };
}

/**
 * Linux's tcp_keepalive_timer on a black-holed idle connection: the timer ticks `idle`, then every `interval`, after
 * the last packet received; the first tick sends a probe. With TCP_USER_TIMEOUT 0 it aborts at the tick that finds
 * `count` probes unanswered: idle + interval × count. Otherwise it aborts at the first tick at least userTimeout after
 * the last packet with a probe out, so at idle + interval × max(1, ceil((userTimeout − idle) / interval)).
 */
function keepAliveIdleBound(ka: ResolvedKeepAlive): number {
  const idle = kernelSeconds(ka.idle) * 1000;
  const interval = kernelSeconds(ka.interval) * 1000;
  if (ka.userTimeout === 0) return idle + interval * ka.count;
  return idle + interval * Math.max(1, Math.ceil((ka.userTimeout - idle) / interval));
}

/**
 * The worst-case time, in ms from the fault, each configuration needs to notice FAULTS.md rows 9–11 (Infinity:
 * never), assuming Linux with its default tcp_retries2 and a retransmission timeout of `rto` ms (TCP_RTO_MIN by
 * default; on a long path it is about RTT + 200 ms). Timer lateness is not included: that is what the slack of
 * {@link deriveLiveness} is for.
 *
 * - idle black hole: the heartbeat's H + T, or keepalive as in tcp_keepalive_timer (see keepAliveIdleBound).
 * - unacked black hole: the heartbeat's H + T, or userTimeout + rto (the first retransmission must happen before the
 *   user timeout is checked); with userTimeout 0 (or no keepalive) tcp_retries2 decides, 924.6 s + one RTO_MAX.
 *   Keepalive itself never fires while data is unacknowledged.
 * - hung peer: only the heartbeat sees it (H + T), since the peer's kernel keeps acknowledging.
 */
export function detectionBounds(
  hb: { readonly interval: number; readonly timeout: number } | false,
  ka: ResolvedKeepAlive | false,
  rto: number = TCP_RTO_MIN,
): DetectionBounds {
  const heartbeat = hb === false ? Infinity : hb.interval + hb.timeout;
  const idle = ka === false ? Infinity : keepAliveIdleBound(ka);
  const unacked = ka !== false && ka.userTimeout > 0 ? ka.userTimeout + rto : RETRIES2_TIMEOUT + TCP_RTO_MAX;
  return {
    idleBlackHole: Math.min(heartbeat, idle),
    unackedBlackHole: Math.min(heartbeat, unacked),
    hungPeer: heartbeat,
  };
}
