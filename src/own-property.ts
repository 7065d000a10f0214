/**
 * `record[key]` when `key` is the record's own property, else undefined. A plain object used as
 * a lookup table also answers `constructor`, `toString`, `hasOwnProperty` and `__proto__` from
 * Object.prototype; any key a client (or a remote party) can name goes through this, or through
 * a Map.
 */
export function ownValue<V>(record: Readonly<Record<string, V>>, key: string): V | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}
