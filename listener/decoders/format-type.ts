// A column's type name as SQL `format_type(atttypid, atttypmod)` prints it, from the OID and typmod a pgoutput
// Relation message carries: the same text the catalog query (listener/catalog.ts) and wal2json's
// `include-typmod` give, so a table's columns read "numeric(10,2)" whichever path described them.
// Rules transcribed from PostgreSQL's src/backend/utils/adt/format_type.c (format_type_extended with
// FORMAT_TYPE_TYPEMOD_GIVEN) and the built-in typmodout functions (numeric, varchar, bpchar, bit, varbit,
// time, timetz, timestamp, timestamptz, interval). Other types with a typmod (extension types such as
// PostGIS geometry) have their own typmodout function: their names come from the catalog's `typmodNames`.

import { Catalog } from '../catalog';

const VARHDRSZ = 4;
const OID = {
  bit: 1560,
  varbit: 1562,
  bpchar: 1042,
  varchar: 1043,
  numeric: 1700,
  time: 1083,
  timetz: 1266,
  timestamp: 1114,
  timestamptz: 1184,
  interval: 1186,
} as const;

// src/include/utils/datetime.h: the field bits an interval typmod carries (INTERVAL_MASK(b) = 1 << b).
const MONTH = 1 << 1;
const YEAR = 1 << 2;
const DAY = 1 << 3;
const HOUR = 1 << 10;
const MINUTE = 1 << 11;
const SECOND = 1 << 12;
const INTERVAL_FULL_RANGE = 0x7fff;
const INTERVAL_FULL_PRECISION = 0xffff;
const INTERVAL_FIELDS = new Map<number, string>([
  [YEAR, ' year'],
  [MONTH, ' month'],
  [DAY, ' day'],
  [HOUR, ' hour'],
  [MINUTE, ' minute'],
  [SECOND, ' second'],
  [YEAR | MONTH, ' year to month'],
  [DAY | HOUR, ' day to hour'],
  [DAY | HOUR | MINUTE, ' day to minute'],
  [DAY | HOUR | MINUTE | SECOND, ' day to second'],
  [HOUR | MINUTE, ' hour to minute'],
  [HOUR | MINUTE | SECOND, ' hour to second'],
  [MINUTE | SECOND, ' minute to second'],
  [INTERVAL_FULL_RANGE, ''],
]);

function intervalTypmod(typmod: number): string | undefined {
  const fields = INTERVAL_FIELDS.get((typmod >> 16) & 0x7fff);
  if (fields === undefined) return undefined;
  const precision = typmod & 0xffff;
  return precision === INTERVAL_FULL_PRECISION ? fields : `${fields}(${precision})`;
}

/** The element type's name with its typmod, for the built-in types whose typmod format_type knows. */
function builtinWithTypmod(oid: number, typmod: number): string | undefined {
  switch (oid) {
    case OID.bit:
      return `bit(${typmod})`;
    case OID.varbit:
      return `bit varying(${typmod})`;
    case OID.bpchar:
      return `character(${typmod - VARHDRSZ})`;
    case OID.varchar:
      return `character varying(${typmod - VARHDRSZ})`;
    case OID.numeric: {
      const t = typmod - VARHDRSZ;
      // PostgreSQL 15 allows a negative scale: 11 bits, sign-extended (numeric_typmod_scale).
      return `numeric(${(t >> 16) & 0xffff},${((t & 0x7ff) ^ 1024) - 1024})`;
    }
    case OID.time:
      return `time(${typmod}) without time zone`;
    case OID.timetz:
      return `time(${typmod}) with time zone`;
    case OID.timestamp:
      return `timestamp(${typmod}) without time zone`;
    case OID.timestamptz:
      return `timestamp(${typmod}) with time zone`;
    case OID.interval: {
      const s = intervalTypmod(typmod);
      return s === undefined ? undefined : `interval${s}`;
    }
    default:
      return undefined;
  }
}

/** `format_type(oid, typmod)`; typmod -1 means "none", as a Relation message sends it. */
export function formatType(catalog: Catalog, oid: number, typmod: number): string {
  const base = catalog.typeNames.get(oid) ?? `oid:${oid}`;
  const elem = catalog.arrayElements.get(oid);
  const elemOid = elem ?? oid;
  const suffix = elem === undefined ? '' : '[]';
  if (typmod < 0) {
    // With a typmod given as -1, format_type prints bpchar and bit by their internal names: "character"
    // and "bit" would mean character(1) and bit(1).
    if (elemOid === OID.bpchar) return `bpchar${suffix}`;
    if (elemOid === OID.bit) return `"bit"${suffix}`;
    return base;
  }
  const builtin = builtinWithTypmod(elemOid, typmod);
  if (builtin !== undefined) return builtin + suffix;
  return catalog.typmodNames.get(`${oid}/${typmod}`) ?? base;
}
