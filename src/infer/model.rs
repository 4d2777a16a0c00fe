//! The schema's tables -> what the spec says for each: counted or per parent row, the
//! generator of every column and why, and what was left to the database. Pure: the same
//! tables always give the same model.

use std::collections::{BTreeMap, BTreeSet};

use super::catalog::{Column, ForeignKey, PRESENT_ROWS_READ, Table};
use super::checks;
use super::values::{self, Gen, Limits, Pick};

/// Rows of a counted table in `dev` and `ci`, and children per parent.
pub const DEV_ROWS: u64 = 50;
pub const CI_ROWS: u64 = 10;

/// Migration tools' history tables: their rows are the tools' own, never seed data.
const HISTORY_TABLES: &[&str] = &[
    "refinery_schema_history",
    "_sqlx_migrations",
    "__drizzle_migrations",
    "_prisma_migrations",
    "schema_migrations",
    "ar_internal_metadata",
    "goose_db_version",
    "flyway_schema_history",
    "__diesel_schema_migrations",
    "knex_migrations",
    "knex_migrations_lock",
    "seaql_migrations",
    "gorp_migrations",
];

#[derive(Debug, Clone)]
pub struct Model {
    pub schema: String,
    pub tables: Vec<TablePlan>,
    /// Tables not seeded, and why.
    pub skipped: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub enum Source {
    Counted {
        dev: u64,
        ci: u64,
    },
    PerParent {
        parent: String,
        dev: (u64, u64),
        ci: (u64, u64),
        why: String,
    },
}

#[derive(Debug, Clone)]
pub struct TablePlan {
    pub name: String,
    pub source: Source,
    pub columns: Vec<ColumnPlan>,
    /// Columns the database fills, and why.
    pub left_out: Vec<(String, String)>,
    pub notes: Vec<String>,
    pub disable_triggers: bool,
    /// Column sets unique together that no single column makes unique (table-level `unique`).
    pub unique_sets: Vec<Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct ColumnPlan {
    pub name: String,
    pub generator: Gen,
    pub null: f64,
    pub unique: bool,
    pub why: String,
}

/// Where a schema cannot be inferred: the table, the column, and what to do.
pub type Problem = String;

struct Edge {
    child: usize,
    parent: usize,
    fk: usize,
    nullable: bool,
}

pub fn build(all: &[Table], schema: &str) -> Result<Model, Problem> {
    let mut skipped = Vec::new();
    let written_by_triggers = written_by_triggers(all);
    let mut reference: BTreeMap<&str, &Table> = BTreeMap::new();
    let tables: Vec<&Table> = all
        .iter()
        .filter(|t| {
            let why = if HISTORY_TABLES.contains(&t.name.as_str()) {
                "a migration tool's history table: its rows are the tool's own".to_string()
            } else if t.rows > 0 {
                reference.insert(t.name.as_str(), t);
                format!(
                    "the migrations insert {} row(s): reference data, kept as the migrations \
                     leave it and not generated, so no generated key collides with theirs; \
                     tables that reference it draw among those rows",
                    if t.rows > PRESENT_ROWS_READ as u64 {
                        format!("more than {PRESENT_ROWS_READ}")
                    } else {
                        t.rows.to_string()
                    }
                )
            } else if t.partitions.as_ref().is_some_and(|p| p.bounds.is_empty()) {
                "partitioned, with no partition yet: no row can be stored (the application \
                 creates its partitions)"
                    .to_string()
            } else if let Some((trigger, on)) = written_by_triggers.get(&t.name) {
                format!(
                    "trigger {trigger} on {on} inserts its rows: seeding it as well would \
                     collide with them"
                )
            } else {
                return true;
            };
            skipped.push((t.name.clone(), why));
            false
        })
        .collect();
    // Tables left as the migrations fill them still make a spec (of nothing to generate).
    let only_history = skipped
        .iter()
        .all(|(name, _)| HISTORY_TABLES.contains(&name.as_str()));
    if tables.is_empty() && only_history {
        return Err(format!(
            "schema {schema} has no tables after the migrations ran: there is nothing to seed \
             (dbtool init writes a spec for the tables the migrations create; check \
             --migrations-dir and --schema)"
        ));
    }
    let index: BTreeMap<&str, usize> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), i))
        .collect();

    // Foreign keys between seeded tables, self-references aside.
    let mut edges = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        for (f, fk) in t.foreign_keys.iter().enumerate() {
            let Some(p) = fk.parent.as_deref().and_then(|p| index.get(p)) else {
                continue;
            };
            if *p != i {
                edges.push(Edge {
                    child: i,
                    parent: *p,
                    fk: f,
                    nullable: fk.columns.iter().any(|c| !t.columns[*c].not_null),
                });
            }
        }
    }
    // A cycle through nullable keys is broken by leaving those keys NULL; one through NOT NULL
    // keys alone has no order of inserts.
    let mut broken: BTreeSet<(usize, usize)> = BTreeSet::new();
    let reach = reachability(tables.len(), &edges, &broken);
    for e in &edges {
        if e.nullable && reach[e.parent][e.child] {
            broken.insert((e.child, e.fk));
        }
    }
    let reach = reachability(tables.len(), &edges, &broken);
    for e in &edges {
        if !broken.contains(&(e.child, e.fk)) && reach[e.parent][e.child] {
            let cycle: Vec<String> = edges
                .iter()
                .filter(|x| {
                    !broken.contains(&(x.child, x.fk))
                        && reach[x.parent][e.child]
                        && reach[e.child][x.child]
                })
                .map(|x| {
                    let t = tables[x.child];
                    let cols: Vec<&str> = t.foreign_keys[x.fk]
                        .columns
                        .iter()
                        .map(|c| t.columns[*c].name.as_str())
                        .collect();
                    format!("{}.{} -> {}", t.name, cols.join(","), tables[x.parent].name)
                })
                .collect();
            return Err(format!(
                "tables {} reference each other through NOT NULL foreign keys ({}): no order of \
                 inserts satisfies them; make one of those columns nullable, or write \
                 seeds/seed.toml for these tables yourself",
                {
                    let mut names: Vec<&str> = edges
                        .iter()
                        .filter(|x| reach[x.child][e.child] && reach[e.child][x.child])
                        .map(|x| tables[x.child].name.as_str())
                        .collect();
                    names.sort();
                    names.dedup();
                    names.join(", ")
                },
                cycle.join("; ")
            ));
        }
    }

    // Parents first; names break ties.
    let mut order = Vec::new();
    let mut done = vec![false; tables.len()];
    while order.len() < tables.len() {
        let next = (0..tables.len()).find(|&i| {
            !done[i]
                && edges
                    .iter()
                    .all(|e| e.child != i || broken.contains(&(e.child, e.fk)) || done[e.parent])
        });
        let Some(i) = next else { break };
        done[i] = true;
        order.push(i);
    }

    // Which columns other tables point at: they must be generated, never left to a default.
    let mut referenced: BTreeSet<(String, String)> = BTreeSet::new();
    for t in &tables {
        for fk in &t.foreign_keys {
            if let Some(p) = &fk.parent {
                for c in &fk.parent_columns {
                    referenced.insert((p.clone(), c.clone()));
                }
            }
        }
    }

    let mut plans: Vec<TablePlan> = Vec::new();
    for &i in &order {
        let t = tables[i];
        let is_broken = |f: usize| broken.contains(&(i, f));
        let per_parent: BTreeSet<String> = plans
            .iter()
            .filter(|p| matches!(p.source, Source::PerParent { .. }))
            .map(|p| p.name.clone())
            .collect();
        let around = Around {
            index: &index,
            referenced: &referenced,
            reference: &reference,
            per_parent: &per_parent,
        };
        plans.push(table_plan(t, &around, &is_broken)?);
    }
    Ok(Model {
        schema: schema.to_string(),
        tables: plans,
        skipped,
    })
}

/// What a table's plan needs to know of the others.
struct Around<'a> {
    index: &'a BTreeMap<&'a str, usize>,
    /// Columns other tables point at.
    referenced: &'a BTreeSet<(String, String)>,
    /// Tables the migrations fill, left as they are.
    reference: &'a BTreeMap<&'a str, &'a Table>,
    /// Tables already planned per parent row.
    per_parent: &'a BTreeSet<String>,
}

/// Tables a trigger function inserts into (`INSERT INTO name`), with the trigger and its table.
fn written_by_triggers(all: &[Table]) -> BTreeMap<String, (String, String)> {
    let mut out = BTreeMap::new();
    for t in all {
        for tr in &t.triggers {
            for name in inserted_into(&tr.source) {
                if name != t.name && all.iter().any(|x| x.name == name) {
                    out.entry(name)
                        .or_insert_with(|| (tr.name.clone(), t.name.clone()));
                }
            }
        }
    }
    out
}

/// The tables `INSERT INTO` names in a function's source (the last part of a qualified name;
/// unquoted names fold to lower case).
fn inserted_into(source: &str) -> Vec<String> {
    // ASCII folding keeps byte offsets, so one offset serves both texts.
    let lower = source.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = lower[from..].find("insert") {
        let at = from + found;
        from = at + 6;
        let word_start =
            at == 0 || !lower[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_');
        let rest = lower[from..].trim_start();
        let Some(after_into) = rest.strip_prefix("into") else {
            continue;
        };
        if !word_start || !after_into.starts_with(char::is_whitespace) {
            continue;
        }
        let start = source.len() - after_into.trim_start().len();
        let mut name: String;
        let mut chars = source[start..].chars().peekable();
        loop {
            let part = if chars.peek() == Some(&'"') {
                chars.next();
                chars.by_ref().take_while(|c| *c != '"').collect::<String>()
            } else {
                let mut word = String::new();
                while let Some(c) = chars
                    .peek()
                    .copied()
                    .filter(|c| c.is_alphanumeric() || *c == '_')
                {
                    word.push(c.to_ascii_lowercase());
                    chars.next();
                }
                word
            };
            name = part;
            if chars.peek() == Some(&'.') {
                chars.next();
            } else {
                break;
            }
        }
        if !name.is_empty() {
            out.push(name);
        }
    }
    out
}

fn reachability(n: usize, edges: &[Edge], broken: &BTreeSet<(usize, usize)>) -> Vec<Vec<bool>> {
    let mut r = vec![vec![false; n]; n];
    for e in edges {
        if !broken.contains(&(e.child, e.fk)) {
            r[e.child][e.parent] = true;
        }
    }
    for k in 0..n {
        for a in 0..n {
            if r[a][k] {
                let through = r[k].clone();
                for (b, reached) in through.into_iter().enumerate() {
                    if reached {
                        r[a][b] = true;
                    }
                }
            }
        }
    }
    r
}

fn names(t: &Table, cols: &[usize]) -> Vec<String> {
    cols.iter().map(|c| t.columns[*c].name.clone()).collect()
}

/// The foreign key whose parent owns this table's rows, if one does: NOT NULL, to another
/// table, and part of the primary key, unique on its own (one to one), or ON DELETE CASCADE.
/// Among keys that score the same, one whose columns a unique set shares with a number (a
/// position under the parent), then one to a table generated per parent row (so that the other
/// key of a junction, drawn distinct, points at a counted table).
fn owner(t: &Table, around: &Around, is_broken: &dyn Fn(usize) -> bool) -> Option<(usize, u8)> {
    let index = around.index;
    let mut best: Option<(usize, u8, u8)> = None;
    for (f, fk) in t.foreign_keys.iter().enumerate() {
        let Some(parent) = fk.parent.as_deref() else {
            continue;
        };
        if parent == t.name || !index.contains_key(parent) || is_broken(f) {
            continue;
        }
        if !fk.columns.iter().all(|c| t.columns[*c].not_null) {
            continue;
        }
        let in_key = !t.primary_key.is_empty()
            && fk.columns.len() < t.primary_key.len()
            && fk.columns.iter().all(|c| t.primary_key.contains(c));
        let alone = t.primary_key == fk.columns
            || t.uniques.iter().any(|u| {
                let mut u = u.clone();
                let mut c = fk.columns.clone();
                u.sort();
                c.sort();
                u == c
            });
        let score = if in_key {
            3
        } else if alone {
            2
        } else if fk.cascade {
            1
        } else {
            0
        };
        let positioned = t
            .uniques
            .iter()
            .any(|u| u.len() == fk.columns.len() + 1 && fk.columns.iter().all(|c| u.contains(c)));
        let rank = u8::from(positioned) * 2 + u8::from(around.per_parent.contains(parent));
        if score > 0 && best.is_none_or(|(_, s, r)| (score, rank) > (s, r)) {
            best = Some((f, score, rank));
        }
    }
    best.map(|(f, score, _)| (f, score))
}

/// Column names a trigger's function assigns (`NEW.col := ...` or `NEW.col = ...` as a
/// statement, not inside a condition). Unquoted names fold to lower case, as PostgreSQL does.
fn assigned_by(source: &str) -> BTreeSet<String> {
    // ASCII folding keeps byte offsets, so one offset serves both texts.
    let lower = source.to_ascii_lowercase();
    let mut out = BTreeSet::new();
    let mut from = 0;
    while let Some(found) = lower[from..].find("new.") {
        let at = from + found;
        from = at + 4;
        let before = lower[..at].trim_end();
        let statement_start = before.is_empty()
            || before.ends_with(';')
            || ["begin", "then", "else", "loop"]
                .iter()
                .any(|w| before.ends_with(w));
        let after = &source[at + 4..];
        let (name, skip) = match after.strip_prefix('"') {
            Some(quoted) => {
                let name = quoted.split('"').next().unwrap_or("");
                (name.to_string(), name.len() + 2)
            }
            None => {
                let raw: String = after
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                (raw.to_lowercase(), raw.len())
            }
        };
        let tail = after[skip.min(after.len())..].trim_start();
        if statement_start && !name.is_empty() && (tail.starts_with(":=") || tail.starts_with('='))
        {
            out.insert(name);
        }
    }
    out
}

const VOLATILE: &[&str] = &[
    "now()",
    "current_timestamp",
    "clock_timestamp",
    "statement_timestamp",
    "transaction_timestamp",
    "localtimestamp",
    "current_date",
    "random()",
    "gen_random_uuid",
    "uuid_generate",
    "nextval",
    "timeofday",
    "pg_current_xact_id",
    "pg_current_snapshot",
    "txid_current",
];

fn table_plan(
    t: &Table,
    around: &Around,
    is_broken: &dyn Fn(usize) -> bool,
) -> Result<TablePlan, Problem> {
    let (index, referenced) = (around.index, around.referenced);
    let col_named = |name: &str| t.columns.iter().position(|c| c.name == name);
    let at = |column: &str| format!("table {}, column {column}", t.name);
    let mut notes = Vec::new();
    // Text columns a generated column's expression or a CHECK casts to json or jsonb.
    let mut json_cast: BTreeMap<String, String> = BTreeMap::new();
    for expression in t
        .columns
        .iter()
        .filter(|c| c.generated)
        .filter_map(|c| c.default.as_deref())
        .chain(t.checks.iter().map(|k| k.definition.as_str()))
    {
        for (column, path, number) in json_paths(expression) {
            json_cast
                .entry(column)
                .or_insert_with(|| json_at(&path, number));
        }
    }

    // CHECK constraints and domains, per column.
    let mut limits: Vec<Limits> = vec![Limits::default(); t.columns.len()];
    for check in &t.checks {
        let rules = checks::read(&check.definition).map_err(|what| {
            let words = identifiers(&check.definition);
            let column = words
                .iter()
                .find(|w| t.columns.iter().any(|c| &c.name == *w))
                .map_or_else(|| format!("table {}", t.name), |c| at(c));
            format!(
                "{column}: CHECK constraint {} ({}) has {what}, which dbtool cannot generate \
                 values for; write this table's spec yourself (dbtool init writes the others) or \
                 simplify the CHECK",
                check.name, check.definition
            )
        })?;
        for (c, column) in t.columns.iter().enumerate() {
            limits[c].apply(&column.name, &rules, &check.name);
        }
    }
    for (c, column) in t.columns.iter().enumerate() {
        let domain = column.domain.clone().unwrap_or_default();
        // A pattern on an email domain holds for the addresses the spec writes.
        let subject = if (domain.clone() + &column.name)
            .to_lowercase()
            .contains("email")
        {
            "email_value"
        } else {
            "VALUE"
        };
        for def in &column.domain_checks {
            let rules = checks::read(&def.replace("VALUE", subject)).map_err(|what| {
                format!(
                    "{}: the domain {} has CHECK {def} with {what}, which dbtool cannot \
                     generate values for; write this column's generator yourself",
                    at(&column.name),
                    column.domain.as_deref().unwrap_or("?")
                )
            })?;
            limits[c].apply(subject, &rules, &format!("domain {domain}"));
        }
    }

    // Triggers: kept unless they read the clock or a random source, which would make two
    // resets differ.
    let mut trigger_filled: BTreeMap<String, String> = BTreeMap::new();
    let volatile_triggers: Vec<&str> = t
        .triggers
        .iter()
        .filter(|tr| {
            let s = tr.source.to_lowercase();
            VOLATILE.iter().any(|v| s.contains(v))
        })
        .map(|tr| tr.name.as_str())
        .collect();
    let disable_triggers = !volatile_triggers.is_empty();
    if disable_triggers {
        notes.push(format!(
            "trigger(s) {} read the clock or a random source: they are disabled during the load \
             so that two resets are identical, and the columns they fill are generated here",
            volatile_triggers.join(", ")
        ));
    } else {
        for tr in &t.triggers {
            notes.push(format!(
                "trigger {} runs on every row loaded; if it rejects rows, set disable_triggers = true",
                tr.name
            ));
            if tr.before {
                for c in assigned_by(&tr.source) {
                    trigger_filled.insert(c, tr.name.clone());
                }
            }
        }
    }

    // A row generated per parent has no fixed position in its table, so a numbered key that
    // other tables point at needs a counted table.
    let numbered_and_referenced = t.columns.iter().enumerate().any(|(c, col)| {
        let numbered = col.identity
            || col
                .default
                .as_deref()
                .is_some_and(|d| d.starts_with("nextval("))
            || t.primary_key == [c];
        numbered
            && matches!(col.base.as_str(), "int2" | "int4" | "int8")
            && referenced.contains(&(t.name.clone(), col.name.clone()))
    });
    let owner = owner(t, around, is_broken).filter(|_| !numbered_and_referenced);
    if numbered_and_referenced && self::owner(t, around, is_broken).is_some() {
        notes.push(
            "counted rather than per parent row: other tables point at its numbered key, and a \
             row generated per parent has no fixed number"
                .into(),
        );
    }
    let mut source = Source::Counted {
        dev: DEV_ROWS,
        ci: CI_ROWS,
    };
    let mut parent_columns: BTreeMap<usize, String> = BTreeMap::new();
    let mut junction_ref: Option<usize> = None;
    let mut ordinal: Option<usize> = None;
    if let Some((f, score)) = owner {
        let fk = &t.foreign_keys[f];
        let parent = fk.parent.clone().unwrap_or_default();
        for (c, pc) in fk.columns.iter().zip(&fk.parent_columns) {
            parent_columns.insert(*c, pc.clone());
        }
        let rest: Vec<usize> = t
            .primary_key
            .iter()
            .copied()
            .filter(|c| !fk.columns.contains(c))
            .collect();
        let (dev, ci, why) = if score == 2 {
            (
                (1, 1),
                (1, 1),
                format!("one row per {parent} row: its key to {parent} is unique"),
            )
        } else if score == 3 {
            // The rest of the primary key: another table's key (a junction) or a number.
            let other = t
                .foreign_keys
                .iter()
                .position(|g| !rest.is_empty() && g.columns == rest && g.parent.is_some());
            let counted = |g: &usize| {
                t.foreign_keys[*g]
                    .parent
                    .as_ref()
                    .is_some_and(|p| !around.per_parent.contains(p))
            };
            if let Some(g) = other.filter(|g| !is_broken(*g) && counted(g)) {
                junction_ref = Some(g);
                (
                    (0, 3),
                    (0, 2),
                    format!(
                        "rows per {parent} row: its primary key pairs {parent} with {}, each pair once",
                        t.foreign_keys[g].parent.as_deref().unwrap_or("?")
                    ),
                )
            } else {
                if let [c] = rest[..]
                    && position_column(t, c)
                {
                    ordinal = Some(c);
                }
                (
                    (1, 4),
                    (1, 2),
                    format!(
                        "rows per {parent} row: its primary key starts with its key to {parent}"
                    ),
                )
            }
        } else {
            (
                (1, 4),
                (1, 2),
                format!(
                    "rows per {parent} row: deleting a {parent} row deletes them (ON DELETE CASCADE)"
                ),
            )
        };
        // A number unique with the key to the parent (`UNIQUE (file_id, chunk_index)`): its
        // position under the parent row, 1, 2, ...
        if ordinal.is_none() && junction_ref.is_none() {
            ordinal = t
                .uniques
                .iter()
                .chain(std::iter::once(&t.primary_key))
                .filter(|u| {
                    u.len() == fk.columns.len() + 1 && fk.columns.iter().all(|c| u.contains(c))
                })
                .flat_map(|u| u.iter().copied().filter(|c| !fk.columns.contains(c)))
                .find(|c| position_column(t, *c));
        }
        source = Source::PerParent {
            parent,
            dev,
            ci,
            why,
        };
    }

    let mut columns: Vec<ColumnPlan> = Vec::new();
    let mut left_out: Vec<(String, String)> = Vec::new();
    let in_pk = |c: usize| t.primary_key.contains(&c);
    let unique_alone = |c: usize| t.uniques.iter().any(|u| u == &[c]) || t.primary_key == [c];
    let is_key = |c: usize| {
        in_pk(c)
            || t.uniques.iter().any(|u| u.contains(&c))
            || referenced.contains(&(t.name.clone(), t.columns[c].name.clone()))
    };
    let fk_of = |c: usize| -> Option<(usize, &ForeignKey)> {
        t.foreign_keys
            .iter()
            .enumerate()
            .find(|(_, fk)| fk.columns.contains(&c))
    };
    // Columns an ordering CHECK starts from must have a value whenever the later one does.
    let order_lows: BTreeSet<String> = limits
        .iter()
        .filter_map(|l| l.after.as_ref().map(|(low, _)| low.clone()))
        .collect();

    for (c, column) in t.columns.iter().enumerate() {
        let name = column.name.clone();
        let nullable = !column.not_null && !limits[c].not_null;
        let plan = |generator: Gen, why: String| ColumnPlan {
            name: column.name.clone(),
            generator,
            null: 0.0,
            unique: false,
            why,
        };
        if column.generated {
            left_out.push((name, "a generated column: the database computes it".into()));
            continue;
        }
        if let Some(pc) = parent_columns.get(&c) {
            columns.push(plan(
                Gen::Parent { column: pc.clone() },
                "the parent row's key".into(),
            ));
            continue;
        }
        if ordinal == Some(c) {
            columns.push(plan(
                Gen::Ordinal,
                "1, 2, ... under each parent row: with the parent's key, a unique key".into(),
            ));
            continue;
        }
        if let Some((f, fk)) = fk_of(c) {
            let first = fk.columns[0] == c;
            let parent = fk.parent.as_deref();
            let seeded = parent.is_some_and(|p| index.contains_key(p));
            let mut p = if parent == Some(t.name.as_str()) {
                self_reference(t, column, fk, nullable)?
            } else if is_broken(f) {
                plan(
                    Gen::Null,
                    format!(
                        "NULL: this key to {} closes a cycle of references (nullable here, so \
                         NULL breaks it); set it with a seed command if rows need it",
                        parent.unwrap_or("?")
                    ),
                )
            } else if let Some(values) = (!seeded)
                .then(|| parent.and_then(|p| around.reference.get(p)))
                .flatten()
                .and_then(|pt| present_keys(pt, fk, c))
            {
                let mut p = plan(
                    Gen::Choice { values },
                    format!(
                        "one of the rows the migrations insert into {} (reference data, not \
                         generated; foreign key {})",
                        parent.unwrap_or("?"),
                        fk.name
                    ),
                );
                p.unique = unique_alone(c);
                p
            } else if !seeded {
                if !nullable {
                    if let Some(p) = parent.filter(|p| around.reference.contains_key(p)) {
                        return Err(format!(
                            "{}: a NOT NULL foreign key ({}) over several columns to {p}, whose \
                             rows the migrations insert (reference data, not generated): dbtool \
                             cannot pick one of those rows for each column together; write this \
                             table's spec yourself",
                            at(&name),
                            fk.name,
                        ));
                    }
                    return Err(format!(
                        "{}: a NOT NULL foreign key ({}) to a table dbtool does not seed ({}); \
                         write this table's spec yourself",
                        at(&name),
                        fk.name,
                        parent.unwrap_or("a table of another schema")
                    ));
                }
                plan(
                    Gen::Null,
                    format!(
                        "NULL: it references {}, which is not seeded",
                        parent.unwrap_or("another schema")
                    ),
                )
            } else if nullable && unique_alone(c) && junction_ref.is_none() {
                plan(
                    Gen::Null,
                    "NULL: a unique reference, and a reference per row could need more rows than its table has".into(),
                )
            } else if first {
                let distinct = junction_ref == Some(f);
                let why = if distinct {
                    format!(
                        "any {} row, each once per parent (the pair is the primary key)",
                        parent.unwrap_or("?")
                    )
                } else {
                    format!(
                        "any {} row (foreign key {})",
                        parent.unwrap_or("?"),
                        fk.name
                    )
                };
                plan(
                    Gen::Ref {
                        table: parent.unwrap_or_default().to_string(),
                        column: fk.parent_columns[0].clone(),
                        distinct,
                    },
                    why,
                )
            } else {
                let k = fk.columns.iter().position(|x| *x == c).unwrap_or(0);
                let first_name = &t.columns[fk.columns[0]].name;
                plan(
                    Gen::Expr(format!("{}.{}", first_name, fk.parent_columns[k])),
                    format!(
                        "the same {} row as {first_name} (a composite foreign key)",
                        parent.unwrap_or("?")
                    ),
                )
            };
            let self_reference = parent == Some(t.name.as_str());
            if nullable && p.generator != Gen::Null && !in_pk(c) && !self_reference {
                p.null = 0.1;
                p.why.push_str("; nullable: NULL in 10% of rows");
            }
            columns.push(p);
            continue;
        }
        let serial_default = column
            .default
            .as_deref()
            .is_some_and(|d| d.starts_with("nextval("));
        let integer = matches!(column.base.as_str(), "int2" | "int4" | "int8") && !column.is_array;
        // A key numbered by a sequence but not an integer (`varchar` with a nextval default):
        // generated like any other key column, below.
        if (column.identity || serial_default) && (integer || !is_key(c)) {
            if is_key(c) && integer {
                columns.push(plan(
                    Gen::Serial,
                    format!(
                        "1, 2, ...: {} key that other rows point at; dbtool moves its sequence past the last value",
                        if column.identity { "an identity" } else { "a serial" }
                    ),
                ));
            } else {
                left_out.push((
                    name,
                    format!(
                        "{}: the database numbers the rows",
                        if column.identity {
                            "identity"
                        } else {
                            "serial"
                        }
                    ),
                ));
            }
            continue;
        }
        if t.primary_key == [c] && integer {
            columns.push(plan(Gen::Serial, "1, 2, ...: the primary key".into()));
            continue;
        }
        if let Some(tr) = trigger_filled.get(&column.name)
            && (nullable || column.default.is_some())
        {
            left_out.push((name, format!("trigger {tr} fills it")));
            continue;
        }
        if let Some(default) = &column.default
            && !column.volatile_default
            && !is_key(c)
            && !volatile_text(default)
        {
            left_out.push((
                name,
                format!(
                    "DEFAULT {default}: the database fills it (give it a generator here to vary it)"
                ),
            ));
            continue;
        }
        let unique = unique_alone(c);
        let textual =
            matches!(column.base.as_str(), "text" | "varchar" | "bpchar") && !column.is_array;
        let mut p = if let Some(json) = json_cast.get(&column.name).filter(|_| textual) {
            plan(
                Gen::Expr(json.clone()),
                "a small JSON object: a generated column or CHECK casts it to json (with the keys \
                 it reads); edit its keys to what the application reads"
                    .into(),
            )
        } else {
            match values::plain(column, &t.name, &limits[c], unique) {
                Ok(Pick { generator, why }) => plan(generator, why),
                Err(what) => {
                    return Err(format!(
                        "{}: {what}; write its generator in seeds/seed.toml yourself",
                        at(&name)
                    ));
                }
            }
        };
        if column.volatile_default || column.default.as_deref().is_some_and(volatile_text) {
            p.why = format!(
                "{}; its DEFAULT {} would differ on every reset, so the spec draws it from the epoch",
                p.why,
                column.default.as_deref().unwrap_or("")
            );
        }
        if let Some(tr) = trigger_filled.get(&column.name) {
            p.why.push_str(&format!("; trigger {tr} overwrites it"));
        }
        if !limits[c].notes.is_empty() {
            p.why
                .push_str(&format!("; CHECK: {}", limits[c].notes.join(", ")));
        }
        if unique && !matches!(p.generator, Gen::Uuid | Gen::Serial) {
            p.unique = true;
        }
        if nullable && !is_key(c) && !order_lows.contains(&column.name) && p.generator != Gen::Null
        {
            let lname = column.name.to_lowercase();
            p.null = if [
                "deleted",
                "archived",
                "cancel",
                "canceled",
                "cancelled",
                "banned",
                "closed",
            ]
            .iter()
            .any(|w| lname.contains(w))
            {
                0.9
            } else {
                0.1
            };
            p.why.push_str(&format!(
                "; nullable: NULL in {}% of rows",
                (p.null * 100.0) as i64
            ));
        }
        columns.push(p);
    }

    // A column that must come after another follows it (once every column has a generator,
    // whatever their order in the table).
    for (c, column) in t.columns.iter().enumerate() {
        let Some((low, strict)) = &limits[c].after else {
            continue;
        };
        let (Some(l), true) = (col_named(low), columns.iter().any(|x| &x.name == low)) else {
            continue;
        };
        let Some(p) = columns.iter_mut().find(|x| x.name == column.name) else {
            continue;
        };
        let first = if *strict { 1 } else { 0 };
        let step = match t.columns[l].base.as_str() {
            "date" => format!("{low} + days(int({first}, 30))"),
            "timestamp" | "timestamptz" => format!("{low} + hours(int({first}, 720))"),
            _ => format!("{low} + int({first}, 100)"),
        };
        p.generator = Gen::Expr(step);
        p.why = format!("after {low}, as its CHECK wants; {}", p.why);
    }

    partition_key(t, &mut columns)?;

    // Composite unique keys (the primary key among them) that no column already makes distinct.
    let mut unique_sets = Vec::new();
    let mut sets: Vec<Vec<usize>> = t.uniques.iter().filter(|u| u.len() > 1).cloned().collect();
    if t.primary_key.len() > 1 {
        sets.push(t.primary_key.clone());
    }
    for set in sets {
        let gen_of = |c: usize| columns.iter().position(|p| p.name == t.columns[c].name);
        let distinct = set.iter().any(|c| {
            gen_of(*c).is_some_and(|p| {
                matches!(columns[p].generator, Gen::Serial | Gen::Uuid) || columns[p].unique
            })
        });
        let per_parent = set.iter().any(|c| parent_columns.contains_key(c))
            && set.iter().any(|c| {
                ordinal == Some(*c)
                    || gen_of(*c).is_some_and(|p| {
                        matches!(columns[p].generator, Gen::Ref { distinct: true, .. })
                    })
            });
        // One row per parent row, and the set holds the whole key to the parent: distinct.
        let one_per_parent = matches!(
            source,
            Source::PerParent {
                dev: (_, 1),
                ci: (_, 1),
                ..
            }
        ) && !parent_columns.is_empty()
            && parent_columns.keys().all(|c| set.contains(c));
        if distinct || per_parent || one_per_parent {
            continue;
        }
        // Not an expression: its values may be few (words), and drawn together with the set's
        // other columns they need not be distinct across the whole table.
        let free = set.iter().filter_map(|c| gen_of(*c)).find(|p| {
            // Values enough for the rows on its own (a partition of one day has one date).
            let wide = match &columns[*p].generator {
                Gen::Int { min, max } => max - min + 1 >= 2 * DEV_ROWS as i64,
                Gen::Decimal { .. } => true,
                Gen::Date { from, to } | Gen::Timestamp { from, to } => from != to,
                _ => false,
            };
            wide && !columns[*p].generator_is_path()
        });
        // With the key to the parent in the set, the set itself is drawn again (rows of one parent
        // apart), not the column across the whole table (more rows than its values).
        let with_parent = set.iter().any(|c| parent_columns.contains_key(c));
        match free.filter(|_| !with_parent) {
            Some(p) => {
                columns[p].unique = true;
                columns[p].why.push_str(&format!(
                    "; unique on its own, the simplest way to keep ({}) distinct",
                    names(t, &set).join(", ")
                ));
            }
            None => {
                // The last column of a set is the one that draws again when a combination is
                // taken: the one with the most values (enums and short lists first).
                let mut set = set.clone();
                set.sort_by_key(|c| {
                    gen_of(*c).map_or(u64::MAX, |p| match &columns[p].generator {
                        Gen::Choice { values } => values.len() as u64,
                        Gen::Bool { .. } => 2,
                        Gen::Int { min, max } => (max - min + 1).max(0) as u64,
                        _ => u64::MAX,
                    })
                });
                unique_sets.push(names(t, &set))
            }
        }
    }

    // A unique column, or a unique set, whose generators have few values between them: no more
    // rows than draws can fill (each row draws again, up to 64 times, until its value is free).
    if let Source::Counted { dev, ci } = &mut source {
        let space_of = |p: &ColumnPlan| match &p.generator {
            Gen::Int { min, max } => Some((max - min + 1).max(0) as u64),
            Gen::Choice { values } => Some(values.len() as u64),
            Gen::Bool { .. } => Some(2),
            _ => None,
        };
        let mut limited: Vec<(String, u64)> = columns
            .iter()
            .filter(|p| p.unique)
            .filter_map(|p| Some((p.name.clone(), space_of(p)?)))
            .collect();
        let mut sets: Vec<Vec<usize>> = t.uniques.iter().filter(|u| u.len() > 1).cloned().collect();
        if t.primary_key.len() > 1 {
            sets.push(t.primary_key.clone());
        }
        for set in sets {
            let spaces: Option<Vec<u64>> = set
                .iter()
                .map(|c| {
                    columns
                        .iter()
                        .find(|p| p.name == t.columns[*c].name)
                        .and_then(space_of)
                })
                .collect();
            if let Some(spaces) = spaces {
                let space = spaces.iter().fold(1u64, |a, b| a.saturating_mul(*b));
                limited.push((format!("({})", names(t, &set).join(", ")), space));
            }
        }
        for (what, space) in limited {
            let fits = if space <= 4 {
                space
            } else {
                (space / 2).max(4)
            };
            if fits < *dev {
                notes.push(format!(
                    "{what} is unique with {space} possible values: at most {fits} rows"
                ));
                *dev = fits;
                *ci = (*ci).min(fits);
            }
        }
    }
    // Per parent row: a unique set holding the key to the parent, whose other columns have few
    // values between them (an enum), caps the rows under each parent.
    if let Source::PerParent { dev, ci, .. } = &mut source {
        let mut sets: Vec<Vec<usize>> = t.uniques.clone();
        sets.push(t.primary_key.clone());
        for set in sets {
            if parent_columns.is_empty() || !parent_columns.keys().all(|c| set.contains(c)) {
                continue;
            }
            let spaces: Option<Vec<u64>> = set
                .iter()
                .filter(|c| !parent_columns.contains_key(c))
                .map(|c| {
                    columns
                        .iter()
                        .find(|p| p.name == t.columns[*c].name)
                        .and_then(|p| match &p.generator {
                            Gen::Choice { values } => Some(values.len() as u64),
                            Gen::Bool { .. } => Some(2),
                            Gen::Int { min, max } if !p.unique => {
                                Some((max - min + 1).max(0) as u64)
                            }
                            _ => None,
                        })
                })
                .collect();
            let Some(spaces) = spaces.filter(|s| !s.is_empty()) else {
                continue;
            };
            let space = spaces.iter().fold(1u64, |a, b| a.saturating_mul(*b));
            let fits = if space <= 4 {
                space
            } else {
                (space / 2).max(4)
            };
            if fits < dev.1 {
                notes.push(format!(
                    "({}) is unique with {space} possible values per {} row: at most {fits} rows each",
                    names(t, &set).join(", "),
                    match &source_parent(t, &parent_columns) {
                        Some(p) => p.as_str(),
                        None => "parent",
                    }
                ));
                *dev = (dev.0.min(fits), fits);
                *ci = (ci.0.min(fits), ci.1.min(fits));
            }
        }
    }
    Ok(TablePlan {
        name: t.name.clone(),
        source,
        columns,
        left_out,
        notes,
        disable_triggers,
        unique_sets,
    })
}

/// The values of column `c` (of foreign key `fk`) that the rows the migrations put in `parent`
/// hold: every value for a one-column key, the one row's for a key over several columns.
fn present_keys(parent: &Table, fk: &ForeignKey, c: usize) -> Option<Vec<String>> {
    let k = fk.columns.iter().position(|x| *x == c)?;
    let (_, rows) = parent
        .key_values
        .iter()
        .find(|(columns, _)| columns == &fk.parent_columns)?;
    if rows.is_empty() || (fk.columns.len() > 1 && rows.len() > 1) {
        return None;
    }
    Some(rows.iter().map(|r| r[k].clone()).collect())
}

/// The identifiers of an expression, in order: words outside string literals, a quoted name
/// without its quotes (so `id` is not found inside `client_id`, nor in `'id'`).
fn identifiers(expression: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = expression.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                }
            }
            '"' => out.push(chars.by_ref().take_while(|c| *c != '"').collect()),
            c if c.is_alphabetic() || c == '_' => {
                let mut word = c.to_string();
                while let Some(&n) = chars.peek().filter(|n| n.is_alphanumeric() || **n == '_') {
                    word.push(n);
                    chars.next();
                }
                out.push(word);
            }
            c if c.is_ascii_digit() => {
                while chars
                    .peek()
                    .is_some_and(|n| n.is_alphanumeric() || *n == '_' || *n == '.')
                {
                    chars.next();
                }
            }
            _ => {}
        }
    }
    out
}

/// The columns an expression casts to json or jsonb (`(col)::json`, `col::jsonb`,
/// `"Col"::json`, as PostgreSQL prints them), each with the keys the expression then reads
/// (`-> 'a' ->> 'b'`) and whether the value read is cast to a number.
fn json_paths(expression: &str) -> Vec<(String, Vec<String>, bool)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = expression[from..].find("::json") {
        let at = from + found;
        from = at + 6;
        let before = expression[..at].trim_end_matches(')');
        let name = if let Some(quoted) = before.strip_suffix('"') {
            quoted.rsplit('"').next().unwrap_or("").to_string()
        } else {
            let start = before
                .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
                .map_or(0, |i| i + 1);
            before[start..].to_string()
        };
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            continue;
        }
        let mut rest = expression[from..]
            .strip_prefix('b')
            .unwrap_or(&expression[from..]);
        let mut path = Vec::new();
        loop {
            let next = rest.trim_start_matches([')', ' ']);
            let Some(after) = next
                .strip_prefix("->>")
                .or_else(|| next.strip_prefix("->"))
                .map(str::trim_start)
                .and_then(|a| a.strip_prefix('\''))
            else {
                break;
            };
            let Some((key, tail)) = after.split_once('\'') else {
                break;
            };
            path.push(key.to_string());
            rest = tail.strip_prefix("::text").unwrap_or(tail);
        }
        let number = [
            "::bigint",
            "::integer",
            "::smallint",
            "::numeric",
            "::double",
            "::real",
        ]
        .iter()
        .any(|t| rest.trim_start_matches([')', ' ']).starts_with(t));
        out.push((name, path, number));
    }
    out
}

/// A JSON object (the spec's expression) holding a value at `path`: a number when it is read as
/// one, a word otherwise; with no path, a small object of its own.
fn json_at(path: &[String], number: bool) -> String {
    let Some((last, outer)) = path.split_last() else {
        return "{ 'source': choice('web', 'ios', 'android'), 'score': int(1, 100) }".into();
    };
    let quoted = |k: &str| format!("'{}'", k.replace('\'', "''"));
    let leaf = if number {
        "int(1, 100000)".to_string()
    } else {
        "choice('alpha', 'beta', 'gamma')".to_string()
    };
    let mut value = format!("{{ {}: {leaf} }}", quoted(last));
    for key in outer.iter().rev() {
        value = format!("{{ {}: {value} }}", quoted(key));
    }
    value
}

/// The table the parent columns point at.
fn source_parent(t: &Table, parent_columns: &BTreeMap<usize, String>) -> Option<String> {
    let first = parent_columns.keys().next()?;
    t.foreign_keys
        .iter()
        .find(|fk| fk.columns.contains(first))
        .and_then(|fk| fk.parent.clone())
}

/// A plain integer column (no key to another table, not numbered by the database) that can
/// hold a row's position under its parent.
fn position_column(t: &Table, c: usize) -> bool {
    let column = &t.columns[c];
    matches!(column.base.as_str(), "int2" | "int4" | "int8")
        && !column.is_array
        && !column.identity
        && !column.generated
        && !column
            .default
            .as_deref()
            .is_some_and(|d| d.starts_with("nextval("))
        && !t.foreign_keys.iter().any(|fk| fk.columns.contains(&c))
}

impl ColumnPlan {
    fn generator_is_path(&self) -> bool {
        matches!(&self.generator, Gen::Expr(e) if !e.starts_with('\'') && e.contains('.') && !e.contains('('))
    }
}

fn volatile_text(default: &str) -> bool {
    let d = default.to_lowercase();
    VOLATILE.iter().any(|v| d.contains(v))
}

/// A foreign key to the table itself: an earlier row of a serial key (row 1 has none), or NULL.
fn self_reference(
    t: &Table,
    column: &Column,
    fk: &ForeignKey,
    nullable: bool,
) -> Result<ColumnPlan, Problem> {
    let target = &fk.parent_columns;
    let serial_target = fk.columns.len() == 1
        && t.primary_key.len() == 1
        && t.columns[t.primary_key[0]].name == target[0]
        && matches!(
            t.columns[t.primary_key[0]].base.as_str(),
            "int2" | "int4" | "int8"
        );
    let key = &target[0];
    let plan = |generator: Gen, why: String| ColumnPlan {
        name: column.name.clone(),
        generator,
        null: 0.0,
        unique: false,
        why,
    };
    if serial_target && nullable {
        return Ok(plan(
            Gen::Expr(format!(
                "if({key} > 1 and bool(0.7), int(1, {key} - 1), null)"
            )),
            "an earlier row of this table (a self-reference): the first row has none, and 30% are NULL".to_string(),
        ));
    }
    if serial_target {
        return Ok(plan(
            Gen::Expr(format!("int(1, {key})")),
            "this row or an earlier one (a NOT NULL self-reference: row 1 points at itself)".into(),
        ));
    }
    if nullable {
        return Ok(plan(
            Gen::Null,
            "NULL: a self-reference to a key that is not 1, 2, ...; a seed command can link rows"
                .into(),
        ));
    }
    Err(format!(
        "table {}, column {}: a NOT NULL reference to its own table's non-numeric key ({}): dbtool \
         cannot pick an earlier row; make it nullable or write this table's spec yourself",
        t.name, column.name, fk.name
    ))
}

/// A partitioned table's key column takes values inside its partitions' bounds.
fn partition_key(t: &Table, columns: &mut [ColumnPlan]) -> Result<(), Problem> {
    let Some(parts) = &t.partitions else {
        return Ok(());
    };
    let [key] = parts.key[..] else {
        return Ok(());
    };
    if parts.bounds.iter().any(|b| b.trim() == "DEFAULT") || parts.strategy == 'h' {
        return Ok(());
    }
    let column = &t.columns[key];
    let Some(plan) = columns.iter_mut().find(|p| p.name == column.name) else {
        return Ok(());
    };
    let literals = |b: &str| -> Vec<String> {
        b.split('\'')
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, s)| s.to_string())
            .collect::<Vec<_>>()
    };
    if parts.strategy == 'l' {
        let values: Vec<String> = parts
            .bounds
            .iter()
            .flat_map(|b| {
                let quoted = literals(b);
                if quoted.is_empty() {
                    b.trim_start_matches("FOR VALUES IN (")
                        .trim_end_matches(')')
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .collect()
                } else {
                    quoted
                }
            })
            .collect();
        plan.generator = Gen::Choice { values };
        plan.why = "a value of one of its partitions (FOR VALUES IN)".into();
        return Ok(());
    }
    let epoch = crate::spec::calendar::days_from_civil(2025, 1, 1);
    let day = |s: &str| -> Option<i64> {
        let y = s.get(0..4)?.parse().ok()?;
        let m = s.get(5..7)?.parse().ok()?;
        let d = s.get(8..10)?.parse().ok()?;
        Some(crate::spec::calendar::days_from_civil(y, m, d))
    };
    let mut lows = Vec::new();
    let mut highs = Vec::new();
    for b in &parts.bounds {
        let Some((from, to)) = b.split_once(" TO ") else {
            continue;
        };
        lows.push(from.to_string());
        highs.push(to.to_string());
    }
    match column.base.as_str() {
        "date" | "timestamp" | "timestamptz" => {
            let low = lows
                .iter()
                .filter_map(|l| literals(l).first().and_then(|s| day(s)))
                .min();
            let high = highs
                .iter()
                .filter_map(|h| literals(h).first().and_then(|s| day(s)))
                .max();
            let (Some(low), Some(high)) = (low, high) else {
                return Ok(());
            };
            let from = format!("{:+}d", low - epoch);
            let to = format!("{:+}d", high - epoch - 1);
            plan.generator = if column.base == "date" {
                Gen::Date { from, to }
            } else {
                Gen::Timestamp { from, to }
            };
            plan.why = "inside its partitions' range (relative to the profile's epoch 2025-01-01: change both together)".into();
        }
        "int2" | "int4" | "int8" => {
            let num = |s: &String| -> Option<i64> {
                s.trim()
                    .trim_start_matches("FOR VALUES FROM")
                    .trim()
                    .trim_start_matches('(')
                    .trim_end_matches(')')
                    .trim()
                    .parse()
                    .ok()
            };
            let low = lows.iter().filter_map(num).min();
            let high = highs.iter().filter_map(num).max();
            if let (Some(low), Some(high)) = (low, high) {
                plan.generator = Gen::Int {
                    min: low,
                    max: high - 1,
                };
                plan.why = "inside its partitions' range".into();
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trigger_function_s_assignments_name_the_columns_it_fills() {
        let source = "BEGIN\n  NEW.last_update = CURRENT_TIMESTAMP;\n  new.\"Slug\" := lower(NEW.title);\n  IF NEW.x = 1 THEN RETURN NEW; END IF;\nEND";
        let filled: Vec<String> = assigned_by(source).into_iter().collect();
        assert_eq!(filled, vec!["Slug", "last_update"]);
    }

    #[test]
    fn the_tables_a_trigger_function_inserts_into_are_named_without_their_schema() {
        let source = "BEGIN\n  INSERT INTO public.totals (n) VALUES (1);\n  insert   into \"Log\"\n\
                      SELECT 1; UPDATE other SET n = 1; -- reinsert into nothing\nEND";
        assert_eq!(inserted_into(source), vec!["totals", "Log"]);
    }

    #[test]
    fn a_check_s_identifiers_leave_out_literals_and_numbers() {
        assert_eq!(
            identifiers("CHECK ((client_id = (request_data ->> 'id'::text)) AND (\"Id\" > 10.5))"),
            vec!["CHECK", "client_id", "request_data", "text", "AND", "Id"]
        );
    }

    #[test]
    fn columns_cast_to_json_are_found_as_postgres_prints_them() {
        assert_eq!(
            json_paths("((((meta)::json -> 'a'::text) ->> 'b'::text))::bigint"),
            vec![(
                "meta".to_string(),
                vec!["a".to_string(), "b".to_string()],
                true
            )]
        );
        assert_eq!(
            json_paths("(\"Doc\")::jsonb ? 'k'::text"),
            vec![("Doc".to_string(), vec![], false)]
        );
        assert_eq!(json_paths("'{}'::jsonb"), vec![]);
        assert_eq!(
            json_at(&["a".to_string(), "b".to_string()], true),
            "{ 'a': { 'b': int(1, 100000) } }"
        );
    }
}
