//! Emptying the seeded tables before `dbtool seed` loads them, inside the unit's transaction.
//!
//! `TRUNCATE ... RESTART IDENTITY CASCADE` everywhere but on a Citus coordinator, where a
//! truncation costs a round of commands per table and node, and truncates each table again for
//! every table that refers to it (Citus adds CASCADE to each shard's truncation): about twenty
//! times plain PostgreSQL's for the dev data. There, few rows are deleted instead, children
//! first, and the sequences the truncation would restart are restarted; the result is the same
//! rows and sequence positions. Anything that would make a DELETE differ from a truncation (user
//! triggers or rules, partitions, a cycle of foreign keys), or many rows, keeps the truncation.
//!
//! A table distributed by hash (or range) is read and modified over many connections at once;
//! after that, Citus refuses a DML or truncation of a reference table it refers to in the same
//! transaction. In a database with such a table, [`sequential_if_sharded`] puts the seed's
//! transaction in sequential mode (one connection per node) before it reads any table.

use std::collections::{BTreeMap, BTreeSet};

use postgres::Client;

/// Up to this many rows in all the tables together, a Citus coordinator deletes them.
const DELETE_AT_MOST: i64 = 20_000;

/// How the tables were emptied.
#[derive(Debug, PartialEq, Eq)]
pub enum Emptied {
    /// Truncated in this transaction: COPY FREEZE may load them.
    Truncated,
    /// Their rows deleted (a Citus coordinator).
    Deleted,
}

/// The tables `tables` (qualified, quoted) and every table that refers to them, with whether a
/// DELETE may stand in for their truncation, whether they are Citus tables, and the foreign keys
/// between them.
const CLOSURE_SQL: &str = "
    WITH RECURSIVE closure(rel) AS (
        SELECT pg_catalog.unnest($1::text[])::regclass::oid
        UNION
        SELECT c.conrelid FROM pg_catalog.pg_constraint c JOIN closure ON c.confrelid = closure.rel
         WHERE c.contype = 'f'
    )
    SELECT r.oid::regclass::text,
           r.relkind = 'r' AND NOT r.relispartition
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_trigger t
                            WHERE t.tgrelid = r.oid AND NOT t.tgisinternal)
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_rewrite w WHERE w.ev_class = r.oid),
           EXISTS (SELECT FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid = r.oid),
           ARRAY(SELECT DISTINCT c.confrelid::regclass::text FROM pg_catalog.pg_constraint c
                  WHERE c.conrelid = r.oid AND c.contype = 'f' AND c.confrelid <> r.oid)
      FROM closure JOIN pg_catalog.pg_class r ON r.oid = closure.rel";

/// On a Citus coordinator whose database has a table distributed by hash or range, puts the
/// transaction in sequential mode; call it first in the transaction.
pub fn sequential_if_sharded(client: &mut Client) -> Result<(), postgres::Error> {
    if client
        .query_one(
            "SELECT pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL",
            &[],
        )?
        .get(0)
        && client
            .query_one(
                "SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition WHERE partmethod <> 'n')",
                &[],
            )?
            .get(0)
    {
        client.batch_execute("SET LOCAL citus.multi_shard_modify_mode = 'sequential'")?;
    }
    Ok(())
}

/// Empties `tables` (qualified, quoted) and, as CASCADE would, the tables that refer to them,
/// restarting their sequences.
pub fn empty(client: &mut Client, tables: &[String]) -> Result<Emptied, postgres::Error> {
    if let Some(order) = deletable(client, tables)? {
        for table in &order {
            client.batch_execute(&format!("DELETE FROM {table}"))?;
        }
        // What RESTART IDENTITY does: the sequences the tables own start over.
        client.execute(
            "SELECT pg_catalog.setval(s.seqrelid, s.seqstart, false)
               FROM pg_catalog.pg_sequence s
               JOIN pg_catalog.pg_depend d ON d.objid = s.seqrelid
              WHERE d.classid = 'pg_catalog.pg_class'::regclass
                AND d.refclassid = 'pg_catalog.pg_class'::regclass
                AND d.deptype IN ('a', 'i')
                AND d.refobjid = ANY ($1::text[]::regclass[])",
            &[&order],
        )?;
        return Ok(Emptied::Deleted);
    }
    client.batch_execute(&format!(
        "TRUNCATE {} RESTART IDENTITY CASCADE",
        tables.join(", ")
    ))?;
    Ok(Emptied::Truncated)
}

/// On a Citus coordinator, the tables to delete from, children first, when a DELETE may stand
/// in for the truncation; `None` otherwise.
fn deletable(
    client: &mut Client,
    tables: &[String],
) -> Result<Option<Vec<String>>, postgres::Error> {
    let citus: bool = client
        .query_one(
            "SELECT pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL",
            &[],
        )?
        .get(0);
    if !citus || tables.is_empty() {
        return Ok(None);
    }
    let rows = client.query(CLOSURE_SQL, &[&tables])?;
    let mut parents: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut any_citus = false;
    for row in &rows {
        if !row.get::<_, bool>(1) {
            return Ok(None);
        }
        any_citus |= row.get::<_, bool>(2);
        parents.insert(
            row.get(0),
            row.get::<_, Vec<String>>(3).into_iter().collect(),
        );
    }
    if !any_citus {
        return Ok(None);
    }
    let Some(order) = children_first(&parents) else {
        return Ok(None);
    };
    // Up to DELETE_AT_MOST + 1 rows counted per table, in one round trip. `SELECT 1`: Citus
    // cannot plan a select of no columns from a distributed table.
    let counts: Vec<String> = order
        .iter()
        .map(|t| format!("(SELECT count(*) FROM (SELECT 1 FROM {t} LIMIT $1) x)"))
        .collect();
    let rows: i64 = client
        .query_one(
            &format!("SELECT ({})::int8", counts.join(" + ")),
            &[&(DELETE_AT_MOST + 1)],
        )?
        .get(0);
    if rows > DELETE_AT_MOST {
        return Ok(None);
    }
    Ok(Some(order))
}

/// The tables ordered so that each comes before the tables it refers to; `None` on a cycle.
fn children_first(parents: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    let mut order = Vec::with_capacity(parents.len());
    let mut left: BTreeSet<&String> = parents.keys().collect();
    while !left.is_empty() {
        // A table nobody left refers to goes next.
        let next: Vec<&String> = left
            .iter()
            .filter(|t| !left.iter().any(|o| parents[*o].contains(**t)))
            .copied()
            .collect();
        if next.is_empty() {
            return None;
        }
        for t in next {
            left.remove(t);
            order.push(t.clone());
        }
    }
    Some(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
        edges
            .iter()
            .map(|(t, ps)| (t.to_string(), ps.iter().map(|p| p.to_string()).collect()))
            .collect()
    }

    #[test]
    fn children_come_before_their_parents_and_a_cycle_is_none() {
        let order = children_first(&graph(&[
            ("clients", &[]),
            ("pets", &["clients"]),
            ("visits", &["pets", "staff"]),
            ("staff", &[]),
            ("invoices", &["clients", "visits", "elsewhere"]),
        ]))
        .unwrap();
        let at = |t: &str| order.iter().position(|o| o == t).unwrap();
        assert!(at("invoices") < at("visits") && at("visits") < at("pets"));
        assert!(at("pets") < at("clients") && at("visits") < at("staff"));
        assert_eq!(
            children_first(&graph(&[("a", &["b"]), ("b", &["a"])])),
            None
        );
    }
}
