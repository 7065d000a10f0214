import type { Counter } from 'prom-client';
import { evaluateFlag, evaluateFlags, type Evaluation, type EvaluationContext, type FlagSet } from './evaluate.js';
import { REASONS, type Reason } from './schemas.js';

/** The `flag` label for keys that name no flag: a caller's typo must not create a time series. */
export const UNKNOWN_FLAG_LABEL = '(unknown)';

const REASON_INDEX = Object.fromEntries(REASONS.map((r, i) => [r, i])) as Record<Reason, number>;

/**
 * `app.flags.evaluate`/`evaluateAll`: the engine over the current in-memory flag set, counting
 * each evaluation in `valhalla_flag_evaluations_total{flag,reason}`.
 *
 * Counting is a plain array increment per evaluation; the counter receives the sums when it is
 * collected (each `/metrics` scrape). prom-client's own `inc`, even on a cached label child,
 * hashes and validates the labels every call, which measured as costly as the evaluation itself.
 */
export function createFlagEvaluator(deps: { flags: () => FlagSet; counter: Counter<'flag' | 'reason'> }) {
  const { flags, counter } = deps;
  /** Evaluations not yet handed to the counter, per flag, indexed by REASON_INDEX. */
  const pending = new Map<string, number[]>();

  function count(result: Evaluation): void {
    const flag = result.errorCode === 'FLAG_NOT_FOUND' ? UNKNOWN_FLAG_LABEL : result.key;
    let counts = pending.get(flag);
    if (!counts) {
      counts = REASONS.map(() => 0);
      pending.set(flag, counts);
    }
    counts[REASON_INDEX[result.reason]]!++;
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
    /** Hands the pending counts to the counter; call it from the counter's `collect`. */
    flush(): void {
      for (const [flag, counts] of pending) {
        counts.forEach((n, i) => {
          if (n > 0) {
            counter.inc({ flag, reason: REASONS[i]! }, n);
            counts[i] = 0;
          }
        });
      }
    },
    /** Drops the series of flags that no longer exist (called after each reload). */
    forgetMissing(set: FlagSet): void {
      for (const flag of pending.keys()) {
        if (flag === UNKNOWN_FLAG_LABEL || set.flags.has(flag)) continue;
        for (const reason of REASONS) counter.remove(flag, reason);
        pending.delete(flag);
      }
    },
  };
}
export type FlagEvaluator = ReturnType<typeof createFlagEvaluator>;
