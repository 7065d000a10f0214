import { Type, type Static } from '@sinclair/typebox';
import { PageQuerySchema } from '../../src/pagination.js';
import { IsoDate, StrictObject } from '../../src/schemas.js';
import { CHANNEL_TYPES, OUTBOX_STATUSES } from './table.js';

// Bodies and query strings are StrictObject (unknown fields are a 400 naming the field).

/** Secrets are read from environment variables with this prefix only, so a channel cannot name DATABASE_URL or ADMIN_API_KEY. */
export const SECRET_ENV_PREFIX = 'NOTIFY_SECRET_';
const SecretEnv = Type.String({ minLength: SECRET_ENV_PREFIX.length + 1, maxLength: 100, pattern: `^${SECRET_ENV_PREFIX}[A-Z0-9_]+$`, description: `name of an environment variable starting with ${SECRET_ENV_PREFIX}; the secret itself is never stored` });
// No whitespace or control characters anywhere: the URL parser would drop or escape them, and the
// stored URL must be the one delivered to.
const HttpUrl = Type.String({ minLength: 8, maxLength: 2048, pattern: '^[Hh][Tt][Tt][Pp][Ss]?://[^\\s\\x00-\\x1f\\x7f]+$', description: 'http or https URL, no credentials, no spaces or control characters' });
const TimeoutMs = Type.Integer({ minimum: 100, maximum: 30_000, description: 'a delivery attempt is abandoned after this (5000 when not given)' });
const Email = Type.String({ minLength: 3, maxLength: 254, pattern: '^[^\\s@<>]+@[^\\s@<>]+$' });
const Phone = Type.String({ minLength: 3, maxLength: 16, pattern: '^\\+[1-9][0-9]{1,14}$', description: 'E.164, e.g. +15551234567' });

export const EventType = Type.String({ minLength: 1, maxLength: 100, pattern: '^[a-z][a-z0-9_-]*(\\.[a-z][a-z0-9_-]*)+$', description: 'dotted lower-case, e.g. `smoke.failed`' });
const EventPattern = Type.String({ minLength: 1, maxLength: 100, pattern: '^(\\*|[a-z][a-z0-9_-]*(\\.[a-z][a-z0-9_-]*)*(\\.\\*)?)$', description: 'an event type, a prefix such as `maintenance.*`, or `*` for all' });

export const WebhookConfigSchema = StrictObject({
  url: HttpUrl,
  secretEnvs: Type.Array(SecretEnv, { minItems: 1, maxItems: 3, uniqueItems: true, description: 'each holds one `whsec_` secret; every one signs (several during a rotation)' }),
  timeoutMs: Type.Optional(TimeoutMs),
});
export type WebhookConfig = Static<typeof WebhookConfigSchema>;

export const EmailConfigSchema = StrictObject({
  host: Type.String({ minLength: 1, maxLength: 253, pattern: '^[A-Za-z0-9.:\\[\\]-]+$', description: 'SMTP server' }),
  port: Type.Integer({ minimum: 1, maximum: 65535 }),
  secure: Type.Optional(Type.Boolean({ description: 'TLS from the start (port 465); otherwise STARTTLS when offered' })),
  from: Email,
  to: Type.Array(Email, { minItems: 1, maxItems: 20 }),
  usernameEnv: Type.Optional(SecretEnv),
  passwordEnv: Type.Optional(SecretEnv),
  timeoutMs: Type.Optional(TimeoutMs),
});
export type EmailConfig = Static<typeof EmailConfigSchema>;

export const SmsConfigSchema = StrictObject({
  url: Type.String({ ...HttpUrl, description: "the provider's send endpoint: receives POST `{ to, message, eventType, messageId }` as JSON" }),
  to: Type.Array(Phone, { minItems: 1, maxItems: 20 }),
  tokenEnv: Type.Optional(Type.String({ ...SecretEnv, description: `sent as \`Authorization: Bearer <value>\`; ${SecretEnv.description}` })),
  timeoutMs: Type.Optional(TimeoutMs),
});
export type SmsConfig = Static<typeof SmsConfigSchema>;

export const ChannelConfigSchema = Type.Union([WebhookConfigSchema, EmailConfigSchema, SmsConfigSchema], { description: 'by `type`: webhook, email or sms settings' });
export type ChannelConfig = WebhookConfig | EmailConfig | SmsConfig;

const ChannelType = Type.Union(CHANNEL_TYPES.map((t) => Type.Literal(t)));
const Name = Type.String({ minLength: 1, maxLength: 100, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' });
const Events = Type.Array(EventPattern, { minItems: 1, maxItems: 50, uniqueItems: true });

export const ChannelSchema = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  type: ChannelType,
  events: Type.Array(Type.String()),
  config: Type.Record(Type.String(), Type.Unknown(), { description: 'as given: secret variable names, never secrets' }),
  enabled: Type.Boolean(),
  disabledReason: Type.Union([Type.String(), Type.Null()]),
  createdAt: IsoDate(),
  updatedAt: IsoDate(),
});
export type Channel = Static<typeof ChannelSchema>;

export const CreateChannelBody = StrictObject({
  name: Name,
  type: ChannelType,
  events: Events,
  config: ChannelConfigSchema,
  enabled: Type.Optional(Type.Boolean()),
});
export type CreateChannel = Static<typeof CreateChannelBody>;

export const UpdateChannelBody = StrictObject(
  {
    name: Type.Optional(Name),
    events: Type.Optional(Events),
    config: Type.Optional(ChannelConfigSchema),
    enabled: Type.Optional(Type.Boolean({ description: 'true also clears `disabledReason`' })),
  },
  { minProperties: 1 },
);
export type UpdateChannel = Static<typeof UpdateChannelBody>;

export const ChannelQuery = StrictObject({
  ...PageQuerySchema.properties,
  type: Type.Optional(ChannelType),
  enabled: Type.Optional(Type.Boolean()),
});
export type ChannelFilter = Static<typeof ChannelQuery>;

export const TestResultSchema = Type.Object({
  ok: Type.Boolean(),
  statusCode: Type.Union([Type.Integer(), Type.Null()]),
  durationMs: Type.Integer(),
  error: Type.Union([Type.String(), Type.Null()]),
  messageId: Type.String(),
});
export type TestResult = Static<typeof TestResultSchema>;

const OutboxStatus = Type.Union(OUTBOX_STATUSES.map((s) => Type.Literal(s)));

export const OutboxItemSchema = Type.Object({
  id: Type.Integer(),
  messageId: Type.String(),
  eventId: Type.String(),
  channelId: Type.Union([Type.Integer(), Type.Null()]),
  eventType: Type.String(),
  payload: Type.Record(Type.String(), Type.Unknown()),
  status: OutboxStatus,
  attempts: Type.Integer(),
  maxAttempts: Type.Integer(),
  nextAttemptAt: IsoDate(),
  lastError: Type.Union([Type.String(), Type.Null()]),
  lastStatusCode: Type.Union([Type.Integer(), Type.Null()]),
  deliveredAt: Type.Union([IsoDate(), Type.Null()]),
  createdAt: IsoDate(),
  updatedAt: IsoDate(),
});
export type OutboxItem = Static<typeof OutboxItemSchema>;

export const OutboxQuery = StrictObject({
  ...PageQuerySchema.properties,
  status: Type.Optional(OutboxStatus),
  channelId: Type.Optional(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER })),
  eventType: Type.Optional(EventType),
  eventId: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: '^evt_[A-Za-z0-9_-]+$' })),
});
export type OutboxFilter = Static<typeof OutboxQuery>;

export const NotifyBody = StrictObject({
  type: EventType,
  payload: Type.Optional(Type.Record(Type.String({ maxLength: 200 }), Type.Unknown(), { description: 'the event data (`data` in the webhook body)' })),
  channelIds: Type.Optional(
    Type.Array(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }), { minItems: 1, maxItems: 50, uniqueItems: true, description: 'only these channels, whatever they subscribe to (each must exist and be enabled: 422 otherwise); otherwise every enabled channel subscribed to `type`' }),
  ),
});
export type NotifyInput = Static<typeof NotifyBody>;

export const NotifyResultSchema = Type.Object({
  eventId: Type.String(),
  items: Type.Array(OutboxItemSchema, { description: 'one outbox row per channel; empty when no enabled channel takes the event' }),
});

