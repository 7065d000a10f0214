import { bigint, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

/**
 * The template pack's one table. drizzle.config.ts collects every `plugins/<pack>/table.ts`;
 * after changing it, `npm run db:generate -- --name <what-changed>` writes the migration.
 */
export const templateItems = pgTable('template_items', {
  id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
  // The unique constraint, not a read-before-write, is what turns a duplicate into 409 (race-free).
  name: text('name').notNull().unique('template_items_name_key'),
  description: text('description').notNull().default(''),
  createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
});
