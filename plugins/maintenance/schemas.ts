import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { PageQuerySchema } from '../../src/pagination.js';
import { IsoDate, StrictObject } from '../../src/schemas.js';

// Bodies and queries are StrictObject (unknown fields: 400 naming the field); responses plain objects.

const ModeSchema = Type.Union([Type.Literal('normal'), Type.Literal('read_only'), Type.Literal('maintenance')]);
const WindowModeSchema = Type.Union([Type.Literal('read_only'), Type.Literal('maintenance')], { description: 'a window never sets `normal`' });
const Reason = Type.String({ minLength: 1, maxLength: 500 });
const Instant = (description: string) => Type.String({ format: 'date-time', maxLength: 40, description });
const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);

export const ActorSchema = Type.Object({ type: Type.String(), id: Type.Union([Type.String(), Type.Null()]), keyId: Type.Union([Type.String(), Type.Null()]) });

export const WindowSchema = Type.Object({
  id: Type.Integer(),
  mode: WindowModeSchema,
  reason: Type.String(),
  startsAt: IsoDate(),
  endsAt: IsoDate(),
  status: Type.Union([Type.Literal('upcoming'), Type.Literal('active'), Type.Literal('ended')]),
  createdBy: Type.Union([Type.String(), Type.Null()]),
  activatedAt: Nullable(IsoDate('when the sweep job recorded the start')),
  completedAt: Nullable(IsoDate('when the sweep job recorded the end')),
  createdAt: IsoDate(),
  updatedAt: IsoDate(),
});
export type WindowBody = Static<typeof WindowSchema>;

export const FreezeSchema = Type.Object({
  enabled: Type.Boolean(),
  reason: Nullable(Type.String()),
  source: Type.Union([Type.Literal('manual'), Type.Literal('expired'), Type.Literal('default')]),
  actor: Nullable(ActorSchema),
  since: Nullable(IsoDate()),
  until: Nullable(IsoDate()),
});
export type FreezeBody = Static<typeof FreezeSchema>;

export const MaintenanceStatusSchema = Type.Object({
  mode: ModeSchema,
  reason: Nullable(Type.String()),
  source: Type.Union([Type.Literal('manual'), Type.Literal('expired'), Type.Literal('default')], { description: 'who wrote the setting: an operator, the expiry of its until, or nothing yet' }),
  actor: Nullable(ActorSchema),
  since: Nullable(IsoDate()),
  until: Nullable(IsoDate()),
  effective: Type.Object(
    {
      mode: ModeSchema,
      source: Type.Union([Type.Literal('setting'), Type.Literal('window'), Type.Literal('default')]),
      reason: Nullable(Type.String()),
      since: Nullable(IsoDate()),
      until: Nullable(IsoDate()),
      windowId: Nullable(Type.Integer()),
    },
    { description: 'the mode in force now: a window in progress wins over an older setting; a setting made during a window wins over it' },
  ),
  activeWindow: Nullable(WindowSchema),
  nextWindow: Nullable(WindowSchema),
  freeze: FreezeSchema,
});
export type MaintenanceStatus = Static<typeof MaintenanceStatusSchema>;

export const SetStateBody = StrictObject({
  mode: ModeSchema,
  reason: Reason,
  until: Type.Optional(Instant('when the mode switches back to normal by itself; in the future; not with `normal`')),
});
export type SetState = Static<typeof SetStateBody>;

export const SetFreezeBody = StrictObject({
  enabled: Type.Boolean(),
  reason: Reason,
  until: Type.Optional(Instant('when the freeze ends by itself; in the future; only with `enabled: true`')),
});
export type SetFreeze = Static<typeof SetFreezeBody>;

export const CreateWindowBody = StrictObject({
  mode: WindowModeSchema,
  reason: Reason,
  startsAt: Instant('start (may be now or in the past to start at once)'),
  endsAt: Instant('end: after startsAt and in the future'),
});
export type CreateWindow = Static<typeof CreateWindowBody>;

export const UpdateWindowBody = StrictObject(
  {
    mode: Type.Optional(WindowModeSchema),
    reason: Type.Optional(Reason),
    startsAt: Type.Optional(Instant('start')),
    endsAt: Type.Optional(Instant('end: after startsAt and in the future')),
  },
  { minProperties: 1 },
);
export type UpdateWindow = Static<typeof UpdateWindowBody>;

export const WindowQuery = StrictObject({
  ...PageQuerySchema.properties,
  status: Type.Optional(Type.Union([Type.Literal('upcoming'), Type.Literal('active'), Type.Literal('ended')])),
});
export type WindowFilter = Static<typeof WindowQuery>;

export const HistoryItemSchema = Type.Object({
  id: Type.Integer(),
  mode: ModeSchema,
  reason: Type.String(),
  source: Type.Union([Type.Literal('manual'), Type.Literal('expired')]),
  actor: ActorSchema,
  since: IsoDate(),
  until: Nullable(IsoDate()),
});
export type HistoryItem = Static<typeof HistoryItemSchema>;

export const HistoryQuery = StrictObject({ ...PageQuerySchema.properties });
