// Sluice's default job in DuckDB, for `make bench` (see BENCHMARKS.md).
//
//   node job.mjs load DB.duckdb financials.csv       untimed: the reference into a table
//   node job.mjs run  DB.duckdb orders.csv out.csv   timed by the caller: validate, join, write
//
// Each prints one JSON object on stdout. Every value stays text (all VARCHAR),
// so the output carries the input's bytes, as Sluice's does.
//
// What DuckDB can check here, and how:
// - field count: the reader declares a 9th column, __extra, and pads missing
//   fields with NULL (null_padding). nullstr is set to a byte that never
//   occurs, so that an empty field reads as '' and only a missing one as NULL:
//   a 9-field row has __extra non-NULL, a 7-field row has "Ship Date" NULL.
//   Rows of 10 or more fields are reader errors, skipped by ignore_errors.
//   (Without the extra column DuckDB takes a 9-field row whose last field is
//   empty for a trailing delimiter and accepts it: 1,673 such rows in the
//   1M-row file.)
// - required / maxLength: length() counts code points, as JSON Schema does.
// - pattern: regexp_full_match on the uuid.
// - encoding and malformed quoting: reader errors, skipped by ignore_errors;
//   where the reader resumes after a broken quote need not match Sluice.
// - reference: the inner join.
// What it does not produce: the error report (which row, which rule), the
// manifest, the ledger and the email that Sluice also writes.
//
// Order: the hash join does not keep the probe side's order (rows whose hash
// chains collide come out later, even with one thread and
// preserve_insertion_order), so rows are numbered as read (a streaming
// window) and the output is sorted by that number. The join order optimizer
// is told to build the hash table on the reference: without a sniffed file it
// estimates the CSV at a few dozen rows and would build on the orders instead.
import { DuckDBInstance } from '@duckdb/node-api';

const columns = [
  ['uuid', 9],
  ['Country', 50],
  ['Item Type', 30],
  ['Sales Channel', 10],
  ['Order Priority', 5],
  ['Order Date', 10],
  ['Region', 100],
  ['Ship Date', 10],
];
const appended = ['unitsSold', 'unitPrice', 'unitCost', 'totalRevenue', 'totalCost', 'totalProfit'];

const lit = (s) => `'${s.replaceAll("'", "''")}'`;
const ident = (s) => `"${s.replaceAll('"', '""')}"`;

async function load(dbPath, refPath) {
  const start = performance.now();
  const db = await DuckDBInstance.create(dbPath);
  const c = await db.connect();
  await c.run(`CREATE OR REPLACE TABLE reference AS
    SELECT * FROM read_csv(${lit(refPath)}, all_varchar = true, header = true, delim = ',', quote = '"')`);
  const n = await c.runAndReadAll('SELECT count(*) FROM reference');
  await c.run('CHECKPOINT');
  c.closeSync();
  db.closeSync();
  return { rows: Number(n.getRows()[0][0]), seconds: (performance.now() - start) / 1000 };
}

async function run(dbPath, inPath, outPath, mode = 'ordered') {
  const start = performance.now();
  const ordered = mode === 'ordered';
  const db = await DuckDBInstance.create(dbPath, { access_mode: 'READ_ONLY' });
  const c = await db.connect();
  if (ordered) await c.run(`SET disabled_optimizers = 'join_order,build_side_probe_side'`);

  const declared = [...columns.map(([n]) => n), '__extra'].map((n) => `${lit(n)}: 'VARCHAR'`).join(', ');
  const src = `read_csv(${lit(inPath)}, columns = {${declared}}, header = true, auto_detect = false,
    delim = ',', quote = '"', escape = '"', null_padding = true, nullstr = '\x01', ignore_errors = true)`;
  const checks = [
    'o.__extra IS NULL',
    `o.${ident('Ship Date')} IS NOT NULL`,
    `regexp_full_match(o.uuid, '[0-9]{9}')`,
    ...columns.map(([n, max]) => `length(o.${ident(n)}) BETWEEN 1 AND ${max}`),
  ].join('\n      AND ');
  const select = [...columns.map(([n]) => `o.${ident(n)}`), ...appended.map((n) => `r.${ident(n)}`)].join(', ');
  const query = ordered
    ? `SELECT ${select}
    FROM (SELECT *, row_number() OVER () AS rn FROM ${src}) o
    JOIN reference r ON r.uuid = o.uuid
    WHERE ${checks}
    ORDER BY o.rn`
    : `SELECT ${select}
    FROM ${src} o
    JOIN reference r ON r.uuid = o.uuid
    WHERE ${checks}`;
  const res = await c.runAndReadAll(`COPY (${query}) TO ${lit(outPath)} (FORMAT csv, HEADER true, DELIMITER ',')`);
  c.closeSync();
  db.closeSync();
  return { rowsOut: Number(res.getRows()[0][0]), seconds: (performance.now() - start) / 1000, mode };
}

const [cmd, ...args] = process.argv.slice(2);
let result;
if (cmd === 'load' && args.length === 2) {
  result = await load(...args);
} else if (cmd === 'run' && (args.length === 3 || (args.length === 4 && ['ordered', 'unordered'].includes(args[3])))) {
  result = await run(...args);
} else {
  console.error('usage: node job.mjs load DB REF.csv | run DB IN.csv OUT.csv [ordered|unordered]');
  process.exit(2);
}
const { default: duckdb } = await import('@duckdb/node-api');
console.log(JSON.stringify({ ...result, duckdb: duckdb.version() }));
