// readparquet.mjs: an independent reader for the tests' Parquet outputs.
//   node readparquet.mjs FILE.parquet COL1,COL2,...
// prints JSON: the rows (every value cast to VARCHAR by DuckDB, null for
// null) in the given column order, the column types DuckDB sees, and the
// row groups and compression codecs of the file's metadata.
import { DuckDBInstance } from '@duckdb/node-api';

const [file, cols] = process.argv.slice(2);
const lit = (s) => `'${s.replaceAll("'", "''")}'`;
const ident = (s) => `"${s.replaceAll('"', '""')}"`;
const db = await DuckDBInstance.create(':memory:');
const c = await db.connect();
const names = cols.split(',');
const select = names.map((n) => `CAST(${ident(n)} AS VARCHAR)`).join(', ');
const rows = (await c.runAndReadAll(`SELECT ${select} FROM read_parquet(${lit(file)})`)).getRows();
const types = (await c.runAndReadAll(`SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet(${lit(file)}))`)).getRows();
const meta = (await c.runAndReadAll(`SELECT count(DISTINCT row_group_id), list(DISTINCT compression) FROM parquet_metadata(${lit(file)})`)).getRows();
process.stdout.write(JSON.stringify({
  rows,
  types: Object.fromEntries(types),
  rowGroups: Number(meta[0][0]),
  compression: meta[0][1].items ?? meta[0][1],
}));
