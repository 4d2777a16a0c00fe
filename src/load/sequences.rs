//! Moving the sequences past the seeded values, so that the application's own inserts do not
//! collide with seeded rows. The largest value of a column the load sent is known to the client:
//! it saw every value as it encoded it. Reading it back with `max(column)` would read the whole
//! table (Pagila's payment: 1M rows, a key that leads with the date, 0.1 s of a 2 s reset).
//! Where the client knows it, the largest value is the larger of what the table held before the
//! load (read then, when the table is empty or holds only the migrations' rows) and the largest
//! value sent; elsewhere `max(column)` after the load, as before. The sequences end exactly where
//! `max` over the loaded tables puts them.

use std::collections::{BTreeMap, HashMap};

use postgres::Client;

use crate::load::copy::{self, ColumnType};
use crate::spec::RowValues;

/// The sequences that integer columns of the schema draw from: a serial's or an identity's own
/// sequence (owned by its column), and any sequence a column default calls `nextval` on, owned
/// or not (Pagila's `DEFAULT nextval('actor_actor_id_seq'::regclass)` with no `OWNED BY`, a
/// sequence shared by several tables). Partitions are left out: their parent's maximum covers
/// their rows. Each row: sequence, table, column (quoted), whether the table is seeded, and the table's
/// and the column's names.
const SEQUENCE_USES_SQL: &str = "
    WITH uses AS (
        SELECT dep.refobjid AS seq, d.adrelid AS rel, d.adnum AS att
          FROM pg_catalog.pg_attrdef d
          JOIN pg_catalog.pg_depend dep
            ON dep.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass AND dep.objid = d.oid
           AND dep.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
        UNION
        SELECT dep.objid, dep.refobjid, dep.refobjsubid
          FROM pg_catalog.pg_depend dep
         WHERE dep.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
           AND dep.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
           AND dep.deptype IN ('a', 'i') AND dep.refobjsubid > 0
        UNION
        -- `nextval('name'::text)`, `nextval(('name'::text)::regclass)` (old dumps): the name is
        -- looked up when the default runs, so no dependency records the sequence.
        SELECT COALESCE(pg_catalog.to_regclass(x.name),
                        pg_catalog.to_regclass(pg_catalog.format('%I.', dn.nspname) || x.name)),
               d.adrelid, d.adnum
          FROM pg_catalog.pg_attrdef d
          JOIN pg_catalog.pg_class dc ON dc.oid = d.adrelid
          JOIN pg_catalog.pg_namespace dn ON dn.oid = dc.relnamespace
          CROSS JOIN LATERAL pg_catalog.regexp_matches(pg_catalog.pg_get_expr(d.adbin, d.adrelid),
                                                       'nextval[(][(]?''((?:[^'']|'''')+)''::text', 'g') AS m(v)
          CROSS JOIN LATERAL (SELECT pg_catalog.replace(m.v[1], '''''', '''')) AS x(name)
         WHERE dn.nspname = $1
    )
    SELECT DISTINCT pg_catalog.format('%I.%I', sn.nspname, s.relname),
           pg_catalog.format('%I.%I', n.nspname, c.relname), pg_catalog.format('%I', a.attname),
           c.relname::text = ANY($2), c.relname::text, a.attname::text
      FROM uses u
      JOIN pg_catalog.pg_class s ON s.oid = u.seq AND s.relkind = 'S'
      JOIN pg_catalog.pg_namespace sn ON sn.oid = s.relnamespace
      JOIN pg_catalog.pg_class c ON c.oid = u.rel AND c.relkind IN ('r', 'p') AND NOT c.relispartition
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_catalog.pg_attribute a ON a.attrelid = u.rel AND a.attnum = u.att AND NOT a.attisdropped
      JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
      JOIN pg_catalog.pg_type bt
        ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
     WHERE n.nspname = $1 AND bt.typname IN ('int2', 'int4', 'int8')
     ORDER BY 1, 2, 3";

/// One column of the schema that a sequence feeds.
#[derive(Debug, Clone)]
struct Use {
    sequence: String,
    /// `"schema"."table"`
    table: String,
    /// The column, quoted.
    column: String,
    /// The table is seeded by this load.
    seeded: bool,
    table_name: String,
    column_name: String,
    /// The column's largest value before the load, once read.
    before: Option<Option<i64>>,
}

/// The columns that sequences feed, read before the load, with the largest value each seeded
/// table's column held then.
#[derive(Debug, Clone, Default)]
pub struct Sequences {
    uses: Vec<Use>,
}

/// The largest value of a column sent so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// No row yet, or every value null; else the largest.
    Known(Option<i64>),
    /// A value the client could not read as the server stores it: `max(column)` will tell.
    Unknown,
}

impl Default for Sent {
    fn default() -> Self {
        Sent::Known(None)
    }
}

impl Sent {
    /// Takes one more row's value of the column of `column` (the spec's column) and type `ty`.
    pub fn add(&mut self, values: &mut RowValues, column: usize, ty: ColumnType) {
        let Sent::Known(largest) = *self else {
            return;
        };
        let value = match values.value_ref(column) {
            Ok(crate::spec::Value::Null) => return,
            Ok(value) => match copy::from_generated(value, ty) {
                Some(Ok(copy::Value::Int(v))) => Some(v),
                Some(_) => None,
                None => match values.get(column) {
                    Ok(Some(text)) => match copy::parse(ty, text) {
                        Ok(copy::Value::Int(v)) => Some(v),
                        _ => None,
                    },
                    _ => None,
                },
            },
            Err(_) => None,
        };
        *self = match value {
            Some(v) => Sent::Known(Some(largest.map_or(v, |l| l.max(v)))),
            None => Sent::Unknown,
        };
    }

    /// Takes one more row's value as the binary COPY sent it (`RowEncoder::row_seen`).
    pub fn take(&mut self, value: &copy::Value) {
        let Sent::Known(largest) = *self else {
            return;
        };
        *self = match value {
            copy::Value::Int(v) => Sent::Known(Some(largest.map_or(*v, |l| l.max(*v)))),
            _ => Sent::Unknown,
        };
    }

    pub fn merge(&mut self, other: Sent) {
        *self = match (*self, other) {
            (Sent::Known(a), Sent::Known(b)) => Sent::Known(a.max(b)),
            _ => Sent::Unknown,
        };
    }
}

/// Per seeded table, its columns whose largest value sent counts, and that value.
pub type SentMaxima = HashMap<String, Vec<(String, Sent)>>;

impl Sequences {
    /// The columns that sequences feed, and for those of the seeded `tables`, the largest value
    /// they hold now (before the load: the tables are empty, or hold the migrations' rows).
    pub fn before_load(
        client: &mut Client,
        schema: &str,
        tables: &[String],
    ) -> Result<Sequences, postgres::Error> {
        let mut uses: Vec<Use> = client
            .query(SEQUENCE_USES_SQL, &[&schema, &tables])?
            .iter()
            .map(|row| Use {
                sequence: row.get(0),
                table: row.get(1),
                column: row.get(2),
                seeded: row.get(3),
                table_name: row.get(4),
                column_name: row.get(5),
                before: None,
            })
            .collect();
        let seeded: Vec<usize> = (0..uses.len()).filter(|&i| uses[i].seeded).collect();
        // One statement (one query, as Citus needs) reads many; a select list holds at most
        // 1,664 entries.
        for part in seeded.chunks(1000) {
            let reads: Vec<String> = part.iter().map(|&i| max_sql(&uses[i])).collect();
            let row = client.query_one(&format!("SELECT {}", reads.join(", ")), &[])?;
            for (k, &i) in part.iter().enumerate() {
                uses[i].before = Some(row.get(k));
            }
        }
        Ok(Sequences { uses })
    }

    /// The columns of seeded `table` whose largest value the load should note as it sends rows.
    pub fn columns_of(&self, table: &str) -> Vec<&str> {
        self.uses
            .iter()
            .filter(|u| u.seeded && u.table_name == table)
            .map(|u| u.column_name.as_str())
            .collect()
    }

    /// Moves every sequence that a column of a seeded table draws from (serial, identity, or
    /// any `DEFAULT nextval(...)`, owned by the column or not) past the largest value of every
    /// column of the schema that draws from it. `sent`: the largest values the load sent, per
    /// table (a table or column missing from it is read with `max`).
    pub fn advance(&self, client: &mut Client, sent: &SentMaxima) -> Result<(), postgres::Error> {
        // sequence -> (its columns' largest values, as SQL; whether a seeded column uses it)
        let mut by_sequence: BTreeMap<&str, (Vec<String>, bool)> = BTreeMap::new();
        for u in &self.uses {
            let known = match (u.before, sent_of(sent, u)) {
                (Some(before), Some(Sent::Known(largest))) => Some(before.max(largest)),
                _ => None,
            };
            let entry = by_sequence.entry(&u.sequence).or_default();
            entry.0.push(match known {
                Some(Some(v)) => format!("{v}::bigint"),
                Some(None) => "NULL::bigint".to_string(),
                None => max_sql(u),
            });
            entry.1 |= u.seeded;
        }
        let setvals: Vec<String> = by_sequence
            .iter()
            .filter(|(_, (_, seeded))| *seeded)
            .map(|(sequence, (maxima, _))| {
                let largest = match maxima.as_slice() {
                    [one] => one.clone(),
                    many => format!("pg_catalog.greatest({})", many.join(", ")),
                };
                format!(
                    "(SELECT pg_catalog.setval('{}'::text::pg_catalog.regclass, m) \
                     FROM (SELECT {largest} AS m) x WHERE m IS NOT NULL)",
                    sequence.replace('\'', "''")
                )
            })
            .collect();
        // One statement (one query, as Citus needs) moves many sequences; a select list holds
        // at most 1,664 entries.
        for calls in setvals.chunks(1000) {
            client.batch_execute(&format!("SELECT {}", calls.join(", ")))?;
        }
        Ok(())
    }
}

/// The largest value the load sent into `u`'s column, if the load noted it.
fn sent_of(sent: &SentMaxima, u: &Use) -> Option<Sent> {
    sent.get(&u.table_name)?
        .iter()
        .find(|(column, _)| *column == u.column_name)
        .map(|(_, s)| *s)
}

/// `max(column)` of `u`'s table, as a subquery.
fn max_sql(u: &Use) -> String {
    format!("(SELECT max({})::bigint FROM {})", u.column, u.table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_maxima_are_the_largest_and_unknown_wins() {
        let mut a = Sent::Known(Some(3));
        a.merge(Sent::Known(None));
        assert_eq!(a, Sent::Known(Some(3)));
        a.merge(Sent::Known(Some(7)));
        assert_eq!(a, Sent::Known(Some(7)));
        a.merge(Sent::Unknown);
        assert_eq!(a, Sent::Unknown);
        a.merge(Sent::Known(Some(9)));
        assert_eq!(a, Sent::Unknown);
    }
}
