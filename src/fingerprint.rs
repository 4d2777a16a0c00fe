//! Per-table row count and md5 of the rows' text in primary-key order, computed by the server,
//! and one overall digest (DESIGN.md §5).

use postgres::Client;
use serde::Serialize;

use crate::db::{Database, describe_sql_error, quote_ident};
use crate::error::{Error, Result};
use crate::migrate::HISTORY_TABLE;

#[derive(Debug, Clone, Serialize)]
pub struct TableDigest {
    pub table: String,
    pub rows: i64,
    pub md5: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Fingerprint {
    pub schema: String,
    pub tables: Vec<TableDigest>,
    /// md5 of one `table rows md5` line per table, in table-name order.
    pub overall: String,
    /// Set when the lock was held while the digest was taken (see `status::in_progress`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_progress: Option<String>,
}

impl Fingerprint {
    pub fn render(&self) -> String {
        let mut out = String::new();
        for t in &self.tables {
            out.push_str(&format!("{:<28} {:>10} {}\n", t.table, t.rows, t.md5));
        }
        out.push_str(&format!("{:<28} {:>10} {}\n", "overall", "", self.overall));
        if let Some(note) = &self.in_progress {
            out.push_str(&format!("in progress: {note}\n"));
        }
        out
    }
}

/// Base tables of the schema (without the migration history) with their ORDER BY: the primary
/// key's columns, or the whole row where there is none.
fn tables(
    client: &mut Client,
    schema: &str,
) -> Result<Vec<(String, String, i64)>, postgres::Error> {
    let rows = client.query(
        "SELECT c.relname::text, c.relpages::bigint,
                (SELECT string_agg(format('t.%I', a.attname), ', ' ORDER BY k.ord)
                   FROM pg_index i
                   CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                  WHERE i.indrelid = c.oid AND i.indisprimary)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
            AND c.relname <> $2
          ORDER BY c.relname",
        &[&schema, &HISTORY_TABLE],
    )?;
    Ok(rows
        .iter()
        .map(|r| {
            let order: Option<String> = r.get(2);
            (
                r.get(0),
                order.unwrap_or_else(|| "t::text".to_string()),
                r.get(1),
            )
        })
        .collect())
}

fn digest_table(
    client: &mut Client,
    schema: &str,
    table: &str,
    order: &str,
) -> Result<TableDigest> {
    let row = client
        .query_one(
            &format!(
                "SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY {order}), '')) \
                 FROM {}.{} AS t",
                quote_ident(schema),
                quote_ident(table)
            ),
            &[],
        )
        .map_err(read_failed)?;
    Ok(TableDigest {
        table: table.to_string(),
        rows: row.get(0),
        md5: row.get(1),
    })
}

fn combine(
    client: &mut Client,
    schema: &str,
    mut digests: Vec<TableDigest>,
) -> Result<Fingerprint> {
    digests.sort_by(|a, b| a.table.cmp(&b.table));
    let lines: String = digests
        .iter()
        .map(|d| format!("{} {} {}\n", d.table, d.rows, d.md5))
        .collect();
    let overall: String = client
        .query_one("SELECT md5($1)", &[&lines])
        .map_err(read_failed)?
        .get(0);
    Ok(Fingerprint {
        schema: schema.to_string(),
        tables: digests,
        overall,
        in_progress: None,
    })
}

/// Digests the tables in parallel over `workers` work connections, largest first.
pub fn compute(db: &Database, schema: &str, workers: usize) -> Result<Fingerprint> {
    let mut tables = tables(&mut *db.work()?, schema).map_err(read_failed)?;
    tables.sort_by_key(|t| std::cmp::Reverse(t.2));
    let digests = db.parallel(&tables, workers, |client, (table, order, _)| {
        digest_table(client, schema, table, order)
    })?;
    combine(&mut *db.work()?, schema, digests)
}

/// Digests the tables on one connection: inside the unit's transaction, where only that
/// connection sees the new rows.
pub fn compute_in(client: &mut Client, schema: &str) -> Result<Fingerprint> {
    let tables = tables(client, schema).map_err(read_failed)?;
    let digests = tables
        .iter()
        .map(|(table, order, _)| digest_table(client, schema, table, order))
        .collect::<Result<Vec<_>>>()?;
    combine(client, schema, digests)
}

fn read_failed(e: postgres::Error) -> Error {
    Error::Work(format!(
        "computing the fingerprint failed: {}",
        describe_sql_error(&e, None)
    ))
}
