import { Counter, Registry } from 'prom-client';
import { compileFlags, evaluateFlags, type EvaluationContext } from '../plugins/feature-flags/evaluate.js';
import { createFlagEvaluator } from '../plugins/feature-flags/evaluator.js';
import type { CreateFlag } from '../plugins/feature-flags/schemas.js';

// The feature-flag part of `npm run bench`: 100 flags with targeting rules, evaluated for one
// context in-process (engine alone, and through app.flags' metered evaluator), and the same flags
// created on the kernel so `POST /system/flags/evaluate` can be driven over HTTP.

const COUNTRIES = ['NZ', 'AU', 'US', 'CA', 'GB', 'IE', 'DE', 'NL', 'SE', 'JP'];

/** 100 flags: three rules each (set membership, semver, numeric), a 50% rollout, every 4th with three variants, every 10th behind a prerequisite. */
export function benchFlagBodies(): CreateFlag[] {
  return Array.from({ length: 100 }, (_, i): CreateFlag => {
    const key = `bench.flag-${String(i).padStart(3, '0')}`;
    const variants =
      i % 4 === 0
        ? [
            { key: 'control', weight: 50, value: { layout: 'old' } },
            { key: 'a', weight: 25, value: { layout: 'a' } },
            { key: 'b', weight: 25, value: { layout: 'b' } },
          ]
        : [];
    return {
      key,
      type: i % 4 === 0 ? 'experiment' : 'release',
      enabled: i % 7 !== 0,
      rolloutPercentage: 50,
      variants,
      defaultValue: variants.length ? { layout: 'old' } : false,
      offValue: variants.length ? { layout: 'old' } : false,
      rules: [
        { attribute: 'country', operator: 'in', values: COUNTRIES.slice(i % 5, (i % 5) + 4) },
        { attribute: 'appVersion', operator: 'semver_gte', values: [`2.${i % 10}.0`], rolloutPercentage: 20 },
        { attribute: 'age', operator: 'gt', values: [20 + (i % 30)] },
      ],
      prerequisites: i % 10 === 5 ? [{ flagKey: 'bench.flag-001' }] : [],
    };
  });
}

export const BENCH_CONTEXT: EvaluationContext = {
  key: 'user-12345',
  attributes: { country: 'FR', plan: 'pro', appVersion: '2.3.1', age: 31, groups: ['staff', 'beta'] },
};

export interface InProcessFigures {
  /** Flag evaluations per second (one evaluateAll of 100 flags counts 100). */
  engine: number;
  /** The same through the metered evaluator behind app.flags (prom-client counter per flag and reason). */
  metered: number;
  /** app.flags.evaluate(key, context), one flag per call. */
  singleMetered: number;
}

function perSecond(seconds: number, batch: number, run: () => void): number {
  const deadline = performance.now() + seconds * 1000;
  let n = 0;
  const started = performance.now();
  while (performance.now() < deadline) {
    for (let i = 0; i < 100; i++) run();
    n += 100;
  }
  return Math.round((n * batch) / ((performance.now() - started) / 1000));
}

/** Runs each measurement for `seconds` (after a short warm-up); call before the servers start. */
export function measureInProcess(seconds: number): InProcessFigures {
  const set = compileFlags(
    benchFlagBodies().map((b) => ({
      key: b.key,
      enabled: b.enabled ?? false,
      rolloutPercentage: b.rolloutPercentage ?? 0,
      variants: b.variants ?? [],
      rules: b.rules ?? [],
      prerequisites: b.prerequisites ?? [],
      defaultValue: b.defaultValue,
      offValue: b.offValue,
    })),
  );
  const counter: Counter<'flag' | 'reason'> = new Counter({
    name: 'valhalla_flag_evaluations_total',
    help: 'bench',
    labelNames: ['flag', 'reason'] as const,
    registers: [new Registry()],
    collect: () => evaluator.flush(),
  });
  const evaluator = createFlagEvaluator({ flags: () => set, counter });
  const keys = [...set.flags.keys()];
  let k = 0;
  const single = () => {
    evaluator.evaluate(keys[k++ % keys.length]!, BENCH_CONTEXT);
  };
  // Warm-up, so the JIT has seen every path before anything is timed.
  perSecond(0.5, 1, () => evaluateFlags(set, BENCH_CONTEXT));
  perSecond(0.5, 1, () => evaluator.evaluateAll(BENCH_CONTEXT));
  return {
    engine: perSecond(seconds, set.flags.size, () => evaluateFlags(set, BENCH_CONTEXT)),
    metered: perSecond(seconds, set.flags.size, () => evaluator.evaluateAll(BENCH_CONTEXT)),
    singleMetered: perSecond(seconds, 1, single),
  };
}

/**
 * Creates the bench flags on a running kernel through its API. On PostgreSQL the database
 * outlives the run, so flags left by an earlier run are deleted first (flags with prerequisites
 * before the flags they depend on; 404 for those that are not there).
 */
export async function seedFlags(origin: string, headers: Record<string, string>): Promise<void> {
  const bodies = benchFlagBodies();
  const dependentsFirst = [...bodies].sort((a, b) => (b.prerequisites?.length ?? 0) - (a.prerequisites?.length ?? 0));
  // A kernel shedding load (503 from under-pressure, on a busy machine just after a slow start)
  // is asked again after its Retry-After, a few times.
  const fetch = async (url: string, init: RequestInit): Promise<Response> => {
    for (let attempt = 0; ; attempt++) {
      const res = await globalThis.fetch(url, init);
      if (res.status !== 503 || attempt >= 5) return res;
      await res.arrayBuffer();
      await new Promise((r) => setTimeout(r, Math.min(10, Number(res.headers.get('retry-after') ?? 2)) * 1000));
    }
  };
  for (const body of dependentsFirst) {
    const removed = await fetch(`${origin}/system/flags/${body.key}`, { method: 'DELETE', headers });
    if (removed.status !== 204 && removed.status !== 404) throw new Error(`removing an earlier run's bench flag ${body.key}: ${removed.status} ${await removed.text()}`);
    await removed.arrayBuffer();
  }
  for (const body of bodies) {
    const res = await fetch(`${origin}/system/flags`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    if (res.status !== 201) throw new Error(`creating bench flag ${body.key}: ${res.status} ${await res.text()}`);
  }
}

/** The body of the HTTP target: every flag for the bench context. */
export const EVALUATE_BODY = JSON.stringify({ context: BENCH_CONTEXT });
