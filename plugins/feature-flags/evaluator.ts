import type { Counter } from 'prom-client';
import { evaluateFlag, evaluateFlags, type Evaluation, type EvaluationContext, type FlagSet } from './evaluate.js';
import type { Reason } from './schemas.js';

/** The `flag` label for keys that name no flag: a caller's typo must not create a time series. */
export const UNKNOWN_FLAG_LABEL = '(unknown)';

type Increment = { inc(): void };

/**
 * `app.flags.evaluate`/`evaluateAll`: the engine over the current in-memory flag set, counting
 * each evaluation in `valhalla_flag_evaluations_total{flag,reason}`. Label children are looked up
 * once per (flag, reason) and kept, so counting costs two Map lookups, not a label hash.
 */
export function createFlagEvaluator(deps: { flags: () => FlagSet; counter: Counter<'flag' | 'reason'> }) {
  const { flags, counter } = deps;
  const children = new Map<string, Map<Reason, Increment>>();

  function count(result: Evaluation): void {
    const flag = result.errorCode === 'FLAG_NOT_FOUND' ? UNKNOWN_FLAG_LABEL : result.key;
    let byReason = children.get(flag);
    if (!byReason) {
      byReason = new Map();
      children.set(flag, byReason);
    }
    let child = byReason.get(result.reason);
    if (!child) {
      child = counter.labels(flag, result.reason);
      byReason.set(result.reason, child);
    }
    child.inc();
  }

  return {
    /** One flag for one context, from memory. */
    evaluate(key: string, context: EvaluationContext): Evaluation {
      const result = evaluateFlag(flags(), key, context);
      count(result);
      return result;
    },
    /** Many flags (all when `keys` is omitted) for one context, from memory. */
    evaluateAll(context: EvaluationContext, keys?: Iterable<string>): Evaluation[] {
      const results = evaluateFlags(flags(), context, keys);
      for (const r of results) count(r);
      return results;
    },
    /** Drops the series of flags that no longer exist (called after each reload). */
    forgetMissing(set: FlagSet): void {
      for (const [flag, byReason] of children) {
        if (flag === UNKNOWN_FLAG_LABEL || set.flags.has(flag)) continue;
        for (const reason of byReason.keys()) counter.remove(flag, reason);
        children.delete(flag);
      }
    },
  };
}
export type FlagEvaluator = ReturnType<typeof createFlagEvaluator>;
