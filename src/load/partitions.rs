//! Routing a partitioned table's rows to its partitions on the client, as pg_restore loads a
//! dump (one COPY per partition) rather than through the parent, where the server routes every
//! row and no COPY FREEZE is allowed. A table is routed when the server's answer is certain:
//! partitioned by RANGE or LIST on one plain column that the spec generates, of an integer, date
//! or timestamp type (or text, LIST only, under a deterministic collation), with leaf
//! partitions only, no trigger of its own, loaded with binary COPY (the client parsed each key
//! exactly as the server stores it), and not on Citus. The bounds come from the catalog
//! (`pg_get_expr(relpartbound)`), their values from the server's own input functions. A row no
//! partition takes, a null key without a default partition, or a key the client cannot parse
//! goes to the parent, where the server decides (and refuses with its own message).

use std::collections::HashMap;

use postgres::Client;
use postgres::types::{FromSql, Type};

use crate::connection::quote_ident;
use crate::error::Result;
use crate::load::copy::{self, ColumnType};
use crate::spec::{Dataset, RowValues};

/// Where a routed table's rows go: its partitions, by index into `partitions`.
#[derive(Debug, Clone)]
pub struct Routing {
    /// Each leaf partition, `"schema"."name"`.
    pub partitions: Vec<String>,
    /// The spec's column that is the partition key.
    column: usize,
    ty: ColumnType,
    rule: Rule,
    /// The DEFAULT partition.
    default: Option<usize>,
}

#[derive(Debug, Clone)]
enum Rule {
    /// `[lower, upper)` per partition, sorted by lower bound (they do not overlap); `None` is
    /// MINVALUE below and MAXVALUE above.
    Range(Vec<(Option<i64>, Option<i64>, usize)>),
    List {
        ints: HashMap<i64, usize>,
        texts: HashMap<String, usize>,
        /// The partition whose list holds NULL.
        null: Option<usize>,
    },
}

impl Routing {
    /// The partition that takes the row, or `None`: the parent (the server decides).
    pub fn route(&self, values: &mut RowValues) -> Result<Option<usize>> {
        let value = values.value_ref(self.column)?;
        if *value == crate::spec::Value::Null {
            return Ok(match &self.rule {
                Rule::List { null: Some(p), .. } => Some(*p),
                _ => self.default,
            });
        }
        let key = match copy::from_generated(value, self.ty) {
            Some(Ok(typed)) => Key::of(&typed),
            Some(Err(_)) => return Ok(None),
            None => match values.get(self.column)? {
                Some(text) => match copy::parse(self.ty, text) {
                    Ok(typed) => Key::of(&typed),
                    Err(_) => return Ok(None),
                },
                None => return Ok(None),
            },
        };
        let found = match (&self.rule, key) {
            (Rule::Range(ranges), Some(Key::Int(k))) => in_range(ranges, k),
            (Rule::List { ints, .. }, Some(Key::Int(k))) => ints.get(&k).copied(),
            (Rule::List { texts, .. }, Some(Key::Text(t))) => texts.get(&t).copied(),
            _ => return Ok(None),
        };
        Ok(found.or(self.default))
    }
}

/// The partition of sorted, non-overlapping `ranges` that holds `k`: the last one whose lower
/// bound is at most k, if k is below its upper bound.
fn in_range(ranges: &[(Option<i64>, Option<i64>, usize)], k: i64) -> Option<usize> {
    let after = ranges.partition_point(|(lower, _, _)| lower.is_none_or(|l| l <= k));
    after
        .checked_sub(1)
        .map(|i| ranges[i])
        .filter(|(_, upper, _)| upper.is_none_or(|u| k < u))
        .map(|(_, _, p)| p)
}

enum Key {
    Int(i64),
    Text(String),
}

impl Key {
    /// Integers as themselves, dates as days and timestamps as microseconds from 1970-01-01
    /// (`copy::Value`'s units, in which the bounds are read too).
    fn of(value: &copy::Value) -> Option<Key> {
        match value {
            copy::Value::Int(v) | copy::Value::Date(v) | copy::Value::Timestamp(v) => {
                Some(Key::Int(*v))
            }
            copy::Value::Text(t) => Some(Key::Text((*t).to_string())),
            _ => None,
        }
    }
}

/// Each seeded partitioned table's key, and its partitions with their bounds. Citus is left
/// out: its distributed partitions are the coordinator's to route.
const PARTITIONED_SQL: &str = "
    SELECT c.relname::text, pt.partstrat::text, pt.partnatts::int4, a.attname::text,
           pg_catalog.format_type(a.atttypid, a.atttypmod),
           COALESCE((SELECT collisdeterministic FROM pg_catalog.pg_collation
                      WHERE oid = pt.partcollation[0]), true),
           EXISTS (SELECT FROM pg_catalog.pg_trigger WHERE tgrelid = c.oid AND NOT tgisinternal),
           EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'citus'),
           pg_catalog.format('%I.%I', pn.nspname, p.relname), p.relkind::text,
           pg_catalog.pg_get_expr(p.relpartbound, p.oid)
      FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_catalog.pg_partitioned_table pt ON pt.partrelid = c.oid
      LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = pt.partattrs[0]
      JOIN pg_catalog.pg_inherits i ON i.inhparent = c.oid
      JOIN pg_catalog.pg_class p ON p.oid = i.inhrelid
      JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
     WHERE n.nspname = $1 AND c.relname = ANY($2) AND c.relkind = 'p'
     ORDER BY c.relname, p.relname";

/// One partitioned table as the catalog describes it.
struct Described {
    routable: bool,
    key: String,
    key_type: String,
    strategy: String,
    partitions: Vec<(String, String)>,
}

/// The routing of each of `tables` (in `schema`) that can be routed, by table name. `binary`:
/// whether the table loads with binary COPY (else it is not routed).
pub fn read(
    client: &mut Client,
    schema: &str,
    tables: &[String],
    data: &Dataset,
    spec_table: impl Fn(&str) -> Option<(usize, Vec<ColumnType>, bool)>,
) -> Result<HashMap<String, Routing>, postgres::Error> {
    let mut described: HashMap<String, Described> = HashMap::new();
    for row in client.query(PARTITIONED_SQL, &[&schema, &tables])? {
        let table: String = row.get(0);
        let strategy: String = row.get(1);
        let natts: i32 = row.get(2);
        let key: Option<String> = row.get(3);
        let deterministic: bool = row.get(5);
        let triggers: bool = row.get(6);
        let citus: bool = row.get(7);
        let kind: String = row.get(9);
        let entry = described.entry(table).or_insert_with(|| Described {
            routable: natts == 1
                && key.is_some()
                && matches!(strategy.as_str(), "r" | "l")
                && deterministic
                && !triggers
                && !citus,
            key: key.clone().unwrap_or_default(),
            key_type: row.get::<_, Option<String>>(4).unwrap_or_default(),
            strategy: strategy.clone(),
            partitions: Vec::new(),
        });
        // A sub-partitioned or foreign partition: the server routes.
        entry.routable &= kind == "r";
        entry.partitions.push((row.get(8), row.get(10)));
    }
    let mut routings = HashMap::new();
    for (table, d) in described {
        if !d.routable {
            continue;
        }
        let Some((index, types, binary)) = spec_table(&table) else {
            continue;
        };
        let spec = &data.spec.tables[index];
        let Some(column) = spec.columns.iter().position(|c| c.name == d.key) else {
            continue;
        };
        let ty = types[column];
        let range_type = matches!(
            ty,
            ColumnType::Int2
                | ColumnType::Int4
                | ColumnType::Int8
                | ColumnType::Date
                | ColumnType::Timestamp
                | ColumnType::Timestamptz
        );
        if !binary || !(range_type || (d.strategy == "l" && ty == ColumnType::Text)) {
            continue;
        }
        if let Some(routing) = build(client, &d, column, ty)? {
            routings.insert(table, routing);
        }
    }
    Ok(routings)
}

/// A bound's literal as `pg_get_expr` prints it.
#[derive(Debug, PartialEq)]
enum Literal {
    Value(String),
    Null,
    MinValue,
    MaxValue,
}

/// The literals of `FOR VALUES FROM (a) TO (b)` or `FOR VALUES IN (a, b)`, or `None` for
/// anything else (a hash bound, several columns, a shape not known).
fn bound_literals(bound: &str) -> Option<(bool, Vec<Literal>)> {
    if let Some(rest) = bound.strip_prefix("FOR VALUES FROM (") {
        let (lower, rest) = literals(rest)?;
        let rest = rest.strip_prefix(" TO (")?;
        let (upper, rest) = literals(rest)?;
        if !rest.is_empty() || lower.len() != 1 || upper.len() != 1 {
            return None;
        }
        return Some((true, lower.into_iter().chain(upper).collect()));
    }
    let rest = bound.strip_prefix("FOR VALUES IN (")?;
    let (values, rest) = literals(rest)?;
    rest.is_empty().then_some((false, values))
}

/// Comma-separated literals up to the closing parenthesis, and what follows it.
fn literals(mut s: &str) -> Option<(Vec<Literal>, &str)> {
    let mut out = Vec::new();
    loop {
        if let Some(quoted) = s.strip_prefix('\'') {
            let mut text = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                let (i, c) = chars.next()?;
                if c == '\'' {
                    if quoted[i + 1..].starts_with('\'') {
                        text.push('\'');
                        chars.next();
                    } else {
                        break i + 1;
                    }
                } else {
                    text.push(c);
                }
            };
            out.push(Literal::Value(text));
            s = &quoted[end..];
        } else {
            let end = s.find([',', ')'])?;
            let token = s[..end].trim();
            out.push(match token {
                "NULL" => Literal::Null,
                "MINVALUE" => Literal::MinValue,
                "MAXVALUE" => Literal::MaxValue,
                t if !t.is_empty()
                    && t.bytes()
                        .all(|b| b.is_ascii_digit() || b == b'-' || b == b'+') =>
                {
                    Literal::Value(t.to_string())
                }
                // A cast or an expression: not a shape this reads.
                _ => return None,
            });
            s = &s[end..];
        }
        if let Some(rest) = s.strip_prefix(", ") {
            s = rest;
        } else {
            return Some((out, s.strip_prefix(')')?));
        }
    }
}

/// A value's binary form, as the server sends it.
struct Raw(Vec<u8>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(
        _: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw.to_vec()))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Days from 1970-01-01 to 2000-01-01, the server's epoch for dates and timestamps.
const PG_EPOCH_DAYS: i64 = 10_957;

/// The routing of one partitioned table, or `None` when a bound is not of a shape it reads.
fn build(
    client: &mut Client,
    d: &Described,
    column: usize,
    ty: ColumnType,
) -> Result<Option<Routing>, postgres::Error> {
    let mut partitions = Vec::new();
    let mut default = None;
    // Per partition: whether its bound is a range, and its literals.
    let mut bounds = Vec::new();
    for (name, bound) in &d.partitions {
        let index = partitions.len();
        partitions.push(name.clone());
        if bound == "DEFAULT" {
            default = Some(index);
            continue;
        }
        let Some((range, literals)) = bound_literals(bound) else {
            return Ok(None);
        };
        if range != (d.strategy == "r") {
            return Ok(None);
        }
        bounds.push((index, literals));
    }
    // The bounds' values through the server's own input function of the key's type, in this
    // session (whose time zone printed them): exact, whatever the session's settings.
    let texts: Vec<&str> = bounds
        .iter()
        .flat_map(|(_, ls)| ls.iter())
        .filter_map(|l| match l {
            Literal::Value(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    let values: Vec<Raw> = if texts.is_empty() || ty == ColumnType::Text {
        Vec::new()
    } else {
        client
            .query(
                &format!(
                    "SELECT v::{} FROM pg_catalog.unnest($1::text[]) WITH ORDINALITY AS x(v, i) ORDER BY i",
                    d.key_type
                ),
                &[&texts],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    let mut next = values.iter();
    let mut int_of = |l: &Literal| -> Option<i64> {
        let raw = next.next()?;
        let be8 = |b: &[u8]| b.try_into().ok().map(i64::from_be_bytes);
        match (ty, l) {
            (ColumnType::Int2, _) => raw
                .0
                .as_slice()
                .try_into()
                .ok()
                .map(|b| i16::from_be_bytes(b).into()),
            (ColumnType::Int4, _) => raw
                .0
                .as_slice()
                .try_into()
                .ok()
                .map(|b| i32::from_be_bytes(b).into()),
            (ColumnType::Int8, _) => be8(&raw.0),
            (ColumnType::Date, _) => raw
                .0
                .as_slice()
                .try_into()
                .ok()
                .map(|b| i64::from(i32::from_be_bytes(b)) + PG_EPOCH_DAYS),
            (ColumnType::Timestamp | ColumnType::Timestamptz, _) => {
                be8(&raw.0).map(|m| m + PG_EPOCH_DAYS * 86_400_000_000)
            }
            _ => None,
        }
    };
    let rule = if d.strategy == "r" {
        let mut ranges = Vec::new();
        for (index, literals) in &bounds {
            let mut side = |l: &Literal| -> Option<Option<i64>> {
                match l {
                    Literal::MinValue | Literal::MaxValue => Some(None),
                    Literal::Value(_) => int_of(l).map(Some),
                    Literal::Null => None,
                }
            };
            let (Some(lower), Some(upper)) = (side(&literals[0]), side(&literals[1])) else {
                return Ok(None);
            };
            // MINVALUE is only ever below and MAXVALUE above.
            if literals[0] == Literal::MaxValue || literals[1] == Literal::MinValue {
                return Ok(None);
            }
            ranges.push((lower, upper, *index));
        }
        ranges.sort_by_key(|(lower, _, _)| lower.map_or((0, 0), |l| (1, l)));
        Rule::Range(ranges)
    } else {
        let (mut ints, mut texts, mut null) = (HashMap::new(), HashMap::new(), None);
        for (index, literals) in &bounds {
            for l in literals {
                match l {
                    Literal::Null => null = Some(*index),
                    Literal::Value(t) if ty == ColumnType::Text => {
                        texts.insert(t.clone(), *index);
                    }
                    Literal::Value(_) => match int_of(l) {
                        Some(v) => {
                            ints.insert(v, *index);
                        }
                        None => return Ok(None),
                    },
                    _ => return Ok(None),
                }
            }
        }
        Rule::List { ints, texts, null }
    };
    Ok(Some(Routing {
        partitions,
        column,
        ty,
        rule,
        default,
    }))
}

/// The COPY into one partition of the spec's columns: binary, and FREEZE where allowed.
pub fn copy_statement(data: &Dataset, table: usize, partition: &str, freeze: bool) -> String {
    let columns: Vec<String> = data.spec.tables[table]
        .columns
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect();
    format!(
        "COPY {partition} ({}) FROM STDIN WITH (FORMAT binary{})",
        columns.join(", "),
        if freeze { ", FREEZE" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(s: &str) -> Literal {
        Literal::Value(s.to_string())
    }

    #[test]
    fn range_and_list_bounds_are_read_as_pg_get_expr_prints_them() {
        assert_eq!(
            bound_literals(
                "FOR VALUES FROM ('2024-10-01 00:00:00+00') TO ('2024-11-01 00:00:00+00')"
            ),
            Some((
                true,
                vec![
                    value("2024-10-01 00:00:00+00"),
                    value("2024-11-01 00:00:00+00")
                ]
            ))
        );
        assert_eq!(
            bound_literals("FOR VALUES FROM (MINVALUE) TO (-10)"),
            Some((true, vec![Literal::MinValue, value("-10")]))
        );
        assert_eq!(
            bound_literals("FOR VALUES IN ('it''s', 'a, b', NULL)"),
            Some((false, vec![value("it's"), value("a, b"), Literal::Null]))
        );
        // Several columns, hash partitions and expressions are the server's to route.
        assert_eq!(bound_literals("FOR VALUES FROM (1, 2) TO (3, 4)"), None);
        assert_eq!(
            bound_literals("FOR VALUES WITH (modulus 4, remainder 0)"),
            None
        );
        assert_eq!(bound_literals("FOR VALUES IN ((1 + 2))"), None);
    }

    #[test]
    fn a_range_key_goes_to_the_partition_whose_bounds_hold_it() {
        let ranges = [
            (None, Some(0), 0),
            (Some(0), Some(10), 1),
            (Some(20), None, 2),
        ];
        let find = |k: i64| in_range(&ranges, k);
        assert_eq!(find(i64::MIN), Some(0));
        assert_eq!(find(-1), Some(0));
        assert_eq!(find(0), Some(1));
        assert_eq!(find(9), Some(1));
        assert_eq!(find(10), None);
        assert_eq!(find(19), None);
        assert_eq!(find(20), Some(2));
        assert_eq!(find(i64::MAX), Some(2));
    }
}
