// resock/testing: real-socket fault injection for the tests of anything that talks TCP. Standalone: it depends on
// nothing else in resock, so it can be pointed at any client.
export { createFaultProxy } from './fault-proxy.js';
export type { FaultMode, FaultProxy, FaultProxyOptions, ProxyConnection } from './fault-proxy.js';
export { createEchoServer, createHeartbeatServer } from './servers.js';
export type { EchoServer, HeartbeatServer, HeartbeatServerOptions, ListenOptions } from './servers.js';
