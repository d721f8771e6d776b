import { type AddressInfo, createConnection, createServer, type Socket } from 'node:net';

/** A TCP proxy on loopback that holds every chunk back for a while, in both directions. */
export interface DelayProxy {
  /** `http://127.0.0.1:PORT`, standing in for the target's origin. */
  readonly url: string;
  close(): Promise<void>;
}

/** Bytes held back per direction before the sending side is paused. */
const MAX_IN_FLIGHT = 4 * 1024 * 1024;

/**
 * Adds `oneWayMs` to each direction of every connection to `target` (an http origin on
 * loopback), so a request costs at least one round trip of `2 * oneWayMs`: a crude stand-in for
 * the distance between Lambda and the tokens service or S3, which loopback does not have. Order
 * is kept (timers of equal delay fire in order); a direction with too much held back is paused.
 */
export async function startDelayProxy(target: string, oneWayMs: number): Promise<DelayProxy> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = createConnection({ host: hostname, port: Number(port) });
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    relay(client, upstream, oneWayMs);
    relay(upstream, client, oneWayMs);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}

function relay(from: Socket, to: Socket, delayMs: number): void {
  let held = 0;
  from.on('data', (chunk: Buffer) => {
    held += chunk.length;
    if (held > MAX_IN_FLIGHT) from.pause();
    setTimeout(() => {
      held -= chunk.length;
      if (!to.destroyed) to.write(chunk);
      if (held <= MAX_IN_FLIGHT && from.isPaused()) from.resume();
    }, delayMs);
  });
  from.on('end', () => setTimeout(() => to.end(), delayMs));
}
