import { eq } from 'drizzle-orm';
import { Type } from '@sinclair/typebox';
import type { Db, DbOrTx } from '../../db/client.js';
import { StrictObject } from '../../src/schemas.js';
import type { SnapshotItem, SnapshotSection } from '../../src/snapshot.js';
import { CreateChannelBody, type CreateChannel } from './schemas.js';
import type { NotificationService } from './service.js';
import { notificationChannels } from './table.js';

/** Imports are admin-only (`POST /system/imports`), so they may name secrets and move destinations. */
const ADMIN = { admin: true };

const ChannelItem = StrictObject({ ...CreateChannelBody.properties, enabled: Type.Boolean() });

/** Channels in a snapshot: name, type, subscriptions, config (secret variable names only) and enabled. */
export function channelSnapshotSection(db: Db, service: NotificationService): SnapshotSection {
  const byName = async (tx: DbOrTx, name: string) => (await tx.select().from(notificationChannels).where(eq(notificationChannels.name, name)).limit(1))[0];
  return {
    name: 'notification_channels',
    description: 'Notification channels (secrets stay in the environment: only their variable names are carried)',
    itemSchema: ChannelItem,
    keyOf: (item) => String(item.name),
    async read() {
      const rows = await db.select().from(notificationChannels).orderBy(notificationChannels.name);
      return rows.map((r): SnapshotItem => ({ name: r.name, type: r.type, events: r.events, config: r.config, enabled: r.enabled }));
    },
    async apply(tx, plan) {
      // The plan was computed before this transaction: a channel removed meanwhile is already as wanted.
      for (const name of plan.remove) {
        const current = await byName(tx, name);
        if (current) await service.removeChannel(tx, current.id);
      }
      for (const item of plan.create) await service.createChannel(tx, item as CreateChannel, ADMIN);
      for (const item of plan.update) {
        const wanted = item as CreateChannel & { enabled: boolean };
        const current = await byName(tx, wanted.name);
        if (!current) await service.createChannel(tx, wanted, ADMIN);
        else if (current.type !== wanted.type) {
          // The type of a channel is fixed: another type is another channel under the same name.
          await service.removeChannel(tx, current.id);
          await service.createChannel(tx, wanted, ADMIN);
        } else {
          await service.updateChannel(tx, current.id, { events: wanted.events, config: wanted.config, enabled: wanted.enabled }, ADMIN);
        }
      }
    },
  };
}
