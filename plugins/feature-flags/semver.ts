import { SemVer } from 'semver';

/**
 * Strict Semantic Versioning 2.0.0 (https://semver.org/#backusnaur-form-grammar-for-valid-semver-versions):
 * `MAJOR.MINOR.PATCH[-pre.release][+build.meta]`, numbers without leading zeros, nothing around
 * it. The `semver` package accepts more even without `loose`: a leading `v` or `=` and
 * surrounding whitespace (`v2.0.0`, ` 2.0.0 `), which SemVer 2.0.0 does not. So the text is held
 * to the grammar first, then parsed by `semver` for comparison (which also refuses numbers above
 * Number.MAX_SAFE_INTEGER).
 */
const NUMERIC = '(?:0|[1-9][0-9]*)';
const PRERELEASE_ID = `(?:${NUMERIC}|[0-9]*[A-Za-z-][0-9A-Za-z-]*)`;
const BUILD_ID = '[0-9A-Za-z-]+';
const SEMVER_2_0_0 = new RegExp(
  `^${NUMERIC}\\.${NUMERIC}\\.${NUMERIC}(?:-${PRERELEASE_ID}(?:\\.${PRERELEASE_ID})*)?(?:\\+${BUILD_ID}(?:\\.${BUILD_ID})*)?$`,
);
/** The `semver` package's own limit. */
const MAX_LENGTH = 256;

/** The version, or undefined when `text` is not a SemVer 2.0.0 version exactly. */
export function parseSemver(text: string): SemVer | undefined {
  if (text.length > MAX_LENGTH || !SEMVER_2_0_0.test(text)) return undefined;
  try {
    return new SemVer(text);
  } catch {
    return undefined;
  }
}
