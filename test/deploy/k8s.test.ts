import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { PersistentVolumeClaim, ConfigMap, Secret, Service } from 'kubernetes-models/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { Job } from 'kubernetes-models/batch/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { parseAllDocuments, parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../lifecycle/server-process.js';

/*
 * deploy/k8s: every manifest is checked against the Kubernetes API schemas bundled in the
 * kubernetes-models package (offline), then against what the kernel needs of it: probes on the
 * right routes and ports, a shutdown that fits in the grace period, jobs off on the web pods, the
 * entry points the image really has, one pinned image tag, selectors that match.
 */
const dir = path.join(projectRoot, 'deploy', 'k8s');
const version = (JSON.parse(readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as { version: string }).version;

interface Doc {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  [key: string]: unknown;
}
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim,
  'apps/v1/Deployment': Deployment,
  'batch/v1/Job': Job,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
};

const manifestFiles = readdirSync(dir).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
const docs: Array<Doc & { file: string }> = manifestFiles.flatMap((file) =>
  parseAllDocuments(readFileSync(path.join(dir, file), 'utf8')).map((d) => {
    if (d.errors.length) throw new Error(`${file}: ${d.errors[0]!.message}`);
    return { ...(d.toJS() as Doc), file };
  }),
);
const applied = docs.filter((d) => d.file !== 'secret.example.yaml');
/** A parsed manifest read as the shape a test expects of it (the schema check comes first). */
const typed = <T extends Doc>(d: Doc | undefined): T => d as T;
const one = (kind: string, name: string): Doc => {
  const found = applied.filter((d) => d.kind === kind && d.metadata.name === name);
  expect(found, `${kind}/${name}`).toHaveLength(1);
  return found[0]!;
};

interface Probe {
  httpGet?: { path: string; port: string | number };
  periodSeconds?: number;
  timeoutSeconds?: number;
  failureThreshold?: number;
}
interface Container {
  name: string;
  image: string;
  command?: string[];
  ports?: Array<{ name?: string; containerPort: number }>;
  env?: Array<{ name: string; value?: string }>;
  envFrom?: Array<{ configMapRef?: { name: string }; secretRef?: { name: string } }>;
  startupProbe?: Probe;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  lifecycle?: { preStop?: { exec?: { command: string[] } } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: { allowPrivilegeEscalation?: boolean; readOnlyRootFilesystem?: boolean; capabilities?: { drop?: string[] } };
  volumeMounts?: Array<{ name: string; mountPath: string }>;
}
interface PodSpec {
  containers: Container[];
  terminationGracePeriodSeconds?: number;
  restartPolicy?: string;
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number };
  volumes?: Array<{ name: string; persistentVolumeClaim?: { claimName: string } }>;
}
type Workload = Doc & { spec: { selector?: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string> }; spec: PodSpec } } };

const workload = (kind: string, name: string) => one(kind, name) as Workload;
const web = () => workload('Deployment', 'valhalla-web');
const worker = () => workload('Deployment', 'valhalla-worker');
const migrate = () => workload('Job', 'valhalla-migrate');
const envOf = (c: Container, name: string) => c.env?.find((e) => e.name === name)?.value;
const config = () => (one('ConfigMap', 'valhalla-config') as Doc & { data: Record<string, string> }).data;
/** The setting as the container sees it: its own env first, then the ConfigMap. */
const setting = (c: Container, name: string) => envOf(c, name) ?? config()[name];

const MEMORY_UNITS: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, K: 1e3, M: 1e6, G: 1e9, '': 1 };
function bytes(quantity: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|K|M|G|)$/.exec(quantity);
  if (!m) throw new Error(`not a memory quantity: ${quantity}`);
  return Number(m[1]) * MEMORY_UNITS[m[2]!]!;
}
const matches = (selector: Record<string, string>, labels: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels[k] === v);

describe('deploy/k8s manifests', () => {
  it('are valid Kubernetes objects (schemas bundled in kubernetes-models)', () => {
    expect(docs.length).toBeGreaterThanOrEqual(9);
    for (const d of docs) {
      const Model = MODELS[`${d.apiVersion}/${d.kind}`];
      expect(Model, `${d.file}: ${d.apiVersion} ${d.kind}`).toBeDefined();
      const { file: _file, ...data } = d;
      expect(() => new Model!(data as never).validate(), `${d.file}: ${d.kind}/${d.metadata.name}`).not.toThrow();
    }
  });

  it('and the schema check can fail: a probe port as text that is not a port name, a replica count as text', () => {
    const bad = structuredClone(web()) as Workload & { file?: string };
    delete bad.file;
    (bad.spec as unknown as { replicas: unknown }).replicas = 'three';
    expect(() => new Deployment(bad as never).validate()).toThrow(/replicas/);
  });

  it('are all listed in kustomization.yaml (the Secret example excepted), with the image tag pinned to this version', () => {
    const k = parse(readFileSync(path.join(dir, 'kustomization.yaml'), 'utf8')) as { resources: string[]; images: Array<{ name: string; newTag: string }> };
    expect([...k.resources].sort()).toEqual(manifestFiles.filter((f) => f !== 'secret.example.yaml').sort());
    expect(k.images).toEqual([{ name: 'valhalla-kernel', newTag: version }]);
    for (const w of [web(), worker(), migrate()]) {
      for (const c of w.spec.template.spec.containers) expect(c.image, w.metadata.name).toBe(`valhalla-kernel:${version}`);
    }
  });

  it('run the entry points the image has (Dockerfile), from compiled sources that exist', () => {
    const dockerfile = readFileSync(path.join(projectRoot, 'Dockerfile'), 'utf8');
    const entries = { 'valhalla-web': 'dist/src/server.js', 'valhalla-worker': 'dist/src/worker.js', 'valhalla-migrate': 'dist/db/migrate-cli.js' };
    for (const w of [web(), worker(), migrate()]) {
      const entry = entries[w.metadata.name as keyof typeof entries];
      expect(w.spec.template.spec.containers[0]!.command, w.metadata.name).toEqual(['node', entry]);
      expect(dockerfile, entry).toContain(entry);
      expect(existsSync(path.join(projectRoot, entry.replace(/^dist\//, '').replace(/\.js$/, '.ts'))), entry).toBe(true);
    }
  });

  it('web: no background jobs, probes on /live and /ready, a preStop and shutdown that fit in the grace period', () => {
    const spec = web().spec.template.spec;
    const c = spec.containers[0]!;
    expect(envOf(c, 'RUN_JOBS')).toBe('false');
    expect(c.ports).toContainEqual({ name: 'http', containerPort: 3000 });
    expect(c.livenessProbe?.httpGet).toEqual({ path: '/live', port: 'http' });
    expect(c.startupProbe?.httpGet).toEqual({ path: '/live', port: 'http' });
    expect(c.readinessProbe?.httpGet).toEqual({ path: '/ready', port: 'http' });
    // /ready answers within READY_DB_TIMEOUT_MS; the probe must wait longer than that.
    expect(c.readinessProbe!.timeoutSeconds! * 1000).toBeGreaterThan(Number(setting(c, 'READY_DB_TIMEOUT_MS')));

    const preStop = c.lifecycle?.preStop?.exec?.command ?? [];
    expect(preStop[0]).toBe('sleep');
    const preStopSeconds = Number(preStop[1]);
    const delayMs = Number(setting(c, 'SHUTDOWN_DELAY_MS'));
    const timeoutMs = Number(setting(c, 'SHUTDOWN_TIMEOUT_MS'));
    expect(preStopSeconds).toBeGreaterThan(0);
    expect(delayMs).toBeGreaterThan(0);
    expect(delayMs).toBeLessThan(timeoutMs);
    // Kubernetes counts the grace period from the start of preStop; SIGTERM comes after it.
    expect(preStopSeconds + timeoutMs / 1000).toBeLessThan(spec.terminationGracePeriodSeconds!);
  });

  it('worker: the worker entry with its probes on WORKER_PORT, shutdown within the grace period', () => {
    const spec = worker().spec.template.spec;
    const c = spec.containers[0]!;
    const port = Number(setting(c, 'WORKER_PORT'));
    expect(c.ports).toContainEqual({ name: 'probes', containerPort: port });
    expect(c.livenessProbe?.httpGet).toEqual({ path: '/live', port: 'probes' });
    expect(c.readinessProbe?.httpGet).toEqual({ path: '/ready', port: 'probes' });
    expect(envOf(c, 'RUN_JOBS')).not.toBe('false');
    expect(Number(setting(c, 'SHUTDOWN_TIMEOUT_MS')) / 1000).toBeLessThan(spec.terminationGracePeriodSeconds!);
  });

  it('migration Job: runs once per attempt, bounded in time', () => {
    const job = migrate() as Workload & { spec: { backoffLimit?: number; activeDeadlineSeconds?: number } };
    expect(['Never', 'OnFailure']).toContain(job.spec.template.spec.restartPolicy);
    expect(job.spec.activeDeadlineSeconds).toBeGreaterThan(0);
    expect(job.spec.backoffLimit).toBeGreaterThanOrEqual(1);
  });

  it('every pod: non-root, read-only root filesystem, no privilege escalation, memory requested and limited', () => {
    for (const w of [web(), worker(), migrate()]) {
      const spec = w.spec.template.spec;
      expect(spec.securityContext?.runAsNonRoot, w.metadata.name).toBe(true);
      expect(spec.securityContext?.runAsUser, w.metadata.name).toBeGreaterThan(0);
      for (const c of spec.containers) {
        expect(c.securityContext, w.metadata.name).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
        const requested = bytes(c.resources?.requests?.memory ?? 'none');
        const limit = bytes(c.resources?.limits?.memory ?? 'none');
        expect(limit, w.metadata.name).toBeGreaterThanOrEqual(requested);
        expect(c.resources?.requests?.cpu, w.metadata.name).toBeTruthy();
        // Secrets and settings come from the named Secret and ConfigMap.
        expect(c.envFrom).toEqual([{ configMapRef: { name: 'valhalla-config' } }, { secretRef: { name: 'valhalla-secrets' } }]);
        // Every mount has its volume; a claimed volume exists.
        for (const m of c.volumeMounts ?? []) {
          const volume = spec.volumes?.find((v) => v.name === m.name);
          expect(volume, `${w.metadata.name}: ${m.name}`).toBeDefined();
          if (volume?.persistentVolumeClaim) one('PersistentVolumeClaim', volume.persistentVolumeClaim.claimName);
        }
      }
    }
    // The long-running pods hold the README's figures: ~170-205 MiB steady, 286-324 MiB peak.
    for (const w of [web(), worker()]) {
      const c = w.spec.template.spec.containers[0]!;
      expect(bytes(c.resources!.requests!.memory!), w.metadata.name).toBeGreaterThanOrEqual(256 * 2 ** 20);
      expect(bytes(c.resources!.limits!.memory!), w.metadata.name).toBeGreaterThanOrEqual(768 * 2 ** 20);
    }
  });

  it('export files go to one shared volume, mounted where EXPORT_DIR points, on web and worker alike', () => {
    const claim = one('PersistentVolumeClaim', 'valhalla-exports') as Doc & { spec: { accessModes: string[] } };
    expect(claim.spec.accessModes).toEqual(['ReadWriteMany']);
    for (const w of [web(), worker()]) {
      const c = w.spec.template.spec.containers[0]!;
      const mount = c.volumeMounts?.find((m) => w.spec.template.spec.volumes?.find((v) => v.name === m.name)?.persistentVolumeClaim?.claimName === 'valhalla-exports');
      expect(mount?.mountPath, w.metadata.name).toBe(setting(c, 'EXPORT_DIR'));
    }
  });

  it('keep secrets out of the ConfigMap and name them in the Secret example', () => {
    for (const key of Object.keys(config())) expect(key).not.toMatch(/DATABASE_URL|REDIS_URL|TOKEN|API_KEY|SECRET|PASSWORD/);
    const example = typed<Doc & { stringData: Record<string, string> }>(docs.find((d) => d.file === 'secret.example.yaml'));
    expect(example.metadata.name).toBe('valhalla-secrets');
    expect(Object.keys(example.stringData)).toContain('DATABASE_URL');
  });

  it('Services, the PDB and the Deployments select the same pods, on ports the containers name', () => {
    for (const w of [web(), worker()]) expect(matches(w.spec.selector!.matchLabels, w.spec.template.metadata.labels), w.metadata.name).toBe(true);
    type ServiceDoc = Doc & { spec: { selector: Record<string, string>; clusterIP?: string; publishNotReadyAddresses?: boolean; ports: Array<{ targetPort: string }> } };
    const services = applied.filter((d) => d.kind === 'Service').map((d) => typed<ServiceDoc>(d));
    expect(services.map((s) => s.metadata.name).sort()).toEqual(['valhalla', 'valhalla-web-pods', 'valhalla-worker']);
    for (const s of services) {
      const targets = [web(), worker()].filter((w) => matches(s.spec.selector, w.spec.template.metadata.labels));
      expect(targets, s.metadata.name).toHaveLength(1);
      const names = targets[0]!.spec.template.spec.containers.flatMap((c) => (c.ports ?? []).map((p) => p.name));
      for (const p of s.spec.ports) expect(names, s.metadata.name).toContain(p.targetPort);
      // The headless Services are for Prometheus: not-ready pods must stay scrapable.
      if (s.spec.clusterIP === 'None') expect(s.spec.publishNotReadyAddresses, s.metadata.name).toBe(true);
    }
    const pdb = one('PodDisruptionBudget', 'valhalla-web') as Doc & { spec: { selector: { matchLabels: Record<string, string> }; maxUnavailable?: number } };
    expect(pdb.spec.selector.matchLabels).toEqual(web().spec.selector!.matchLabels);
    expect(matches(pdb.spec.selector.matchLabels, worker().spec.template.metadata.labels)).toBe(false);
    expect(pdb.spec.maxUnavailable).toBeLessThan((web().spec as unknown as { replicas: number }).replicas);
  });
});
