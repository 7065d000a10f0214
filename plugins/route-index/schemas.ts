import { Type, type Static } from '@sinclair/typebox';
import { PageQuerySchema } from '../../src/pagination.js';
import { IsoDate, StrictObject } from '../../src/schemas.js';

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
const Version = Type.String({ minLength: 1, maxLength: 64, description: 'an instance version (package.json `version`)' });

export const RouteInfoSchema = Type.Object({
  method: Type.String(),
  url: Type.String({ description: 'route template, e.g. `/system/flags/:key`' }),
  pack: Type.Union([Type.String(), Type.Null()]),
  summary: Type.Union([Type.String(), Type.Null()]),
  tags: Type.Array(Type.String()),
  scope: Type.Union([Type.String(), Type.Null()], { description: 'scope an API key needs; null on public routes' }),
  public: Type.Boolean({ description: 'answers without an API key' }),
  shield: Type.Boolean({ description: 'the read-only/maintenance shield applies to it' }),
  rateLimited: Type.Boolean({ description: 'the rate limiter counts it' }),
});
export type RouteInfo = Static<typeof RouteInfoSchema>;

export const RouteQuery = StrictObject({
  ...PageQuerySchema.properties,
  pack: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'pack name, e.g. `health`' })),
  method: Type.Optional(Type.Union(METHODS.map((m) => Type.Literal(m)))),
  prefix: Type.Optional(Type.String({ minLength: 1, maxLength: 500, description: 'routes whose template starts with this, e.g. `/system/admin`' })),
  scope: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'routes requiring exactly this scope' })),
  public: Type.Optional(Type.Boolean({ description: 'only public (true) or only keyed (false) routes' })),
});
export type RouteFilter = Static<typeof RouteQuery>;

export const RouteVersionSchema = Type.Object({
  id: Type.Integer(),
  version: Type.String(),
  routeCount: Type.Integer(),
  recordedBy: Type.String({ description: 'the instance that recorded it (the first of this version to start)' }),
  recordedAt: IsoDate(),
  current: Type.Boolean({ description: 'the version this instance runs' }),
});
export type RouteVersion = Static<typeof RouteVersionSchema>;

export const DiffQuery = StrictObject({ from: Version, to: Version });

const CHANGED_FIELDS = ['pack', 'summary', 'tags', 'scope', 'public', 'shield', 'rateLimited'] as const;
export type ChangedField = (typeof CHANGED_FIELDS)[number];
export const COMPARED_FIELDS: readonly ChangedField[] = CHANGED_FIELDS;

export const RouteDiffSchema = Type.Object({
  from: Type.String(),
  to: Type.String(),
  added: Type.Array(RouteInfoSchema, { description: 'in `to`, not in `from`' }),
  removed: Type.Array(RouteInfoSchema, { description: 'in `from`, not in `to`' }),
  changed: Type.Array(
    Type.Object({
      method: Type.String(),
      url: Type.String(),
      changes: Type.Record(Type.String(), Type.Object({ from: Type.Unknown(), to: Type.Unknown() }), {
        description: `each field that differs (${CHANGED_FIELDS.join(', ')})`,
      }),
    }),
  ),
});
export type RouteDiff = Static<typeof RouteDiffSchema>;
