import { request, type Agent, type IncomingHttpHeaders } from 'node:http';

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** The request went out on a connection opened earlier (keep-alive). */
  reusedSocket: boolean;
}

/** A GET through `agent`, so it reuses the agent's idle keep-alive connections. */
export function get(agent: Agent, origin: string, path: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(`${origin}${path}`, { agent, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, reusedSocket: req.reusedSocket }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Idle keep-alive connections the agent holds. */
export function idleSockets(agent: Agent): number {
  return Object.values(agent.freeSockets).reduce((n, list) => n + (list?.length ?? 0), 0);
}

export interface Upload {
  /** Sends the rest of the body; resolves with the answer. */
  finish(): Promise<Answer>;
  /** True once any answer (or error) came back. */
  readonly settled: boolean;
}

/**
 * A POST on its own connection whose body is only half sent: resolves once the server has
 * accepted the request (`100 Continue`), so the request is provably in flight on the server
 * until `finish()` sends the rest.
 */
export function startUpload(origin: string, path: string): Promise<Upload> {
  const body = JSON.stringify({ payload: 'x'.repeat(64) });
  const half = Math.floor(body.length / 2);
  return new Promise((resolveStarted, rejectStarted) => {
    let settled = false;
    let resolveAnswer: (a: Answer) => void = () => {};
    let rejectAnswer: (e: Error) => void = () => {};
    const answer = new Promise<Answer>((res, rej) => {
      resolveAnswer = res;
      rejectAnswer = rej;
    });
    // Don't let an early failure go unhandled before finish() is awaited.
    answer.catch(() => {});
    const req = request(
      `${origin}${path}`,
      {
        agent: false,
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), expect: '100-continue' },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          settled = true;
          resolveAnswer({ status: res.statusCode ?? 0, headers: res.headers, body: text, reusedSocket: false });
        });
      },
    );
    req.on('error', (err) => {
      settled = true;
      rejectAnswer(err);
      rejectStarted(err);
    });
    req.on('continue', () => {
      req.write(body.slice(0, half), () =>
        resolveStarted({
          get settled() {
            return settled;
          },
          finish() {
            req.end(body.slice(half));
            return answer;
          },
        }),
      );
    });
    req.flushHeaders();
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
