import { bigint, boolean, jsonb, pgTable, text, timestamp, unique } from 'drizzle-orm/pg-core';

/**
 * One row per instance version whose routes were recorded. The first instance of a version to
 * start inserts it (ON CONFLICT DO NOTHING) and its routes in the same transaction; every other
 * instance of that version finds it and records nothing.
 */
export const routeIndexVersions = pgTable('route_index_versions', {
  id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
  version: text('version').notNull().unique('route_index_versions_version_key'),
  instanceId: text('instance_id').notNull(),
  routeCount: bigint('route_count', { mode: 'number' }).notNull(),
  createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
});

/** The routes of one version, as the route catalogue described them when it was recorded. */
export const routeIndex = pgTable(
  'route_index',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    version: text('version')
      .notNull()
      .references(() => routeIndexVersions.version, { onDelete: 'cascade' }),
    method: text('method').notNull(),
    url: text('url').notNull(),
    pack: text('pack'),
    summary: text('summary'),
    tags: jsonb('tags').$type<string[]>().notNull().default([]),
    scope: text('scope'),
    public: boolean('public').notNull(),
    shield: boolean('shield').notNull(),
    rateLimited: boolean('rate_limited').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [unique('route_index_version_route_key').on(t.version, t.method, t.url)],
);
