//! The seed spec: `seeds/seed.toml` (plus its CSV and data files) -> a validated table graph in
//! load order. Every error names the file, the table and the column.

pub mod calendar;
pub mod expr;
mod generate;
pub mod kinds;
pub mod profile;
mod raw;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

pub use expr::{Expr, Value};
pub use generate::{Dataset, RowId, RowValues};

use crate::error::{Error, Result};
use crate::files::ReadFiles;

/// The versions of generator output this dbtool can produce. A change to any generator's output
/// gets a new version; specs keep the version they were written for, and so their data.
pub const SUPPORTED_VERSIONS: &[u32] = &[1];

#[derive(Debug)]
pub struct Spec {
    pub version: u32,
    /// In load order: every table after the tables it references.
    pub tables: Vec<TableSpec>,
    /// seed.toml and every file it reads, for the change digest.
    pub files: ReadFiles,
    /// seed.toml itself, for errors found after loading that name the file.
    pub path: PathBuf,
}

#[derive(Debug)]
pub struct TableSpec {
    pub name: String,
    pub hash: u64,
    pub source: Source,
    pub columns: Vec<ColumnSpec>,
    pub fixed: Option<FixedRows>,
    /// The row count when the profile gives none.
    pub default_count: Option<u64>,
    /// Which parents get children, and how many (per-parent tables only).
    pub children: Children,
    /// Load this table without firing its own (user) triggers: the load disables them with
    /// `ALTER TABLE .. DISABLE TRIGGER USER` and enables them again in the same transaction.
    pub disable_triggers: bool,
    /// Sets of two or more columns whose combined values are distinct across the table
    /// (`unique = [["film_id", "actor_id"]]`), as column indices.
    pub unique: Vec<Vec<usize>>,
}

/// The rule of a per-parent table's rows, beyond `[min, max]`.
#[derive(Debug, Default)]
pub struct Children {
    /// Weighted counts: (count, cumulative weight), ascending by count.
    pub weights: Option<Vec<(u64, u64)>>,
    /// Weighted counts with an expression over the parent row among the weights: (count,
    /// weight), ascending by count (then `weights` is `None`).
    pub weight_exprs: Option<Vec<(u64, Expr)>>,
    /// Only parents for which this holds (evaluated in the parent row) get children.
    pub when: Option<Expr>,
    /// The probability that a parent gets children at all.
    pub p: f64,
    /// `count = "expression over the parent row"`: how many children, exactly (unless the
    /// profile's [per] gives the table a range).
    pub count: Option<Expr>,
    /// `p = "expression over the parent row"`: the probability, per parent.
    pub p_expr: Option<Expr>,
    /// `min`/`max` when either is an expression over the parent row: a uniform count between.
    pub range: Option<(Expr, Expr)>,
}

impl Children {
    /// The expressions over the parent row that decide the children: when, count, p, min/max,
    /// weights.
    pub fn expressions(&self) -> impl Iterator<Item = &Expr> {
        self.when
            .iter()
            .chain(self.count.iter())
            .chain(self.p_expr.iter())
            .chain(self.range.iter().flat_map(|(a, b)| [a, b]))
            .chain(self.weight_exprs.iter().flatten().map(|(_, w)| w))
    }

    fn expressions_mut(&mut self) -> impl Iterator<Item = (&'static str, &mut Expr)> {
        self.when
            .iter_mut()
            .map(|e| ("when", e))
            .chain(self.count.iter_mut().map(|e| ("count", e)))
            .chain(self.p_expr.iter_mut().map(|e| ("p", e)))
            .chain(
                self.range
                    .iter_mut()
                    .flat_map(|(a, b)| [("min", a), ("max", b)]),
            )
            .chain(
                self.weight_exprs
                    .iter_mut()
                    .flatten()
                    .map(|(_, w)| ("counts", w)),
            )
    }
}

/// The most children an expression `count` may give one parent, unless `max` says otherwise.
pub const MAX_EXPR_CHILDREN: u64 = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `count` rows (from the profile's [counts]).
    Counted,
    /// [min, max] rows for every row of `parent` (the profile's [per] overrides them).
    PerParent { parent: usize, min: u64, max: u64 },
}

/// Rows from a CSV, loaded first: row i of the CSV is row i of the table.
#[derive(Debug)]
pub struct FixedRows {
    /// For each spec column, its position in the CSV, if there.
    pub columns: Vec<Option<usize>>,
    pub rows: Vec<Vec<Option<String>>>,
    /// The CSV file, and the line each row starts on, for errors that name them.
    pub file: PathBuf,
    pub lines: Vec<u64>,
}

#[derive(Debug)]
pub struct ColumnSpec {
    pub name: String,
    pub hash: u64,
    /// Probability of NULL.
    pub null: f64,
    pub generator: Gen,
    /// Distinct across the table: a row whose value was taken draws again from its own stream.
    pub unique: bool,
}

#[derive(Debug)]
pub enum Case {
    Keep,
    Lower,
    Upper,
}

#[derive(Debug)]
pub enum Part {
    Text(String),
    Column(usize, Case),
}

/// Which rows a `ref` may pick.
#[derive(Debug)]
pub enum Filter {
    /// `where = { column = "value" }`: rows whose column has this text.
    Equals(usize, String),
    /// `where = "expression"`, evaluated in the candidate row; `parent.x` and `this.x` inside it
    /// (`Expr::Outer`) read the referencing row. `outer`: it has such parts, so the matching
    /// rows differ from one referencing row to the next.
    Condition { cond: Expr, outer: bool },
}

/// A column's generator, validated and with its files read.
#[derive(Debug)]
pub enum Gen {
    /// start + the row's position in the table.
    Serial {
        start: i64,
    },
    /// start + the row's ordinal under its parent (its position, in a counted table).
    Ordinal {
        start: i64,
    },
    Uuid,
    Int {
        min: i64,
        max: i64,
    },
    /// Fixed-point: value / 10^scale.
    Decimal {
        min: i64,
        max: i64,
        scale: u32,
    },
    Bool {
        p: f64,
    },
    Choice {
        values: Vec<String>,
        cumulative: Vec<u64>,
    },
    Cycle {
        values: Vec<String>,
    },
    Pick {
        values: Vec<String>,
    },
    Format {
        parts: Vec<Part>,
    },
    /// Days relative to the epoch's date.
    Date {
        from: i64,
        to: i64,
    },
    /// Seconds relative to the epoch.
    Timestamp {
        from: i64,
        to: i64,
    },
    Ref {
        table: usize,
        column: usize,
        filter: Option<Filter>,
        /// A ref/parent column of this table pointing at an ancestor of `table`'s rows: only
        /// rows descending from that ancestor row are picked.
        within: Option<usize>,
        /// Without replacement among the children of one parent (a per-parent table only):
        /// a parent's k-th child takes the k-th value of a permutation of the candidates that
        /// the parent's key decides, so siblings never share a value.
        distinct: bool,
    },
    Parent {
        column: usize,
    },
    Constant {
        value: Option<String>,
    },
    /// An expression over the row's values and related rows' values.
    Expr {
        expr: Expr,
    },
    /// `when`: `then` where `cond` holds, else `otherwise`.
    When {
        cond: Expr,
        then: Box<Gen>,
        otherwise: Box<Gen>,
    },
    /// A field of one row picked from a CSV file; the columns of a table naming the same file
    /// (and `group`) take their fields from the same row.
    Csv {
        rows: Vec<Vec<String>>,
        field: usize,
        stream: u64,
    },
}

/// The (table, column) pairs whose pointed-to row something follows: the hops of paths and the
/// columns named by `within`.
pub(crate) fn followed_columns(spec: &Spec) -> std::collections::HashSet<(usize, usize)> {
    fn walk(
        e: &Expr,
        table: usize,
        tables: &[TableSpec],
        into: &mut std::collections::HashSet<(usize, usize)>,
    ) {
        match e {
            Expr::Path {
                start,
                hops,
                tables: reached,
                ..
            } => {
                let mut current = match (start, tables[table].source) {
                    (expr::Start::Parent, Source::PerParent { parent, .. }) => parent,
                    _ => table,
                };
                for (hop, next) in hops.iter().zip(reached) {
                    into.insert((current, *hop));
                    current = *next;
                }
            }
            Expr::Template(parts) => parts.iter().for_each(|(p, _)| walk(p, table, tables, into)),
            Expr::Neg(a) | Expr::Not(a) => walk(a, table, tables, into),
            Expr::Binary(_, a, b) => {
                walk(a, table, tables, into);
                walk(b, table, tables, into);
            }
            Expr::Func(_, args) | Expr::Array(args) => {
                args.iter().for_each(|a| walk(a, table, tables, into))
            }
            Expr::Object(fields) => fields
                .iter()
                .for_each(|(_, a)| walk(a, table, tables, into)),
            Expr::Aggregate {
                table: child,
                of: Some(of),
                ..
            } => walk(of, *child, tables, into),
            _ => {}
        }
    }
    fn walk_gen(
        g: &Gen,
        table: usize,
        tables: &[TableSpec],
        into: &mut std::collections::HashSet<(usize, usize)>,
    ) {
        match g {
            Gen::Expr { expr } => walk(expr, table, tables, into),
            Gen::When {
                cond,
                then,
                otherwise,
            } => {
                walk(cond, table, tables, into);
                walk_gen(then, table, tables, into);
                walk_gen(otherwise, table, tables, into);
            }
            Gen::Ref {
                within: Some(w), ..
            } => {
                into.insert((table, *w));
            }
            Gen::Ref {
                table: target,
                filter: Some(Filter::Condition { cond, .. }),
                ..
            } => {
                walk(cond, *target, tables, into);
                cond.outers(&mut |e| walk(e, table, tables, into));
            }
            _ => {}
        }
    }
    /// Where a column that is a path to a row gets its pointer: the path's last column.
    fn path_ends(g: &Gen, table: usize, tables: &[TableSpec], into: &mut Vec<(usize, usize)>) {
        match g {
            Gen::Expr {
                expr:
                    Expr::Path {
                        start,
                        tables: reached,
                        column,
                        ..
                    },
            } => {
                let last = match (reached.last(), start, tables[table].source) {
                    (Some(t), ..) => *t,
                    (None, expr::Start::Parent, Source::PerParent { parent, .. }) => parent,
                    _ => table,
                };
                into.push((last, *column));
            }
            Gen::When {
                then, otherwise, ..
            } => {
                path_ends(then, table, tables, into);
                path_ends(otherwise, table, tables, into);
            }
            _ => {}
        }
    }
    let mut followed = std::collections::HashSet::new();
    for (ti, table) in spec.tables.iter().enumerate() {
        if let Source::PerParent { parent, .. } = table.source {
            for e in table.children.expressions() {
                walk(e, parent, &spec.tables, &mut followed);
            }
        }
        for column in &table.columns {
            walk_gen(&column.generator, ti, &spec.tables, &mut followed);
        }
    }
    // A followed column that is itself a path to a row takes its pointer from the path's end.
    let mut pending: Vec<(usize, usize)> = followed.iter().copied().collect();
    while let Some((t, c)) = pending.pop() {
        let mut ends = Vec::new();
        path_ends(
            &spec.tables[t].columns[c].generator,
            t,
            &spec.tables,
            &mut ends,
        );
        for end in ends {
            if followed.insert(end) {
                pending.push(end);
            }
        }
    }
    followed
}

/// How many distinct values a generator can make, when that is known from the spec.
pub(crate) fn gen_space(generator: &Gen, table: usize, tables: &[TableSpec]) -> Option<u128> {
    let span = |a: i64, b: i64| Some((i128::from(b) - i128::from(a) + 1).max(0) as u128);
    match generator {
        Gen::Int { min, max } | Gen::Decimal { min, max, .. } => span(*min, *max),
        Gen::Date { from, to } | Gen::Timestamp { from, to } => span(*from, *to),
        Gen::Bool { .. } => Some(2),
        Gen::Choice { values, .. } | Gen::Cycle { values } | Gen::Pick { values } => {
            let mut distinct: Vec<&String> = values.iter().collect();
            distinct.sort();
            distinct.dedup();
            Some(distinct.len() as u128)
        }
        Gen::Constant { .. } => Some(1),
        Gen::Csv { rows, field, .. } => {
            let mut distinct: Vec<&String> = rows.iter().map(|r| &r[*field]).collect();
            distinct.sort();
            distinct.dedup();
            Some(distinct.len() as u128)
        }
        Gen::Format { parts } => parts.iter().try_fold(1u128, |acc, p| match p {
            Part::Text(_) => Some(acc),
            Part::Column(c, _) => acc.checked_mul(gen_space(
                &tables[table].columns[*c].generator,
                table,
                tables,
            )?),
        }),
        Gen::Expr { expr } => expr.space(table, tables),
        Gen::When {
            then, otherwise, ..
        } => gen_space(then, table, tables)?.checked_add(gen_space(otherwise, table, tables)?),
        Gen::Serial { .. }
        | Gen::Ordinal { .. }
        | Gen::Uuid
        | Gen::Ref { .. }
        | Gen::Parent { .. } => None,
    }
}

impl TableSpec {
    /// The tables whose rows this table's rows refer to: its parent and its `ref` targets.
    pub fn dependencies(&self) -> impl Iterator<Item = usize> + '_ {
        let parent = match self.source {
            Source::PerParent { parent, .. } => Some(parent),
            Source::Counted => None,
        };
        parent
            .into_iter()
            .chain(self.columns.iter().filter_map(|c| match c.generator {
                Gen::Ref { table, .. } => Some(table),
                _ => None,
            }))
    }
}

impl Spec {
    pub fn load(seeds_dir: &Path) -> Result<Self> {
        raw::load(seeds_dir)
    }

    pub fn table(&self, name: &str) -> Option<usize> {
        self.tables.iter().position(|t| t.name == name)
    }
}

/// A `pick` data file: one value a line, blank lines and `#` comments skipped; never empty.
pub(super) fn values_file(
    seeds_dir: &Path,
    name: &str,
    files: &mut ReadFiles,
) -> std::result::Result<Vec<String>, String> {
    let path = data_file(seeds_dir, name)?;
    let text = files
        .read_to_string(&path)
        .map_err(|e| format!("cannot read the data file {}: {e}", path.display()))?;
    let values: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    if values.is_empty() {
        return Err(format!("the data file {} is empty", path.display()));
    }
    Ok(values)
}

/// A data file named by the spec (`pick`, `fixed`), which must lie inside the seeds directory:
/// a spec is data, and must not read (and load into tables) whatever file its author names.
pub(super) fn data_file(seeds_dir: &Path, name: &str) -> std::result::Result<PathBuf, String> {
    use std::path::Component;
    let relative = Path::new(name);
    let escapes = relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
    if name.trim().is_empty() || escapes {
        return Err(format!(
            "file {name:?} must be a path inside the seeds directory {} (no absolute path, no ..)",
            seeds_dir.display()
        ));
    }
    let path = seeds_dir.join(relative);
    // A symbolic link inside the directory may still lead out of it.
    if let (Ok(real), Ok(root)) = (path.canonicalize(), seeds_dir.canonicalize())
        && !real.starts_with(&root)
    {
        return Err(format!(
            "file {name:?} leads outside the seeds directory {} (to {})",
            seeds_dir.display(),
            real.display()
        ));
    }
    Ok(path)
}

/// A UUID's canonical text, as PostgreSQL prints it: lower-case hex in 8-4-4-4-12 groups.
pub fn uuid_text(bits: u128) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(36);
    for nibble in 0..32 {
        if matches!(nibble, 8 | 12 | 16 | 20) {
            text.push('-');
        }
        text.push(char::from(HEX[(bits >> (124 - 4 * nibble) & 0xf) as usize]));
    }
    text
}

/// Where a spec error is.
struct At<'a> {
    file: &'a Path,
    table: &'a str,
    column: Option<&'a str>,
}

impl At<'_> {
    fn error(&self, message: impl std::fmt::Display) -> Error {
        match self.column {
            Some(column) => Error::usage(format!(
                "{}: table {}, column {column}: {message}",
                self.file.display(),
                self.table
            )),
            None => Error::usage(format!(
                "{}: table {}: {message}",
                self.file.display(),
                self.table
            )),
        }
    }
}

/// Orders tables so that each comes after every table it depends on; file order breaks ties.
fn load_order(names: &[String], depends: &[Vec<usize>], file: &Path) -> Result<Vec<usize>> {
    let mut order = Vec::with_capacity(names.len());
    let mut state = vec![0u8; names.len()]; // 0 new, 1 visiting, 2 done
    fn visit(
        i: usize,
        depends: &[Vec<usize>],
        state: &mut [u8],
        order: &mut Vec<usize>,
        names: &[String],
        file: &Path,
    ) -> Result<()> {
        match state[i] {
            2 => return Ok(()),
            1 => {
                return Err(Error::usage(format!(
                    "{}: table {} is part of a reference cycle",
                    file.display(),
                    names[i]
                )));
            }
            _ => {}
        }
        state[i] = 1;
        for &d in &depends[i] {
            visit(d, depends, state, order, names, file)?;
        }
        state[i] = 2;
        order.push(i);
        Ok(())
    }
    for i in 0..names.len() {
        visit(i, depends, &mut state, &mut order, names, file)?;
    }
    Ok(order)
}

/// What the catalog says about the schema beyond its columns: what fills columns the spec
/// leaves out, and which tables the spec leaves out.
#[derive(Debug, Clone, Default)]
pub struct SchemaFacts {
    /// Tables with an enabled BEFORE INSERT row trigger, and the triggers' names: such a
    /// trigger may fill a NOT NULL column that the spec does not generate.
    pub insert_triggers: HashMap<String, Vec<String>>,
    /// Columns whose default the database computes anew on every reset (`now()`,
    /// `gen_random_uuid()`, `random()`, any volatile function but `nextval`).
    pub volatile_defaults: Vec<VolatileDefault>,
    /// The schema's tables (partitions and migration history tables left out), and whether
    /// each holds rows now.
    pub tables: Vec<(String, bool)>,
}

#[derive(Debug, Clone)]
pub struct VolatileDefault {
    pub table: String,
    pub column: String,
    /// The default as `pg_get_expr` shows it.
    pub default: String,
}

/// The warnings a reset or seed gives about data that the spec does not make deterministic,
/// and the notes about columns a trigger fills: each names the table and column and says what
/// to do.
pub fn schema_notes(spec: &Spec, facts: &SchemaFacts) -> Vec<SchemaNote> {
    let mut notes = Vec::new();
    for table in &spec.tables {
        for d in facts
            .volatile_defaults
            .iter()
            .filter(|d| d.table == table.name)
        {
            if table.columns.iter().any(|c| c.name == d.column) {
                continue;
            }
            notes.push(SchemaNote::Volatile(format!(
                "table {}, column {}: left to its default {}, which differs on every reset, so the fingerprint does too; \
                 generate it in the seed spec (for a time, relative to the profile's epoch: {} = {{ gen = \"timestamp\", from = \"-30d\", to = \"0d\" }})",
                d.table, d.column, d.default, d.column
            )));
        }
    }
    for d in &facts.volatile_defaults {
        let holds_rows = facts.tables.iter().any(|(t, rows)| *t == d.table && *rows);
        if holds_rows {
            notes.push(SchemaNote::Volatile(format!(
                "table {}, column {}: the rows the migrations insert may take its default {}, which differs on every reset; \
                 give the value in the migration's INSERT",
                d.table, d.column, d.default
            )));
        }
    }
    let left_out: Vec<String> = facts
        .tables
        .iter()
        .filter(|(t, _)| spec.table(t).is_none())
        .map(|(t, rows)| {
            if *rows {
                format!("{t} (rows from the migrations)")
            } else {
                format!("{t} (empty)")
            }
        })
        .collect();
    if !left_out.is_empty() {
        notes.push(SchemaNote::LeftOut(format!(
            "tables the seed spec leaves out, kept as the migrations leave them: {}; add them to seeds/seed.toml to seed them",
            left_out.join(", ")
        )));
    }
    notes
}

impl SchemaNote {
    pub fn message(&self) -> &str {
        match self {
            SchemaNote::FilledByTrigger(m) | SchemaNote::Volatile(m) | SchemaNote::LeftOut(m) => m,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaNote {
    /// A NOT NULL column without a default, filled by a BEFORE INSERT trigger.
    FilledByTrigger(String),
    /// A value the database invents: the fingerprint changes on every reset.
    Volatile(String),
    /// A table of the schema that the spec does not seed.
    LeftOut(String),
}

/// Checks the spec against the columns the migrated schema has: every spec column exists, and
/// every NOT NULL column without a default is generated, or filled by a BEFORE INSERT row
/// trigger of its table (then a note says so). `columns` maps table -> its columns.
pub fn check_against_schema(
    spec: &Spec,
    schema: &str,
    columns: &HashMap<String, Vec<SchemaColumn>>,
    facts: &SchemaFacts,
) -> Result<Vec<SchemaNote>> {
    let mut notes = Vec::new();
    for table in &spec.tables {
        let Some(actual) = columns.get(&table.name) else {
            return Err(Error::usage(format!(
                "seed spec: table {} does not exist in schema {schema} (the migrations do not create it, or they have not run yet)",
                table.name
            )));
        };
        for column in &table.columns {
            if !actual.iter().any(|c| c.name == column.name) {
                return Err(Error::usage(format!(
                    "seed spec: table {}, column {}: the table has no such column (it has: {})",
                    table.name,
                    column.name,
                    actual
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        for c in actual {
            if c.required && !table.columns.iter().any(|s| s.name == c.name) {
                match facts.insert_triggers.get(&table.name) {
                    Some(triggers) if !table.disable_triggers => {
                        notes.push(SchemaNote::FilledByTrigger(format!(
                            "table {}, column {}: NOT NULL without a default and not in the spec: left to the BEFORE INSERT trigger {} to fill",
                            table.name,
                            c.name,
                            triggers.join(", ")
                        )));
                    }
                    _ => {
                        return Err(Error::usage(format!(
                            "seed spec: table {}, column {}: NOT NULL without a default, but the spec does not generate it{}",
                            table.name,
                            c.name,
                            if table.disable_triggers {
                                " (and `disable_triggers` keeps the table's triggers from filling it)"
                            } else {
                                ""
                            }
                        )));
                    }
                }
            }
        }
    }
    notes.extend(schema_notes(spec, facts));
    Ok(notes)
}

/// A column as the database has it.
#[derive(Debug, Clone)]
pub struct SchemaColumn {
    pub name: String,
    /// NOT NULL, no default, not identity, not generated.
    pub required: bool,
    /// As `format_type` shows it (`integer`, `character varying(40)`, `invoice_status`).
    pub type_name: String,
    /// pg_type.typname of the type, or of a domain's base type (`int4`, `varchar`, `numeric`).
    pub base_type: String,
    /// The type modifier (length, precision and scale), -1 when none.
    pub typmod: i32,
    /// The labels of an enum type, in order; empty for every other type.
    pub enum_labels: Vec<String>,
    /// GENERATED ALWAYS AS (...) STORED: the database computes it.
    pub generated: bool,
}

/// Groups (table, column) pairs by table.
pub fn group_columns(rows: Vec<(String, SchemaColumn)>) -> HashMap<String, Vec<SchemaColumn>> {
    let mut map: HashMap<String, Vec<SchemaColumn>> = HashMap::new();
    for (table, column) in rows {
        map.entry(table).or_default().push(column);
    }
    map
}

/// Profile tables that the spec does not know are a mistake worth stopping for.
pub fn check_profile_tables(spec: &Spec, profile: &crate::spec::profile::Profile) -> Result<()> {
    let unknown: BTreeMap<&str, ()> = profile
        .counts
        .keys()
        .chain(profile.per.keys())
        .filter(|t| spec.table(t).is_none())
        .map(|t| (t.as_str(), ()))
        .collect();
    if let Some(table) = unknown.keys().next() {
        return Err(Error::usage(format!(
            "profile {}: table {table} is not in the seed spec",
            profile.name
        )));
    }
    for (name, _) in profile.counts.iter() {
        let i = spec.table(name).expect("checked above");
        if let Source::PerParent { .. } = spec.tables[i].source {
            return Err(Error::usage(format!(
                "profile {}: [counts] {name}: this table has rows per parent; set [per] {name} = [min, max] instead",
                profile.name
            )));
        }
    }
    for (name, _) in profile.per.iter() {
        let i = spec.table(name).expect("checked above");
        if spec.tables[i].source == Source::Counted {
            return Err(Error::usage(format!(
                "profile {}: [per] {name}: this table is counted; set [counts] {name} = N instead",
                profile.name
            )));
        }
    }
    Ok(())
}
