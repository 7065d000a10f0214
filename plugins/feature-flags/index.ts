import { Counter } from 'prom-client';
import type { DeclaredScopes } from '../../src/access.js';
import { definePack } from '../../src/pack.js';
import type { StateEntry } from '../../src/state-cache.js';
import { compileFlags, type Evaluation, type EvaluationContext, type FlagSet } from './evaluate.js';
import { createFlagEvaluator } from './evaluator.js';
import { flagRoutes } from './routes.js';
import { createFlagService, type FlagService } from './service.js';
import { flagSnapshotSection } from './snapshot.js';

/**
 * What this pack offers other packs: `app.flags.evaluate(key, context)` and
 * `app.flags.evaluateAll(context, keys?)` answer from the compiled flags in memory (never the
 * database); the state cache recompiles them on every instance within a second of a write.
 */
export interface Flags {
  service: FlagService;
  state: StateEntry<FlagSet>;
  evaluate(key: string, context: EvaluationContext): Evaluation;
  evaluateAll(context: EvaluationContext, keys?: Iterable<string>): Evaluation[];
}

declare module 'fastify' {
  interface FastifyInstance {
    flags: Flags;
  }
}

/** The scopes this pack's routes require; API keys can hold them while the pack is loaded. */
const scopes = {
  'flags:read': 'Read feature flags and evaluate them',
  'flags:write': 'Create, change and delete feature flags',
} as const;

declare module '../../src/access.js' {
  interface ScopeRegistry extends DeclaredScopes<typeof scopes> {}
}

/**
 * UA feature flags: kill switch, fractional rollout, weighted variants, ordered targeting rules,
 * prerequisites; deterministic murmurhash3 bucketing; evaluation in memory (evaluate.ts).
 */
export default definePack({
  name: 'feature-flags',
  code: 'UA',
  description: 'Feature flags: kill switch, percentage rollout, weighted variants, targeting rules and prerequisites, evaluated in memory',
  scopes,
  async register(app) {
    const service = createFlagService({ db: app.db });
    let current: FlagSet = compileFlags([]);
    const counter: Counter<'flag' | 'reason'> = new Counter({
      name: 'valhalla_flag_evaluations_total',
      help: 'Flag evaluations by flag and reason (flag="(unknown)" for keys that name no flag)',
      labelNames: ['flag', 'reason'] as const,
      registers: [app.metrics],
      collect: () => evaluator.flush(),
    });
    const evaluator = createFlagEvaluator({ flags: () => current, counter });
    const state = app.stateCache.register(
      'feature-flags',
      async () => {
        const set = compileFlags(await service.allDefinitions());
        for (const flag of set.flags.values()) {
          if (flag.broken) app.log.warn({ flag: flag.key, problem: flag.broken }, 'feature flag cannot be evaluated; it answers ERROR');
        }
        evaluator.forgetMissing(set);
        current = set;
        return set;
      },
      current,
    );
    app.snapshots.section(flagSnapshotSection(service, app.stateCache, state));
    app.decorate('flags', { service, state, evaluate: evaluator.evaluate, evaluateAll: evaluator.evaluateAll });
    app.overview.add('flags', () => {
      const flags = [...state.get().flags.values()];
      return { total: flags.length, enabled: flags.filter((f) => f.enabled).length };
    });
  },
  routes: async (app) => {
    await app.register(flagRoutes(app.flags));
  },
});
