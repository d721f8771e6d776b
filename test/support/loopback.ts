import type { Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** A server of a test, listening on loopback. */
export interface Listening {
  /** `http://127.0.0.1:PORT`, without a trailing slash. */
  readonly url: string;
  /** Connections the server accepted so far. */
  readonly connections: number;
  /** Resolves once every connection accepted so far has closed (the client let go of it). */
  allClosed(): Promise<void>;
  /** Destroys the connections still open, then closes the server. */
  close(): Promise<void>;
}

/** Starts `server` on a port the OS picks, on loopback, and tracks its connections. */
export async function listenOnLoopback(server: Server): Promise<Listening> {
  const sockets = new Set<Socket>();
  const waiters: (() => void)[] = [];
  let connections = 0;
  server.on('connection', (socket: Socket) => {
    connections += 1;
    sockets.add(socket);
    socket.on('close', () => {
      sockets.delete(socket);
      if (sockets.size === 0) for (const wake of waiters.splice(0)) wake();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get connections() {
      return connections;
    },
    allClosed: () =>
      sockets.size === 0 ? Promise.resolve() : new Promise<void>((resolve) => waiters.push(resolve)),
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
