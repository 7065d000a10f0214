// `npm run pack:new -- <name> [--code XY]`: copies plugins/_template to plugins/<name>, renames
// its identifiers after the new pack, and adds the pack to the one list in plugins/index.ts.
// The pack's resource is named after the pack: `widgets` gives the table `widgets`, the routes
// `/system/widgets`, the type `Widget` and the decoration `app.widgets`.
import { cpSync, existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PLUGINS = path.join(ROOT, 'plugins');
const TEMPLATE_DIR = path.join(PLUGINS, '_template');
const PACK_LIST = path.join(PLUGINS, 'index.ts');

const USAGE = 'usage: npm run pack:new -- <name> [--code XY]   (name: kebab-case, e.g. feature-flags)';

class UsageError extends Error {}

/** The spellings of one kebab-case name. */
interface Spellings {
  kebab: string;
  snake: string;
  camel: string;
  pascal: string;
  words: string;
  capitalWords: string;
}

function spell(kebab: string): Spellings {
  const parts = kebab.split('-');
  const cap = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);
  return {
    kebab,
    snake: parts.join('_'),
    camel: parts[0]! + parts.slice(1).map(cap).join(''),
    pascal: parts.map(cap).join(''),
    words: parts.join(' '),
    capitalWords: cap(parts.join(' ')),
  };
}

/** English plural to singular for the usual endings; undefined when the name does not look plural. */
function singularOf(kebab: string): string | undefined {
  const rules: Array<[RegExp, string]> = [
    [/([^aeiou])ies$/, '$1y'],
    [/(ss|x|z|ch|sh)es$/, '$1'],
    [/([^s])s$/, '$1'],
  ];
  for (const [pattern, replacement] of rules) {
    if (pattern.test(kebab)) return kebab.replace(pattern, replacement);
  }
  return undefined;
}

interface Plan {
  name: string;
  code: string | undefined;
  /** The resource the pack manages: plural and singular kebab-case. */
  plural: string;
  singular: string;
  /** Identifier of the pack in plugins/index.ts. */
  listIdentifier: string;
}

function parseArgs(argv: string[]): { name: string; code: string | undefined } {
  const positional: string[] = [];
  let code: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--code') {
      code = argv[++i];
      if (code === undefined) throw new UsageError('--code needs a value, e.g. --code AB');
    } else if (arg.startsWith('--code=')) {
      code = arg.slice('--code='.length);
    } else if (arg === '--help' || arg === '-h') {
      throw new UsageError(USAGE);
    } else if (arg.startsWith('-')) {
      throw new UsageError(`unknown option ${arg}\n${USAGE}`);
    } else {
      positional.push(arg);
    }
  }
  if (positional.length !== 1) throw new UsageError(USAGE);
  return { name: positional[0]!, code };
}

function plan(name: string, code: string | undefined): Plan {
  if (!/^[a-z][a-z0-9]*(-[a-z0-9]+)*$/.test(name) || name.length > 40) {
    throw new UsageError(`pack name '${name}' must be kebab-case (lowercase letters and digits, words joined by '-', starting with a letter, at most 40 characters)`);
  }
  if (name === 'template' || name === 'index') throw new UsageError(`'${name}' is reserved; pick the name of what the pack does`);
  if (existsSync(path.join(PLUGINS, name))) throw new UsageError(`plugins/${name} already exists`);
  if (code !== undefined && !/^[A-Z]{2}$/.test(code)) throw new UsageError(`--code '${code}' must be two capital letters, e.g. AB`);

  const packDirs = readdirSync(PLUGINS, { withFileTypes: true }).filter((d) => d.isDirectory() && d.name !== '_template');
  if (code !== undefined) {
    for (const dir of packDirs) {
      const index = path.join(PLUGINS, dir.name, 'index.ts');
      if (existsSync(index) && new RegExp(`code:\\s*'${code}'`).test(readFileSync(index, 'utf8'))) {
        throw new UsageError(`code '${code}' is already used by plugins/${dir.name}`);
      }
    }
  }

  const singular = singularOf(name);
  const plural = singular ? name : `${name}-items`;
  const resourceSingular = singular ?? `${name}-item`;

  const table = spell(plural).snake;
  const tableFiles = [...packDirs.map((d) => path.join(PLUGINS, d.name, 'table.ts')), ...findTableFiles(path.join(ROOT, 'src'))];
  for (const file of tableFiles) {
    if (existsSync(file) && readFileSync(file, 'utf8').includes(`pgTable('${table}'`)) {
      throw new UsageError(`table '${table}' already exists in ${path.relative(ROOT, file)}`);
    }
  }

  const list = readFileSync(PACK_LIST, 'utf8');
  let listIdentifier = spell(name).camel;
  if (new RegExp(`\\b${listIdentifier}\\b`).test(list)) listIdentifier = `${listIdentifier}Pack`;
  if (new RegExp(`\\b${listIdentifier}\\b`).test(list)) throw new UsageError(`plugins/index.ts already uses the identifier ${listIdentifier}`);

  return { name, code, plural, singular: resourceSingular, listIdentifier };
}

function findTableFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...findTableFiles(full));
    else if (entry.name === 'table.ts') out.push(full);
  }
  return out;
}

/**
 * The template's spellings and what each becomes, most specific first: the resource
 * ("template item(s)") before the pack ("template").
 */
function replacements(p: Plan): Array<[RegExp, string]> {
  const many = spell(p.plural);
  const one = spell(p.singular);
  const pack = spell(p.name);
  const out: Array<[RegExp, string]> = [
    [/TemplateItems/g, many.pascal],
    [/TemplateItem/g, one.pascal],
    [/templateItems/g, many.camel],
    [/templateItem/g, one.camel],
    [/template_items/g, many.snake],
    [/template_item/g, one.snake],
    [/template-items/g, many.kebab],
    [/template-item/g, one.kebab],
    [/Template items/g, many.capitalWords],
    [/Template item/g, one.capitalWords],
    [/template items/g, many.words],
    [/template item/g, one.words],
    // The pack itself: inside identifiers (`templatePack`) camelCase, elsewhere its name.
    [/template(?=[A-Z])/g, pack.camel],
    [/Template/g, pack.pascal],
    [/template/g, pack.kebab],
  ];
  if (p.code) out.push([/\bXX\b/g, p.code]);
  return out;
}

function renameSource(source: string, p: Plan): string {
  let out = source;
  for (const [pattern, replacement] of replacements(p)) out = out.replace(pattern, replacement);
  return out;
}

/** Adds one import and one array entry to plugins/index.ts. */
function addToPackList(list: string, p: Plan): string {
  const lines = list.split('\n');
  const importLine = `import ${p.listIdentifier} from './${p.name}/index.js';`;
  let lastPackImport = -1;
  lines.forEach((line, i) => {
    if (/^import \w+ from '\.\/[^']+\/index\.js';$/.test(line)) lastPackImport = i;
  });
  if (lastPackImport === -1) throw new Error("plugins/index.ts: no `import x from './<pack>/index.js';` line found");
  lines.splice(lastPackImport + 1, 0, importLine);
  const withImport = lines.join('\n');

  const array = /(export const allPacks\b[^=]*=\s*\[)([\s\S]*?)(\];)/;
  const m = array.exec(withImport);
  if (!m) throw new Error('plugins/index.ts: `export const allPacks ... = [...];` not found');
  const inner = m[2]!;
  let newInner: string;
  if (inner.includes('\n')) {
    const body = inner.replace(/\s*$/, '');
    const indent = /\n([ \t]*)\S/.exec(inner)?.[1] ?? '  ';
    newInner = `${body}${body.trim() === '' || body.endsWith(',') ? '' : ','}\n${indent}${p.listIdentifier},\n`;
  } else {
    newInner = inner.trim() ? `${inner.trimEnd()}, ${p.listIdentifier}` : p.listIdentifier;
  }
  return withImport.replace(array, `$1${newInner}$3`);
}

function main(): void {
  const { name, code } = parseArgs(process.argv.slice(2));
  const p = plan(name, code);
  const target = path.join(PLUGINS, name);
  const staging = path.join(PLUGINS, `.${name}.pack-new`);
  const listBefore = readFileSync(PACK_LIST, 'utf8');
  const listAfter = addToPackList(listBefore, p);

  rmSync(staging, { recursive: true, force: true });
  cpSync(TEMPLATE_DIR, staging, { recursive: true });
  try {
    for (const entry of readdirSync(staging)) {
      const from = path.join(staging, entry);
      const renamed = renameSource(readFileSync(from, 'utf8'), p);
      // A leftover spelling means a rename rule is missing (unless the new name itself says "template").
      const leftover = /template/i.test(name) ? null : /template/i.exec(renamed);
      if (leftover) throw new Error(`${entry}: '${leftover[0]}' left after renaming (a bug in scripts/pack-new.ts)`);
      writeFileSync(from, renamed);
      const newEntry = entry.replace(/^template\./, `${name}.`);
      if (newEntry !== entry) renameSync(from, path.join(staging, newEntry));
    }
    renameSync(staging, target);
  } catch (err) {
    rmSync(staging, { recursive: true, force: true });
    throw err;
  }
  writeFileSync(PACK_LIST, listAfter);

  const many = spell(p.plural);
  const one = spell(p.singular);
  console.log(`Created plugins/${name}/ (pack '${name}', code '${code ?? 'XX'}') and added it to plugins/index.ts.
  table ${many.snake}, routes /system/${many.kebab}, type ${one.pascal}, service app.${many.camel}

Next steps:
  1. Shape plugins/${name}/table.ts to what the pack stores (columns, indexes, unique names) first:
     the migration should create the table as it will be, not the template's copy.
  2. npm run db:generate -- --name ${spell(name).snake}
     writes the migration that creates the ${many.snake} table; review it, commit drizzle/ with the pack
     (to redo it before committing, see "Tables and migrations" in docs/packs.md)
  3. Shape schemas.ts, service.ts, routes.ts and the pack's scopes (index.ts), then its test.${
    code ? '' : `\n     Set the pack's two-letter code in plugins/${name}/index.ts (still 'XX'), or pass --code next time.`
  }
     Move the pack in plugins/index.ts if it must load before another pack. See docs/packs.md.
  4. npm test, or only this pack: npx vitest run plugins/${name}`);
}

try {
  main();
} catch (err) {
  console.error(`pack:new: ${(err as Error).message}`);
  process.exit(1);
}
