// A CommonJS consumer compiled without esModuleInterop against the built declarations (dist/index.d.cts).
import { connect, ResockError, type Failure } from 'resock';

const sock = connect({ port: 1 });
sock.on('failure', (f: Failure) => {
  if (f.error instanceof ResockError) void f.error.code;
});
export = sock;
