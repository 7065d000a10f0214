import { createTransport } from 'nodemailer';
import { safeMessage } from '../../src/secrets.js';
import { isIP } from 'node:net';
import { resolveGuarded, TargetRefusedError, type OutboundHttp } from './outbound.js';
import type { EmailConfig, SmsConfig, WebhookConfig } from './schemas.js';
import { SecretFormatError, secretKey, signatureHeader } from './standard-webhooks.js';
import type { ChannelType } from './table.js';

/** What one delivery sends, whatever the channel type. */
export interface OutgoingMessage {
  messageId: string;
  eventType: string;
  payload: Record<string, unknown>;
  /** When the event happened (the outbox row's creation). */
  createdAt: Date;
}

export type DeliveryResult =
  | { ok: true; statusCode: number | null }
  | {
      ok: false;
      statusCode: number | null;
      error: string;
      /** The target's `Retry-After`, in ms. */
      retryAfterMs: number | null;
      /** No later attempt can succeed (refused target, 410, a malformed secret): dead at once. */
      permanent: boolean;
      /** 410 Gone: the channel is switched off. */
      gone: boolean;
    };

export interface DeliveryContext {
  /** `traceparent`/`tracestate` of the delivery's client span. */
  traceHeaders: Record<string, string>;
  signal?: AbortSignal;
}

/** Reads a secret by the variable name a channel's config gives (the only place secrets come from). */
export type SecretSource = (name: string) => string | undefined;

export const DEFAULT_TIMEOUT_MS = 5000;

class MissingSecretError extends Error {}

const failure = (error: string, o: { statusCode?: number | null; retryAfterMs?: number | null; permanent?: boolean; gone?: boolean } = {}): DeliveryResult => ({
  ok: false,
  statusCode: o.statusCode ?? null,
  error,
  retryAfterMs: o.retryAfterMs ?? null,
  permanent: o.permanent ?? false,
  gone: o.gone ?? false,
});

/** An error thrown while sending, as a result: refusals and malformed secrets are permanent. */
function fromError(err: unknown): DeliveryResult {
  if (err instanceof TargetRefusedError) return failure(`refused: ${err.message}`, { permanent: true });
  if (err instanceof SecretFormatError) return failure(`secret ${err.message}`, { permanent: true });
  return failure(safeMessage(err).slice(0, 300));
}

/** An HTTP answer as a result: 2xx delivered, 410 gone, anything else (3xx included: redirects are not followed) retried. */
function fromStatus(status: number, retryAfterMs: number | null): DeliveryResult {
  if (status >= 200 && status < 300) return { ok: true, statusCode: status };
  if (status === 410) return failure('target answered 410 Gone: channel disabled', { statusCode: status, permanent: true, gone: true });
  return failure(`target answered ${status}`, { statusCode: status, retryAfterMs });
}

export interface Senders {
  deliver(type: ChannelType, config: Record<string, unknown>, message: OutgoingMessage, ctx: DeliveryContext): Promise<DeliveryResult>;
}

export function createSenders({
  http,
  secrets,
  appName,
  allowPrivate,
  resolveSmtp = (host) => resolveGuarded(host, allowPrivate),
}: {
  http: OutboundHttp;
  secrets: SecretSource;
  appName: string;
  /** `WEBHOOK_ALLOW_PRIVATE`: whether SMTP hosts may be private addresses (HTTP targets: `http`'s own guard). */
  allowPrivate: boolean;
  /** The checked address of an SMTP host (a seam for tests). */
  resolveSmtp?: (host: string) => Promise<string>;
}): Senders {
  const secret = (name: string): string => {
    const value = secrets(name);
    if (value === undefined || value === '') throw new MissingSecretError(`environment variable ${name} is not set`);
    return value;
  };

  /** Standard Webhooks body and headers: `{ type, timestamp, data }`, signed with every configured secret. */
  async function webhook(config: WebhookConfig, message: OutgoingMessage, ctx: DeliveryContext): Promise<DeliveryResult> {
    const keys = config.secretEnvs.map((name) => {
      try {
        return secretKey(secret(name));
      } catch (err) {
        if (err instanceof SecretFormatError) throw new SecretFormatError(`in ${name} ${err.message}`);
        throw err;
      }
    });
    const body = JSON.stringify({ type: message.eventType, timestamp: message.createdAt.toISOString(), data: message.payload });
    const timestamp = Math.floor(Date.now() / 1000);
    const answer = await http.post(
      new URL(config.url),
      body,
      {
        'webhook-id': message.messageId,
        'webhook-timestamp': String(timestamp),
        'webhook-signature': signatureHeader(keys, message.messageId, timestamp, body),
        ...ctx.traceHeaders,
      },
      { timeoutMs: config.timeoutMs ?? DEFAULT_TIMEOUT_MS, signal: ctx.signal },
    );
    return fromStatus(answer.status, answer.retryAfterMs);
  }

  /** A generic provider: one JSON POST with every recipient, a bearer token from the environment when configured. */
  async function sms(config: SmsConfig, message: OutgoingMessage, ctx: DeliveryContext): Promise<DeliveryResult> {
    const text = `[${appName}] ${message.eventType}: ${summary(message.payload)}`.slice(0, 480);
    const headers: Record<string, string> = { 'idempotency-key': message.messageId, ...ctx.traceHeaders };
    if (config.tokenEnv) headers.authorization = `Bearer ${secret(config.tokenEnv)}`;
    const body = JSON.stringify({ to: config.to, message: text, eventType: message.eventType, messageId: message.messageId });
    const answer = await http.post(new URL(config.url), body, headers, { timeoutMs: config.timeoutMs ?? DEFAULT_TIMEOUT_MS, signal: ctx.signal });
    return fromStatus(answer.status, answer.retryAfterMs);
  }

  /**
   * SMTP through nodemailer, behind the same address guard as HTTP targets (credentials go to this
   * host): the name is resolved and checked here and nodemailer connects to the checked address,
   * presenting and verifying the name for TLS.
   */
  async function email(config: EmailConfig, message: OutgoingMessage, ctx: DeliveryContext): Promise<DeliveryResult> {
    const timeout = config.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const address = await resolveSmtp(config.host);
    const bare = config.host.replace(/^\[|\]$/g, '');
    const transport = createTransport({
      host: address,
      ...(isIP(bare) === 0 && { servername: bare }),
      port: config.port,
      secure: config.secure ?? false,
      auth: config.usernameEnv ? { user: secret(config.usernameEnv), pass: config.passwordEnv ? secret(config.passwordEnv) : '' } : undefined,
      connectionTimeout: timeout,
      greetingTimeout: timeout,
      socketTimeout: timeout,
    });
    const onAbort = () => transport.close();
    ctx.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const info = await transport.sendMail({
        from: config.from,
        to: config.to,
        subject: `[${appName}] ${message.eventType}`,
        text: `${message.eventType} at ${message.createdAt.toISOString()}\n\n${JSON.stringify(message.payload, null, 2)}\n`,
        headers: { 'Message-ID': `<${message.messageId}@${appName}>`, ...(ctx.traceHeaders.traceparent ? { traceparent: ctx.traceHeaders.traceparent } : {}) },
      });
      return info.rejected.length > 0 ? failure(`SMTP server rejected ${info.rejected.length} of ${config.to.length} recipients`) : { ok: true, statusCode: null };
    } finally {
      ctx.signal?.removeEventListener('abort', onAbort);
      transport.close();
    }
  }

  return {
    async deliver(type, config, message, ctx) {
      try {
        if (type === 'webhook') return await webhook(config as WebhookConfig, message, ctx);
        if (type === 'sms') return await sms(config as SmsConfig, message, ctx);
        return await email(config as EmailConfig, message, ctx);
      } catch (err) {
        return fromError(err);
      }
    },
  };
}

/** The payload in one line for an SMS: its `summary` or `message` field when it has one. */
function summary(payload: Record<string, unknown>): string {
  for (const key of ['summary', 'message', 'reason']) {
    const v = payload[key];
    if (typeof v === 'string' && v) return v;
  }
  return JSON.stringify(payload);
}
