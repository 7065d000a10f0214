/**
 * The path a request is matched against (blocklist path rules, honeypot decoys): without the query; percent-decoded (repeatedly, up to
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
