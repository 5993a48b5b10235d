// Test certificates made with the openssl CLI at test time: nothing secret or expiring is committed to the repo.
// Generated once per process (vitest worker) and held in memory; the temp dir is removed as soon as they are read.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface KeyPair {
  key: Buffer;
  cert: Buffer;
}

export interface TestCerts {
  /** The CA certificate to trust (`tls: { ca }`). */
  ca: Buffer;
  /** Signed by the CA for DNS:localhost and IP:127.0.0.1. */
  server: KeyPair;
  /** Signed by the CA, but only for DNS:other.invalid: trusted, yet wrong for localhost and 127.0.0.1. */
  otherName: KeyPair;
  /** Self-signed for DNS:localhost and IP:127.0.0.1: valid names, untrusted issuer. */
  selfSigned: KeyPair;
}

/** Why certificates cannot be made here (no openssl CLI), or undefined when they can. Use it as the skip reason. */
export const certsUnavailable: string | undefined =
  spawnSync('openssl', ['version'], { stdio: 'ignore' }).status === 0 ? undefined : 'no openssl CLI to make test certificates';

let cached: TestCerts | undefined;

/** The test certificates, made on first call. Throws when openssl exists but fails: a broken setup, not a skip. */
export function testCerts(): TestCerts {
  if (certsUnavailable !== undefined) throw new Error(certsUnavailable);
  return (cached ??= generate());
}

// P-256: key generation takes milliseconds, where RSA-2048 would take a noticeable share of the test budget.
const NEW_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
const LOCAL_NAMES = 'subjectAltName=DNS:localhost,IP:127.0.0.1';

function generate(): TestCerts {
  const dir = mkdtempSync(join(tmpdir(), 'resock-certs-'));
  const file = (name: string): string => join(dir, name);
  try {
    openssl([
      'req', '-x509', ...NEW_KEY, '-keyout', file('ca.key'), '-out', file('ca.pem'), '-days', '2',
      '-subj', '/CN=resock test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign',
    ]);
    const server = signed(file, 'server', 'localhost', LOCAL_NAMES);
    const otherName = signed(file, 'other', 'other.invalid', 'subjectAltName=DNS:other.invalid');
    openssl([
      'req', '-x509', ...NEW_KEY, '-keyout', file('self.key'), '-out', file('self.pem'), '-days', '2',
      '-subj', '/CN=localhost', '-addext', LOCAL_NAMES,
    ]);
    return {
      ca: readFileSync(file('ca.pem')),
      server,
      otherName,
      selfSigned: { key: readFileSync(file('self.key')), cert: readFileSync(file('self.pem')) },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A leaf certificate for `cn` with extension `san`, signed by the CA in the same dir. */
function signed(file: (name: string) => string, name: string, cn: string, san: string): KeyPair {
  openssl(['req', ...NEW_KEY, '-keyout', file(`${name}.key`), '-out', file(`${name}.csr`), '-subj', `/CN=${cn}`]);
  // `x509 -req` drops the request's extensions, so the SAN goes in through an extension file.
  writeFileSync(file(`${name}.ext`), `${san}\nextendedKeyUsage=serverAuth\n`);
  openssl([
    'x509', '-req', '-in', file(`${name}.csr`), '-CA', file('ca.pem'), '-CAkey', file('ca.key'), '-CAcreateserial',
    '-out', file(`${name}.pem`), '-days', '2', '-extfile', file(`${name}.ext`),
  ]);
  return { key: readFileSync(file(`${name}.key`)), cert: readFileSync(file(`${name}.pem`)) };
}

function openssl(args: string[]): void {
  const run = spawnSync('openssl', args, { encoding: 'utf8', timeout: 20_000 });
  if (run.status !== 0) {
    const why = run.error?.message ?? run.stderr.trim().split('\n').slice(-3).join(' | ');
    throw new Error(`openssl ${args[0]} failed (status ${run.status}): ${why}`);
  }
}
