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
 * A character trie stored flat: most nodes of a trie of rule patterns have one child, kept in
 * two number arrays; only branching nodes get a Map. Ten thousand patterns make a few thousand
 * Maps rather than one per character (less memory, far less for the garbage collector to trace).
 */
class CharTrie {
  private readonly onlyChar: number[] = [-1];
  private readonly onlyChild: number[] = [-1];
  private readonly branches = new Map<number, Map<number, number>>();

  get nodes(): number {
    return this.onlyChar.length;
  }

  child(node: number, c: number): number {
    if (this.onlyChar[node] === c) return this.onlyChild[node]!;
    return this.branches.get(node)?.get(c) ?? -1;
  }

  /** Every (character, child) of a node. */
  *children(node: number): Generator<[number, number]> {
    if (this.onlyChar[node] !== -1) yield [this.onlyChar[node]!, this.onlyChild[node]!];
    const more = this.branches.get(node);
    if (more) yield* more;
  }

  /** The node for `word`, made as needed. */
  insert(word: string): number {
    let node = 0;
    for (let i = 0; i < word.length; i++) {
      const c = word.charCodeAt(i);
      let next = this.child(node, c);
      if (next === -1) {
        next = this.onlyChar.length;
        this.onlyChar.push(-1);
        this.onlyChild.push(-1);
        if (this.onlyChar[node] === -1) {
          this.onlyChar[node] = c;
          this.onlyChild[node] = next;
        } else {
          let more = this.branches.get(node);
          if (!more) this.branches.set(node, (more = new Map()));
          more.set(c, next);
        }
      }
      node = next;
    }
    return node;
  }
}

/**
 * Appends `item` to the list at `at`. A list starts as `[item]`, not `[]` then push: V8 gives a
 * pushed-to empty array room for 17 items, and most patterns have one rule (~5 MiB for 100,000 rules).
 */
function addAt<T>(lists: Array<T[] | undefined>, at: number, item: T): void {
  const list = lists[at];
  if (list) list.push(item);
  else lists[at] = [item];
}

/**
 * Aho-Corasick: every pattern found in a text in one pass, whatever the number of patterns, so
 * ten thousand user-agent substrings cost what one does.
 */
export class SubstringIndex<T> {
  private readonly trie = new CharTrie();
  private fail = new Int32Array(1);
  private readonly out: Array<T[] | undefined> = [];
  private built = false;
  size = 0;

  add(pattern: string, item: T): void {
    addAt(this.out, this.trie.insert(pattern), item);
    this.size++;
    this.built = false;
  }

  /** Failure links, breadth first; each node's outputs include those of its failure node. */
  build(): void {
    const trie = this.trie;
    this.fail = new Int32Array(trie.nodes);
    const queue: number[] = [];
    for (const [, child] of trie.children(0)) queue.push(child);
    for (let q = 0; q < queue.length; q++) {
      const node = queue[q]!;
      for (const [c, child] of trie.children(node)) {
        queue.push(child);
        let f = this.fail[node]!;
        let target = trie.child(f, c);
        while (target === -1 && f !== 0) {
          f = this.fail[f]!;
          target = trie.child(f, c);
        }
        this.fail[child] = target === -1 || target === child ? 0 : target;
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
    const trie = this.trie;
    let node = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      let next = trie.child(node, c);
      while (next === -1 && node !== 0) {
        node = this.fail[node]!;
        next = trie.child(node, c);
      }
      node = next === -1 ? 0 : next;
      const found = this.out[node];
      if (found) for (let k = 0; k < found.length; k++) visit(found[k]!);
    }
  }
}

/** Prefixes as a character trie: the prefixes of a path are found in one walk along it. */
export class PrefixIndex<T> {
  private readonly trie = new CharTrie();
  private readonly items: Array<T[] | undefined> = [];
  size = 0;

  add(prefix: string, item: T): void {
    addAt(this.items, this.trie.insert(prefix), item);
    this.size++;
  }

  scan(text: string, visit: (item: T) => void): void {
    if (this.size === 0) return;
    let node = 0;
    for (let i = 0; node !== -1; i++) {
      const here = this.items[node];
      if (here) for (let k = 0; k < here.length; k++) visit(here[k]!);
      if (i >= text.length) break;
      node = this.trie.child(node, text.charCodeAt(i));
    }
  }
}

// Shared with the honeypots' decoys; lives in the core (src/request-path.ts).
export { normalisePath } from '../../src/request-path.js';
