// TLS to a server whose certificate comes from your own CA. The CA and the server certificate are made with the openssl
// CLI in a temporary directory. With the CA in `tls.ca` the connection verifies; without it the handshake fails with
// kind 'tls', which is not retried: the socket closes at once with reason 'fatal' instead of retrying forever.
//   npx tsx examples/tls-custom-ca.ts          (needs the openssl command)
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { connect, type Failure } from 'resock';

const dir = mkdtempSync(join(tmpdir(), 'resock-tls-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const file = (name: string): string => join(dir, name);
const openssl = (...args: string[]): void => {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
};

// A CA, then a key and a certificate for "localhost" signed by it. P-256 keys: generated in milliseconds.
const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
openssl('req', '-x509', ...ecKey, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=resock example CA',
  '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
openssl('req', ...ecKey, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
writeFileSync(file('server.ext'), 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n');
openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
  '-out', 'server.crt', '-days', '1', '-extfile', 'server.ext');
const ca = readFileSync(file('ca.crt'));

// A TLS echo server.
const server = tls.createServer({ key: readFileSync(file('server.key')), cert: readFileSync(file('server.crt')) }, (s) => {
  s.on('error', () => {});
  s.pipe(s);
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address() as AddressInfo;

const watchdog = setTimeout(() => {
  console.error('✗ timed out');
  process.exit(1);
}, 10_000);

// 1. Trusting our CA. The certificate names "localhost" and we dial an IP: servername says which name to verify.
const trusted = connect({ host: '127.0.0.1', port, tls: { ca, servername: 'localhost' } });
await trusted.ready();
const peer = (trusted.socket as tls.TLSSocket).getPeerCertificate();
console.log(`verified: subject ${peer.subject.CN}, issued by "${peer.issuer.CN}"`);
const echoed = new Promise<string>((resolve) => trusted.once('data', (chunk) => resolve(chunk.toString())));
trusted.write('hello over TLS');
const reply = await echoed;
console.log(`echo: ${reply}`);
await trusted.close();

// 2. Without the CA: only the system trust store, which does not know ours.
const untrusted = connect({ host: '127.0.0.1', port, tls: { servername: 'localhost' } });
let failure: Failure | undefined;
untrusted.on('failure', (f) => {
  failure = f;
  console.log(`failure: ${f.kind} (${f.code}) → ${f.diagnosis.cause}: ${f.diagnosis.advice}`);
});
const closed = await new Promise<{ reason: string }>((resolve) => untrusted.once('close', resolve));
console.log(`closed: ${closed.reason} after ${untrusted.stats().attempts} attempt(s)`);

clearTimeout(watchdog);
await new Promise((resolve) => server.close(resolve));

assert.equal(reply, 'hello over TLS');
assert.equal(peer.issuer.CN, 'resock example CA');
assert.equal(failure?.kind, 'tls');
assert.equal(failure?.retryable, false);
assert.equal(closed.reason, 'fatal');
assert.equal(untrusted.stats().attempts, 1);
console.log('✓ verified with the custom CA; rejected at once without it');
