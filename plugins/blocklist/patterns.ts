/**
 * The text patterns of `user_agent` and `path` rules: substrings, prefixes and globs (`*` any
 * run of characters, `?` one character). Globs are matched by the linear-backtracking wildcard
 * algorithm below, never compiled into a regular expression: a client-supplied pattern can
 * neither smuggle regex syntax in nor make a catastrophically backtracking one.
 */

export const isGlob = (value: string): boolean => value.includes('*') || value.includes('?');

/** Whether `text` matches `glob` as a whole; O(text × glob) at worst. */
export function globMatch(glob: string, text: string): boolean {
  let g = 0;
  let t = 0;
  let star = -1;
  let mark = 0;
  while (t < text.length) {
    const gc = glob.charCodeAt(g);
    if (g < glob.length && (gc === 63 /* ? */ || gc === text.charCodeAt(t))) {
      g++;
      t++;
    } else if (g < glob.length && gc === 42 /* * */) {
      star = g++;
      mark = t;
    } else if (star !== -1) {
      g = star + 1;
      t = ++mark;
    } else return false;
  }
  while (g < glob.length && glob.charCodeAt(g) === 42) g++;
  return g === glob.length;
}

/** The longest literal run of a glob: a request can only match if it contains it. */
export function globLiteral(glob: string): string {
  let best = '';
  for (const part of glob.split(/[*?]/)) if (part.length > best.length) best = part;
  return best;
}

/**
 * Aho-Corasick: every pattern found in a text in one pass, whatever the number of patterns, so
 * ten thousand user-agent substrings cost what one does.
 */
export class SubstringIndex<T> {
  private readonly next: Array<Map<number, number>> = [new Map()];
  private fail: number[] = [0];
  private readonly out: Array<T[] | null> = [null];
  private built = false;
  size = 0;

  add(pattern: string, item: T): void {
    let node = 0;
    for (let i = 0; i < pattern.length; i++) {
      const c = pattern.charCodeAt(i);
      let child = this.next[node]!.get(c);
      if (child === undefined) {
        child = this.next.length;
        this.next.push(new Map());
        this.out.push(null);
        this.next[node]!.set(c, child);
      }
      node = child;
    }
    (this.out[node] ??= []).push(item);
    this.size++;
    this.built = false;
  }

  /** Failure links, breadth first; each node's outputs include those of its failure node. */
  build(): void {
    this.fail = new Array<number>(this.next.length).fill(0);
    const queue: number[] = [];
    for (const child of this.next[0]!.values()) queue.push(child);
    for (let q = 0; q < queue.length; q++) {
      const node = queue[q]!;
      for (const [c, child] of this.next[node]!) {
        queue.push(child);
        let f = this.fail[node]!;
        while (f !== 0 && !this.next[f]!.has(c)) f = this.fail[f]!;
        const target = this.next[f]!.get(c);
        this.fail[child] = target !== undefined && target !== child ? target : 0;
        const inherited = this.out[this.fail[child]!];
        if (inherited) this.out[child] = this.out[child] ? [...this.out[child]!, ...inherited] : inherited;
      }
    }
    this.built = true;
  }

  /** Calls `visit` for each pattern occurrence in `text`. */
  scan(text: string, visit: (item: T) => void): void {
    if (this.size === 0) return;
    if (!this.built) this.build();
    let node = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      let child = this.next[node]!.get(c);
      while (child === undefined && node !== 0) {
        node = this.fail[node]!;
        child = this.next[node]!.get(c);
      }
      node = child ?? 0;
      const found = this.out[node];
      if (found) for (let k = 0; k < found.length; k++) visit(found[k]!);
    }
  }
}

/** Prefixes as a character trie: the prefixes of a path are found in one walk along it. */
export class PrefixIndex<T> {
  private readonly root: PrefixNode<T> = { children: new Map(), items: null };
  size = 0;

  add(prefix: string, item: T): void {
    let node = this.root;
    for (let i = 0; i < prefix.length; i++) {
      const c = prefix.charCodeAt(i);
      let child = node.children.get(c);
      if (!child) {
        child = { children: new Map(), items: null };
        node.children.set(c, child);
      }
      node = child;
    }
    (node.items ??= []).push(item);
    this.size++;
  }

  scan(text: string, visit: (item: T) => void): void {
    if (this.size === 0) return;
    let node: PrefixNode<T> | undefined = this.root;
    for (let i = 0; node; i++) {
      if (node.items) for (let k = 0; k < node.items.length; k++) visit(node.items[k]!);
      if (i >= text.length) break;
      node = node.children.get(text.charCodeAt(i));
    }
  }
}

interface PrefixNode<T> {
  children: Map<number, PrefixNode<T>>;
  items: T[] | null;
}

/**
 * The path a rule is matched against: without the query; percent-decoded (repeatedly, up to
 * three times, so `%252e` cannot hide a dot); backslashes as slashes; `//` collapsed; `.` and
 * `..` segments resolved. Case is kept: the router is case-sensitive. So `/a/%2E%2E/admin`,
 * `//admin` and `/x/../admin` all meet a rule on `/admin`.
 */
export function normalisePath(url: string): string {
  if (isPlainPath(url)) return url;
  const q = url.indexOf('?');
  let path = q === -1 ? url : url.slice(0, q);
  const hash = path.indexOf('#');
  if (hash !== -1) path = path.slice(0, hash);
  for (let round = 0; round < 3 && path.includes('%'); round++) {
    let decoded: string;
    try {
      decoded = decodeURIComponent(path);
    } catch {
      break; // not valid percent-encoding: matched as it stands (the router refuses it anyway)
    }
    if (decoded === path) break;
    path = decoded;
  }
  if (path.includes('\\')) path = path.replaceAll('\\', '/');
  if (path.charCodeAt(0) !== 47) path = `/${path}`;
  if (!path.includes('//') && !path.includes('/.')) return path;
  const out: string[] = [];
  const segments = path.split('/');
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i]!;
    if (s === '.' || (s === '' && i < segments.length - 1)) continue;
    if (s === '..') out.pop();
    else out.push(s);
  }
  // A trailing `.` or `..` leaves a directory path: keep its trailing slash.
  const last = segments[segments.length - 1];
  const trailing = (last === '.' || last === '..') && out.length > 0 ? '/' : '';
  return `/${out.join('/')}${trailing}`;
}

/** One pass: a path with nothing to decode, resolve or cut (most requests) is used as it is. */
function isPlainPath(url: string): boolean {
  if (url.charCodeAt(0) !== 47) return false;
  for (let i = 0; i < url.length; i++) {
    const c = url.charCodeAt(i);
    // % \ ? #
    if (c === 37 || c === 92 || c === 63 || c === 35) return false;
    if (c === 47) {
      const next = url.charCodeAt(i + 1);
      if (next === 47 || next === 46) return false;
    }
  }
  return true;
}
