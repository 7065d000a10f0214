import net from 'node:net';

/**
 * A TCP proxy between the app and PostgreSQL that can cut the link (connections reset,
 * new ones refused) or make it hang (connections accepted, nothing forwarded), so an outage
 * is real network behaviour rather than a mocked driver.
 */
export class FaultyProxy {
  private mode: 'up' | 'down' | 'hang' = 'up';
  private readonly sockets = new Set<net.Socket>();
  private readonly pairs = new Set<[net.Socket, net.Socket]>();
  private readonly server = net.createServer((client) => this.accept(client));

  constructor(private readonly target: { host: string; port: number }) {}

  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', resolve);
    });
    return (this.server.address() as net.AddressInfo).port;
  }

  private track(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => this.sockets.delete(socket));
  }

  private accept(client: net.Socket): void {
    this.track(client);
    if (this.mode === 'down') {
      client.resetAndDestroy();
      return;
    }
    if (this.mode === 'hang') return; // accepted, never answered
    const upstream = net.connect(this.target.port, this.target.host);
    this.track(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    const pair: [net.Socket, net.Socket] = [client, upstream];
    this.pairs.add(pair);
    client.on('close', () => {
      upstream.destroy();
      this.pairs.delete(pair);
    });
    upstream.on('close', () => client.destroy());
  }

  private dropAll(): void {
    for (const socket of this.sockets) socket.resetAndDestroy();
  }

  /** Every open connection reset; new ones reset on arrival. */
  cut(): void {
    this.mode = 'down';
    this.dropAll();
  }

  /** New connections are accepted and then nothing: no bytes, no close. */
  hang(): void {
    this.mode = 'hang';
  }

  /**
   * A partition: open connections stay open but carry nothing more, in either direction, ever;
   * new connections are accepted and left silent. Only a client that gives up on a connection
   * (and opens a new one after `restore()`) gets through again.
   */
  freeze(): void {
    this.mode = 'hang';
    for (const [client, upstream] of this.pairs) {
      client.unpipe(upstream);
      upstream.unpipe(client);
      client.pause();
      upstream.pause();
    }
    this.pairs.clear();
  }

  /**
   * Forward new connections again. Connections left hanging stay silent, as after a real
   * partition: the driver has to give up on them (connect_timeout) and open fresh ones.
   */
  restore(): void {
    this.mode = 'up';
  }

  async close(): Promise<void> {
    this.dropAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Starts a proxy in front of the PostgreSQL server of `url`; returns it and the URL through it. */
export async function proxyInFrontOf(url: string): Promise<{ proxy: FaultyProxy; url: string }> {
  const direct = new URL(url);
  const proxy = new FaultyProxy({ host: direct.hostname, port: Number(direct.port || 5432) });
  const proxied = new URL(url);
  proxied.hostname = '127.0.0.1';
  proxied.port = String(await proxy.listen());
  return { proxy, url: proxied.toString() };
}
