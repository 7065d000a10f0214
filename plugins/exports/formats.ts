/**
 * Row encoders. CSV per RFC 4180 (https://www.rfc-editor.org/rfc/rfc4180): CRLF line ends, a
 * field with a comma, quote, CR or LF quoted, quotes doubled. Text cells starting with `=`, `+`,
 * `-`, `@`, tab or CR get a leading `'` so a spreadsheet shows them instead of evaluating them
 * (OWASP "CSV injection").
 */
export type Row = Record<string, unknown>;

/** A database value as JSON: timestamps ISO 8601, big integers as numbers when exact, else strings. */
export function plain(value: unknown): unknown {
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
  return value;
}

const replacer = (_key: string, value: unknown): unknown => plain(value);

/** One row as a JSON line. Dates serialise themselves (ISO 8601); the replacer, slower, only runs for a row holding a BigInt. */
export function ndjsonLine(row: Row): string {
  try {
    return `${JSON.stringify(row)}\n`;
  } catch {
    return `${JSON.stringify(row, replacer)}\n`;
  }
}

const FORMULA = /^[=+\-@\t\r]/;
const NEEDS_QUOTES = /[",\r\n]/;

export function csvCell(value: unknown): string {
  const v = plain(value);
  if (v === null || v === undefined) return '';
  let text: string;
  if (typeof v === 'string') text = FORMULA.test(v) ? `'${v}` : v;
  else if (typeof v === 'object') text = JSON.stringify(v);
  else text = String(v);
  return NEEDS_QUOTES.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export const csvLine = (cells: readonly unknown[]): string => `${cells.map(csvCell).join(',')}\r\n`;
