#!/usr/bin/env node
// The resock command: argument parsing and dispatch. Exit codes: 0 done, 1 the command failed (a probe that gave up,
// a demo step that misbehaved), 2 bad arguments (usage on stderr).
import { parseArgs } from 'node:util';
import { runDemo } from './demo.js';
import { decodeEscapes, parseTarget, startProbe, type ProbeOptions } from './probe.js';
import { createOutput } from './render.js';

const USAGE = `Usage:
  resock probe <host:port | [ipv6]:port | path> [--tls] [--insecure] [--detect-within <ms>]
               [--heartbeat <ping>] [--json]
  resock demo [--json]
  resock help [command]`;

const PROBE_HELP = `resock probe: hold one connection open and print what happens to it

Usage:
  resock probe <host:port | [ipv6]:port | path> [options]

Connects with a ResilientSocket, keeps the connection and prints a timeline: connecting, connect, every failure with
its kind, code, phase, evidence (connection age, idle time, bytes) and resock's diagnosis with advice, reconnect
delays, warnings, and heartbeat round trips. Nothing is written except heartbeat pings. Ctrl-C (SIGINT) or SIGTERM
prints a summary (uptime, connected time, connects, failures by kind, last rtt) and exits 0; exits 1 if resock gives
up on its own (a failure a retry cannot fix, e.g. a certificate error).

Target:
  host:port              127.0.0.1:6379, db.internal:5432
  [ipv6]:port            [::1]:8080
  path                   an IPC socket; needs a slash: /run/app.sock, ./app.sock

Options:
  --tls                  connect with TLS (SNI from the host name)
  --insecure             with --tls: do not verify the certificate
  --detect-within <ms>   find a dead or hung connection within this many ms (default 30000, at least 1000):
                         derives keepalive, and the heartbeat interval/timeout when --heartbeat is given
  --heartbeat <ping>     send <ping> after a quiet interval; any byte back counts as the reply.
                         Escapes: \\r \\n \\t \\0 \\\\ \\xHH. E.g. redis: 'PING\\r\\n'
  --json                 one JSON object per line instead of text
  -h, --help             this help

Examples:
  resock probe 10.0.3.7:6379 --heartbeat 'PING\\r\\n' --detect-within 5000
  resock probe [::1]:8443 --tls --insecure --json | jq -c 'select(.type == "failure")'`;

const DEMO_HELP = `resock demo: break a local server on purpose and watch resock ride through

Usage:
  resock demo [--json]

Starts a line server and a fault proxy on 127.0.0.1, in this process, and walks one ResilientSocket through seven
faults: reset, peer crash, restart, middlebox reset after idle, hung peer, black hole and offline queue overflow.
Prints what resock saw and diagnosed for each, then a table. Takes about 10 s. Exits 0 when every step behaved as
expected, 1 otherwise, so CI can run it as a check.

Options:
  --json                 one JSON object per line: events, a "step" result per fault, then a "summary"
  -h, --help             this help`;

const HELP = `resock: resilient TCP/TLS/IPC sockets, from the command line

${USAGE}

Commands:
  probe    hold a connection to a service and print every failure with its diagnosis
  demo     break a local server on purpose and watch resock ride through

Run 'resock help <command>' for its options.`;

class UsageError extends Error {
  constructor(
    message: string,
    readonly command: string | undefined,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Runs one command line; resolves with the exit code. */
async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined:
      throw new UsageError('no command given', undefined);
    case '-h':
    case '--help':
    case 'help':
      return help(rest[0]);
    case 'probe':
      return probe(rest);
    case 'demo':
      return demo(rest);
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`, undefined);
  }
}

function help(command: string | undefined): number {
  const text = command === 'probe' ? PROBE_HELP : command === 'demo' ? DEMO_HELP : command === undefined ? HELP : undefined;
  if (text === undefined) throw new UsageError(`no help for unknown command ${JSON.stringify(command)}`, undefined);
  process.stdout.write(`${text}\n`);
  return 0;
}

async function probe(args: string[]): Promise<number> {
  const { values, positionals } = usage(
    () =>
      parseArgs({
        args,
        options: {
          tls: { type: 'boolean' },
          insecure: { type: 'boolean' },
          'detect-within': { type: 'string' },
          heartbeat: { type: 'string' },
          json: { type: 'boolean' },
          help: { type: 'boolean', short: 'h' },
        },
        allowPositionals: true,
        strict: true,
      }),
    'probe',
  );
  if (values.help) {
    process.stdout.write(`${PROBE_HELP}\n`);
    return 0;
  }
  if (positionals.length !== 1) {
    throw new UsageError(positionals.length === 0 ? 'probe needs a target' : `probe takes one target, got ${positionals.length}`, 'probe');
  }
  const options: ProbeOptions = {
    endpoint: usage(() => parseTarget(positionals[0] as string), 'probe'),
    tls: values.tls === true,
    insecure: values.insecure === true,
    detectWithin: undefined,
    heartbeat: undefined,
  };
  if (options.insecure && !options.tls) throw new UsageError('--insecure only applies with --tls', 'probe');
  const within = values['detect-within'];
  if (typeof within === 'string') {
    if (!/^\d+$/.test(within)) throw new UsageError(`--detect-within must be a whole number of milliseconds, got ${JSON.stringify(within)}`, 'probe');
    options.detectWithin = Number(within);
  }
  const ping = values.heartbeat;
  if (typeof ping === 'string') options.heartbeat = usage(() => decodeEscapes(ping), 'probe', '--heartbeat: ');
  const out = createOutput(values.json === true);
  let started;
  try {
    started = startProbe(options, out);
  } catch (err) {
    // resock validates the rest (the detectWithin range, a TLS option); its message names the option and the value.
    if ((err as { code?: unknown }).code === 'ERR_RESOCK_INVALID_OPTION') {
      const option = (err as { option?: unknown }).option === 'detectWithin' ? '--detect-within: ' : '';
      throw new UsageError(`${option}${(err as Error).message}`, 'probe');
    }
    throw err;
  }
  return started.done;
}

async function demo(args: string[]): Promise<number> {
  const { values, positionals } = usage(
    () => parseArgs({ args, options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true }),
    'demo',
  );
  if (values.help) {
    process.stdout.write(`${DEMO_HELP}\n`);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`demo takes no arguments, got ${JSON.stringify(positionals[0])}`, 'demo');
  return runDemo(createOutput(values.json === true));
}

/** Runs a parser; whatever it throws becomes a usage error (parseArgs's messages name the option and the problem). */
function usage<T>(fn: () => T, command: string, prefix = ''): T {
  try {
    return fn();
  } catch (err) {
    throw new UsageError(`${prefix}${(err as Error).message}`, command);
  }
}

// `resock probe … | head` closes stdout early: that ends the output, it is not a crash.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Normally nothing is left and the process exits now; a handle someone forgot must not keep it alive.
    setTimeout(() => process.exit(code), 2000).unref();
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      const hint = err.command === undefined ? 'resock help' : `resock help ${err.command}`;
      process.stderr.write(`resock: ${err.message}\n\n${USAGE}\n\nRun '${hint}' for details.\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`resock: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
