//! seed.toml as written, and its validation into a `Spec`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::expr::{self, Expr, Scope};
use super::{
    At, Case, Children, ColumnSpec, Filter, FixedRows, Gen, Part, Source, Spec, TableSpec,
    data_file, load_order, values_file,
};
use crate::config::fnv1a64;
use crate::error::{Error, Result};
use crate::files::ReadFiles;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    version: u32,
    #[serde(default)]
    tables: Vec<RawTable>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    name: String,
    count: Option<RawCount>,
    per: Option<String>,
    /// Children per parent: numbers, or expressions over the parent row.
    min: Option<RawCount>,
    max: Option<RawCount>,
    fixed: Option<String>,
    /// Weighted children per parent: { 1 = 50, 2 = 35, 3 = 15 }; a weight may be an
    /// expression over the parent row: { 1 = "if(parent.vip, 10, 50)", 2 = 35 }.
    counts: Option<BTreeMap<String, RawCount>>,
    /// Only parents for which this expression holds get children.
    when: Option<String>,
    /// The probability that a parent gets children: a number, or an expression over the
    /// parent row.
    p: Option<RawP>,
    #[serde(default)]
    disable_triggers: bool,
    /// Column sets whose combined values are distinct: [["film_id", "actor_id"]].
    unique: Option<Vec<Vec<String>>>,
    #[serde(default)]
    columns: BTreeMap<String, toml::Table>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "gen", rename_all = "snake_case", deny_unknown_fields)]
enum RawGen {
    Serial {
        #[serde(default = "one")]
        start: i64,
    },
    Ordinal {
        #[serde(default = "one")]
        start: i64,
    },
    Uuid,
    Int {
        min: i64,
        max: i64,
    },
    Decimal {
        min: f64,
        max: f64,
        #[serde(default = "two")]
        scale: u32,
    },
    Bool {
        p: f64,
    },
    Choice {
        values: Vec<String>,
        weights: Option<Vec<u32>>,
    },
    Cycle {
        values: Vec<String>,
    },
    Pick {
        file: String,
    },
    Format {
        template: String,
    },
    Date {
        from: String,
        to: String,
    },
    Timestamp {
        from: String,
        to: String,
    },
    Ref {
        table: String,
        column: String,
        #[serde(rename = "where")]
        filter: Option<RawWhere>,
        within: Option<String>,
        #[serde(default)]
        distinct: bool,
    },
    Parent {
        column: String,
    },
    Constant {
        value: toml::Value,
    },
    Expr {
        expr: String,
    },
    Csv {
        file: String,
        field: String,
        group: Option<String>,
    },
}

/// A counted table's `count = N`, or a per-parent table's `count = "expression"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum RawCount {
    Rows(u64),
    Expr(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum RawP {
    Number(f64),
    Expr(String),
}

/// `where = { column = "value" }` or `where = "expression over the candidate row"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawWhere {
    Equals(BTreeMap<String, String>),
    Condition(String),
}

fn one() -> i64 {
    1
}
fn two() -> u32 {
    2
}

pub(super) fn load(seeds_dir: &Path) -> Result<Spec> {
    let file = seeds_dir.join("seed.toml");
    let mut files = ReadFiles::default();
    let text = files
        .read_to_string(&file)
        .map_err(|e| Error::usage(format!("cannot read the seed spec {}: {e}", file.display())))?;
    let raw: RawSpec =
        toml::from_str(&text).map_err(|e| crate::error::toml_error(&file, &text, &e))?;
    if !super::SUPPORTED_VERSIONS.contains(&raw.version) {
        return Err(Error::usage(format!(
            "{}: version {} is not supported by this dbtool (supported: {:?})",
            file.display(),
            raw.version,
            super::SUPPORTED_VERSIONS
        )));
    }
    let names: Vec<String> = raw.tables.iter().map(|t| t.name.clone()).collect();
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            return Err(Error::usage(format!(
                "{}: table {name} is declared twice",
                file.display()
            )));
        }
    }
    let index_of = |name: &str| names.iter().position(|n| n == name);

    // Columns in declaration order of each table (BTreeMap: by name, which is stable).
    let column_names: Vec<Vec<String>> = raw
        .tables
        .iter()
        .map(|t| t.columns.keys().cloned().collect())
        .collect();

    let mut tables = Vec::with_capacity(raw.tables.len());
    for (ti, table) in raw.tables.iter().enumerate() {
        let at = At {
            file: &file,
            table: &table.name,
            column: None,
        };
        let source = match &table.per {
            None => {
                if table.min.is_some() || table.max.is_some() {
                    return Err(at.error("`min` and `max` go with `per = \"parent table\"`"));
                }
                Source::Counted
            }
            Some(parent) => {
                let parent = index_of(parent)
                    .ok_or_else(|| at.error(format!("per: unknown table {parent}")))?;
                if parent == ti {
                    return Err(at.error("per: a table cannot be its own parent"));
                }
                if matches!(table.count, Some(RawCount::Rows(_))) || table.fixed.is_some() {
                    return Err(at.error(
                        "a table with rows per parent takes no `count = N` or `fixed` (a count from the parent row is `count = \"expression\"`)",
                    ));
                }
                let number = |c: &Option<RawCount>| match c {
                    Some(RawCount::Rows(n)) => Some(*n),
                    _ => None,
                };
                let is_expr = |c: &Option<RawCount>| matches!(c, Some(RawCount::Expr(_)));
                let (min, max) = match &table.counts {
                    None if table.count.is_some() => {
                        if table.min.is_some() || is_expr(&table.max) {
                            return Err(at.error(
                                "give `count = \"expression\"` or `min`/`max`, not both (`max = N` alone caps the expression)",
                            ));
                        }
                        (0, number(&table.max).unwrap_or(super::MAX_EXPR_CHILDREN))
                    }
                    // A range from the parent row: at most `max` when it is a number.
                    None if is_expr(&table.min) || is_expr(&table.max) => {
                        (0, number(&table.max).unwrap_or(super::MAX_EXPR_CHILDREN))
                    }
                    None => (
                        number(&table.min).unwrap_or(1),
                        number(&table.max).unwrap_or(1),
                    ),
                    Some(_) if table.min.is_some() || table.max.is_some() => {
                        return Err(at.error("give `counts` (weighted) or `min`/`max`, not both"));
                    }
                    Some(weights) => match numeric_weights(weights) {
                        Some(numbers) => {
                            let weights = crate::spec::profile::weighted_counts(&numbers)
                                .map_err(|e| at.error(e))?;
                            (weights[0].0, weights[weights.len() - 1].0)
                        }
                        None => {
                            let counts = weight_expressions(weights, &at)?;
                            (counts[0].0, counts[counts.len() - 1].0)
                        }
                    },
                };
                if min > max {
                    return Err(at.error(format!("min {min} is larger than max {max}")));
                }
                Source::PerParent { parent, min, max }
            }
        };
        let mut columns = Vec::with_capacity(table.columns.len());
        for (name, body) in &table.columns {
            let at = At {
                file: &file,
                table: &table.name,
                column: Some(name),
            };
            let mut body = body.clone();
            let null = match body.remove("null") {
                None => 0.0,
                Some(v) => probability(&v)
                    .ok_or_else(|| at.error("`null` must be a probability between 0 and 1"))?,
            };
            let unique = match body.remove("unique") {
                None => false,
                Some(toml::Value::Boolean(b)) => b,
                Some(_) => return Err(at.error("`unique` is true or false")),
            };
            let mut ctx = Ctx {
                seeds_dir,
                files: &mut files,
                names: &names,
                column_names: &column_names,
                ti,
                source,
            };
            let generator = column_gen(body, &mut ctx, &at)?;
            columns.push(ColumnSpec {
                name: name.clone(),
                hash: fnv1a64(name.as_bytes()),
                null,
                generator,
                unique,
            });
        }
        let fixed = match &table.fixed {
            None => None,
            Some(name) => {
                let path = data_file(seeds_dir, name).map_err(|e| at.error(e))?;
                Some(read_fixed(&path, &columns, &at, &mut files)?)
            }
        };
        let children = children(table, source, &at)?;
        let mut unique = Vec::new();
        for set in table.unique.iter().flatten() {
            let mut indices = Vec::with_capacity(set.len());
            for name in set {
                let c = columns
                    .iter()
                    .position(|c| c.name == *name)
                    .ok_or_else(|| {
                        at.error(format!(
                            "unique: {name} is not a column of this table's spec"
                        ))
                    })?;
                if indices.contains(&c) {
                    return Err(at.error(format!("unique: {name} is named twice in one set")));
                }
                indices.push(c);
            }
            match indices.as_slice() {
                [] => return Err(at.error("unique: a set names at least one column")),
                [one] => columns[*one].unique = true,
                _ => unique.push(indices),
            }
        }
        tables.push(TableSpec {
            name: table.name.clone(),
            hash: fnv1a64(table.name.as_bytes()),
            source,
            columns,
            fixed,
            default_count: match table.count {
                Some(RawCount::Rows(n)) => Some(n),
                _ => None,
            },
            children,
            disable_triggers: table.disable_triggers,
            unique,
        });
    }
    let depends: Vec<Vec<usize>> = tables.iter().map(|t| t.dependencies().collect()).collect();
    let order = load_order(&names, &depends, &file)?;
    // Renumber table indices into load order.
    let mut new_index = vec![0; tables.len()];
    for (new, &old) in order.iter().enumerate() {
        new_index[old] = new;
    }
    let mut slots: Vec<Option<TableSpec>> = tables.into_iter().map(Some).collect();
    let mut ordered: Vec<TableSpec> = order
        .iter()
        .map(|&old| slots[old].take().expect("each table once"))
        .collect();
    for table in &mut ordered {
        if let Source::PerParent { parent, .. } = &mut table.source {
            *parent = new_index[*parent];
        }
        for column in &mut table.columns {
            if let Gen::Ref { table, .. } = &mut column.generator {
                *table = new_index[*table];
            }
        }
    }
    resolve_all(&mut ordered, seeds_dir, &mut files, &file)?;
    check_cycles(&ordered, &file)?;
    check_positions(&ordered, &file)?;
    check_constant_arithmetic(&ordered, &file)?;
    Ok(Spec {
        version: raw.version,
        tables: ordered,
        files,
        path: file,
    })
}

struct Ctx<'a> {
    seeds_dir: &'a Path,
    files: &'a mut ReadFiles,
    names: &'a [String],
    column_names: &'a [Vec<String>],
    ti: usize,
    source: Source,
}

impl Ctx<'_> {
    fn index_of(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    fn column_of(&self, table: usize, name: &str) -> Option<usize> {
        self.column_names[table].iter().position(|c| c == name)
    }
}

/// A column's generator from its body (without `null` and `unique`). `when` wraps the rest of
/// the body, with `else` (another body) where the condition does not hold; `expr` alone is
/// `gen = "expr"`.
fn column_gen(mut body: toml::Table, ctx: &mut Ctx, at: &At) -> Result<Gen> {
    if let Some(when) = body.remove("when") {
        let toml::Value::String(cond) = when else {
            return Err(at.error("`when` is an expression in a string"));
        };
        let otherwise = match body.remove("else") {
            None => Gen::Constant { value: None },
            Some(toml::Value::Table(t)) => column_gen(t, ctx, at)?,
            Some(_) => return Err(at.error("`else` is a generator: else = { gen = ... }")),
        };
        let then = column_gen(body, ctx, at)?;
        return Ok(Gen::When {
            cond: parse_expr(&cond, at)?,
            then: Box::new(then),
            otherwise: Box::new(otherwise),
        });
    }
    if body.contains_key("else") {
        return Err(at.error("`else` goes with `when`"));
    }
    if body.contains_key("expr") && !body.contains_key("gen") {
        body.insert("gen".into(), toml::Value::String("expr".into()));
    }
    let raw_gen = RawGen::deserialize(toml::Value::Table(body))
        .map_err(|e| at.error(e.to_string().trim_end()))?;
    Ok(match raw_gen {
        RawGen::Serial { start } => Gen::Serial { start },
        RawGen::Ordinal { start } => Gen::Ordinal { start },
        RawGen::Uuid => Gen::Uuid,
        RawGen::Int { min, max } => {
            if min > max {
                return Err(at.error(format!("min {min} is larger than max {max}")));
            }
            Gen::Int { min, max }
        }
        RawGen::Decimal { min, max, scale } => {
            if scale > 9 || min > max || !min.is_finite() || !max.is_finite() {
                return Err(at.error("decimal needs min <= max and a scale of 0 to 9"));
            }
            let factor = 10f64.powi(scale as i32);
            Gen::Decimal {
                min: (min * factor).round() as i64,
                max: (max * factor).round() as i64,
                scale,
            }
        }
        RawGen::Bool { p } => {
            if !(0.0..=1.0).contains(&p) {
                return Err(at.error("p must be a probability between 0 and 1"));
            }
            Gen::Bool { p }
        }
        RawGen::Choice { values, weights } => {
            let weights = weights.unwrap_or_else(|| vec![1; values.len()]);
            if values.is_empty() || weights.len() != values.len() {
                return Err(at.error(
                    "choice needs values, and as many weights as values when weights are given",
                ));
            }
            let cumulative: Vec<u64> = weights
                .iter()
                .scan(0u64, |sum, &w| {
                    *sum += u64::from(w);
                    Some(*sum)
                })
                .collect();
            if cumulative.last() == Some(&0) {
                return Err(at.error("the weights add up to zero"));
            }
            Gen::Choice { values, cumulative }
        }
        RawGen::Cycle { values } => {
            if values.is_empty() {
                return Err(at.error("cycle needs at least one value"));
            }
            Gen::Cycle { values }
        }
        RawGen::Pick { file: name } => {
            let values = values_file(ctx.seeds_dir, &name, ctx.files).map_err(|e| at.error(e))?;
            Gen::Pick { values }
        }
        RawGen::Format { template } => Gen::Format {
            parts: parse_template(&template, &|c| ctx.column_of(ctx.ti, c))
                .map_err(|e| at.error(e))?,
        },
        RawGen::Date { from, to } => {
            let (from, to) = (offset(&from, at)?, offset(&to, at)?);
            let (from, to) = (from.div_euclid(86_400), to.div_euclid(86_400));
            if from > to {
                return Err(at.error("`from` is after `to`"));
            }
            Gen::Date { from, to }
        }
        RawGen::Timestamp { from, to } => {
            let (from, to) = (offset(&from, at)?, offset(&to, at)?);
            if from > to {
                return Err(at.error("`from` is after `to`"));
            }
            Gen::Timestamp { from, to }
        }
        RawGen::Ref {
            table: target,
            column,
            filter,
            within,
            distinct,
        } => {
            let t = ctx
                .index_of(&target)
                .ok_or_else(|| at.error(format!("ref: unknown table {target}")))?;
            if t == ctx.ti {
                return Err(at.error("ref: a table cannot reference its own rows"));
            }
            let c = ctx.column_of(t, &column).ok_or_else(|| {
                at.error(format!(
                    "ref: table {target} has no column {column} in the spec"
                ))
            })?;
            let filter = match filter {
                None => None,
                Some(RawWhere::Condition(cond)) => Some(Filter::Condition {
                    cond: parse_expr(&cond, at)?,
                    outer: false,
                }),
                Some(RawWhere::Equals(f)) if f.len() == 1 => {
                    let (fc, value) = f.into_iter().next().expect("one entry");
                    let fi = ctx.column_of(t, &fc).ok_or_else(|| {
                        at.error(format!(
                            "ref: `where` names {fc}, which table {target} does not generate"
                        ))
                    })?;
                    Some(Filter::Equals(fi, value))
                }
                Some(_) => return Err(at.error("ref: `where` takes one column = value")),
            };
            let within = match within {
                None => None,
                Some(w) => {
                    if filter.is_some() {
                        return Err(at.error("ref: use `where` or `within`, not both"));
                    }
                    Some(ctx.column_of(ctx.ti, &w).ok_or_else(|| {
                        at.error(format!(
                            "ref: `within` names {w}, which is not a column of this table"
                        ))
                    })?)
                }
            };
            if distinct {
                if !matches!(ctx.source, Source::PerParent { .. }) {
                    return Err(at.error(
                        "ref: `distinct = true` draws without replacement among the children of one parent; the table needs `per = \"parent table\"`",
                    ));
                }
                if within.is_some() {
                    return Err(at.error("ref: use `distinct` or `within`, not both"));
                }
            }
            Gen::Ref {
                table: t,
                column: c,
                filter,
                within,
                distinct,
            }
        }
        RawGen::Parent { column } => {
            let Source::PerParent { parent, .. } = ctx.source else {
                return Err(at.error("parent: the table has no `per` parent"));
            };
            let c = ctx.column_of(parent, &column).ok_or_else(|| {
                at.error(format!(
                    "parent: table {} has no column {column} in the spec",
                    ctx.names[parent]
                ))
            })?;
            Gen::Parent { column: c }
        }
        RawGen::Constant { value } => Gen::Constant {
            value: Some(constant_text(value).map_err(|e| at.error(e))?),
        },
        RawGen::Expr { expr } => Gen::Expr {
            expr: parse_expr(&expr, at)?,
        },
        RawGen::Csv { file, field, group } => {
            let path = data_file(ctx.seeds_dir, &file).map_err(|e| at.error(e))?;
            let (headers, rows) = read_csv(&path, ctx.files).map_err(|e| at.error(e))?;
            let f = headers.iter().position(|h| *h == field).ok_or_else(|| {
                at.error(format!(
                    "{} has no field {field} (it has: {})",
                    path.display(),
                    headers.join(", ")
                ))
            })?;
            if rows.is_empty() {
                return Err(at.error(format!("{} has no rows", path.display())));
            }
            let stream = fnv1a64(format!("csv:{file}:{}", group.unwrap_or_default()).as_bytes());
            Gen::Csv {
                rows,
                field: f,
                stream,
            }
        }
    })
}

fn children(table: &RawTable, source: Source, at: &At) -> Result<Children> {
    if source == Source::Counted {
        if table.counts.is_some()
            || table.when.is_some()
            || table.p.is_some()
            || matches!(table.count, Some(RawCount::Expr(_)))
        {
            return Err(at.error(
                "`counts`, `when`, `p` and `count = \"expression\"` go with `per = \"parent table\"`",
            ));
        }
        return Ok(Children {
            p: 1.0,
            ..Children::default()
        });
    }
    let (p, p_expr) = match &table.p {
        None => (1.0, None),
        Some(RawP::Number(p)) => (*p, None),
        Some(RawP::Expr(e)) => (1.0, Some(parse_expr(e, at)?)),
    };
    if !(0.0..=1.0).contains(&p) {
        return Err(at.error("p must be a probability between 0 and 1"));
    }
    let bound = |c: &Option<RawCount>| -> Result<Expr> {
        Ok(match c {
            Some(RawCount::Expr(e)) => parse_expr(e, at)?,
            Some(RawCount::Rows(n)) => Expr::Lit(super::Value::Int(
                i64::try_from(*n).map_err(|_| at.error("min/max: too large"))?,
            )),
            None => Expr::Lit(super::Value::Int(1)),
        })
    };
    let range = if matches!(table.min, Some(RawCount::Expr(_)))
        || matches!(table.max, Some(RawCount::Expr(_)))
    {
        Some((bound(&table.min)?, bound(&table.max)?))
    } else {
        None
    };
    let count = match &table.count {
        Some(RawCount::Expr(e)) => {
            if table.counts.is_some() {
                return Err(
                    at.error("give `count = \"expression\"` or `counts` (weighted), not both")
                );
            }
            Some(parse_expr(e, at)?)
        }
        _ => None,
    };
    Ok(Children {
        weights: match table.counts.as_ref().and_then(numeric_weights) {
            None => None,
            Some(w) => Some(crate::spec::profile::weighted_counts(&w).map_err(|e| at.error(e))?),
        },
        weight_exprs: match &table.counts {
            Some(w) if numeric_weights(w).is_none() => Some(weight_expressions(w, at)?),
            _ => None,
        },
        when: match &table.when {
            None => None,
            Some(w) => Some(parse_expr(w, at)?),
        },
        p,
        count,
        p_expr,
        range,
    })
}

/// Weighted counts whose weights are all numbers (as before expressions were allowed).
fn numeric_weights(weights: &BTreeMap<String, RawCount>) -> Option<BTreeMap<String, u64>> {
    weights
        .iter()
        .map(|(k, w)| match w {
            RawCount::Rows(n) => Some((k.clone(), *n)),
            RawCount::Expr(_) => None,
        })
        .collect()
}

/// Weighted counts with an expression among the weights: (count, weight) ascending by count,
/// a number weight as a literal.
fn weight_expressions(weights: &BTreeMap<String, RawCount>, at: &At) -> Result<Vec<(u64, Expr)>> {
    let mut counts = weights
        .iter()
        .map(|(k, w)| {
            let n = k
                .trim()
                .parse::<u64>()
                .map_err(|_| at.error(format!("counts: {k:?} is not a number of children")))?;
            let weight = match w {
                RawCount::Rows(n) => Expr::Lit(super::Value::Int(
                    i64::try_from(*n).map_err(|_| at.error("counts: a weight is too large"))?,
                )),
                RawCount::Expr(e) => parse_expr(e, at)?,
            };
            Ok((n, weight))
        })
        .collect::<Result<Vec<_>>>()?;
    counts.sort_by_key(|(n, _)| *n);
    Ok(counts)
}

/// `parent.x` -> `x` in an unresolved expression evaluated in the parent row.
fn strip_parent(e: &mut Expr) {
    match e {
        Expr::Name(path) if path.len() > 1 && path[0] == "parent" => {
            path.remove(0);
        }
        Expr::Call(_, args) | Expr::Func(_, args) | Expr::Array(args) => {
            args.iter_mut().for_each(strip_parent)
        }
        Expr::Template(parts) => parts.iter_mut().for_each(|(e, _)| strip_parent(e)),
        Expr::Object(fields) => fields.iter_mut().for_each(|(_, e)| strip_parent(e)),
        Expr::Neg(a) | Expr::Not(a) => strip_parent(a),
        Expr::Binary(_, a, b) => {
            strip_parent(a);
            strip_parent(b);
        }
        _ => {}
    }
}

fn parse_expr(text: &str, at: &At) -> Result<Expr> {
    expr::parse(text).map_err(|e| {
        // A long expression is quoted by its start: the error stays one readable line.
        const QUOTED: usize = 60;
        let quoted = match text.char_indices().nth(QUOTED) {
            Some((end, _)) => format!("{:?}...", &text[..end]),
            None => format!("{text:?}"),
        };
        at.error(format!("in {quoted}: {e}"))
    })
}

/// A CSV data file: its header and its rows (every field as text).
fn read_csv(
    path: &Path,
    files: &mut ReadFiles,
) -> std::result::Result<(Vec<String>, Vec<Vec<String>>), String> {
    let bytes = files
        .read(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut reader = csv::Reader::from_reader(bytes.as_slice());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| format!("{}: {e}", path.display()))?;
        rows.push(record.iter().map(String::from).collect());
    }
    Ok((headers, rows))
}

/// A constant is one scalar: a table or an array has no single text for a column to take.
fn constant_text(value: toml::Value) -> std::result::Result<String, String> {
    match value {
        toml::Value::String(s) => Ok(s),
        toml::Value::Array(_) | toml::Value::Table(_) => Err(format!(
            "constant: `value = {value}` is {}; give one string, number, boolean or date",
            if value.is_array() {
                "an array"
            } else {
                "a table"
            }
        )),
        other => Ok(other.to_string()),
    }
}

fn probability(value: &toml::Value) -> Option<f64> {
    let p = match value {
        toml::Value::Float(f) => *f,
        toml::Value::Integer(i) => *i as f64,
        _ => return None,
    };
    (0.0..=1.0).contains(&p).then_some(p)
}

/// `-730d`, `0d`, `+12h`: a signed human duration relative to the epoch, in seconds.
fn offset(text: &str, at: &At) -> Result<i64> {
    let text = text.trim();
    let (sign, rest) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text.strip_prefix('+').unwrap_or(text)),
    };
    let duration = if rest.trim_end_matches(|c: char| c.is_ascii_alphabetic()) == "0" {
        Duration::ZERO
    } else {
        humantime::parse_duration(rest).map_err(|e| {
            at.error(format!(
                "{text:?} is not an offset from the epoch such as \"-730d\" or \"+12h\": {e}"
            ))
        })?
    };
    Ok(sign * duration.as_secs() as i64)
}

/// `{first_name}.{last_name|lower}@example.com`; `{{` and `}}` are literal braces.
fn parse_template(
    template: &str,
    column_of: &dyn Fn(&str) -> Option<usize>,
) -> std::result::Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => name.push(c),
                        None => return Err(format!("unclosed {{ in template {template:?}")),
                    }
                }
                let (column, case) = match name.split_once('|') {
                    None => (name.as_str(), Case::Keep),
                    Some((c, "lower")) => (c, Case::Lower),
                    Some((c, "upper")) => (c, Case::Upper),
                    Some((_, other)) => {
                        return Err(format!("unknown filter |{other} (use |lower or |upper)"));
                    }
                };
                let index = column_of(column.trim()).ok_or_else(|| {
                    format!("template names {column}, which is not a column of this table")
                })?;
                if !text.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut text)));
                }
                parts.push(Part::Column(index, case));
            }
            '}' => return Err(format!("unmatched }} in template {template:?}")),
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    Ok(parts)
}

fn read_fixed(
    path: &Path,
    columns: &[ColumnSpec],
    at: &At,
    files: &mut ReadFiles,
) -> Result<FixedRows> {
    let bytes = files
        .read(path)
        .map_err(|e| at.error(format!("cannot read {}: {e}", path.display())))?;
    let mut reader = csv::Reader::from_reader(bytes.as_slice());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| at.error(format!("{}: {e}", path.display())))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    for header in &headers {
        if !columns.iter().any(|c| &c.name == header) {
            return Err(at.error(format!(
                "{}: column {header} is not in the table's spec columns",
                path.display()
            )));
        }
    }
    let positions = columns
        .iter()
        .map(|c| headers.iter().position(|h| *h == c.name))
        .collect();
    let mut rows = Vec::new();
    let mut lines = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| at.error(format!("{}: {e}", path.display())))?;
        lines.push(record.position().map_or(0, csv::Position::line));
        // An empty field is NULL.
        rows.push(
            record
                .iter()
                .map(|f| (!f.is_empty()).then(|| f.to_string()))
                .collect(),
        );
    }
    Ok(FixedRows {
        columns: positions,
        rows,
        file: path.to_path_buf(),
        lines,
    })
}

/// The cells a generator reads, as (table, column), evaluated in a row of `table`.
fn gen_dependencies(
    generator: &Gen,
    table: usize,
    tables: &[TableSpec],
    into: &mut Vec<(usize, usize)>,
) {
    match generator {
        Gen::Format { parts } => into.extend(parts.iter().filter_map(|p| match p {
            Part::Column(c, _) => Some((table, *c)),
            Part::Text(_) => None,
        })),
        Gen::Expr { expr } => expr.dependencies(table, tables, into),
        Gen::When {
            cond,
            then,
            otherwise,
        } => {
            cond.dependencies(table, tables, into);
            gen_dependencies(then, table, tables, into);
            gen_dependencies(otherwise, table, tables, into);
        }
        Gen::Ref {
            table: target,
            column,
            filter,
            within,
            ..
        } => {
            into.push((*target, *column));
            match filter {
                Some(Filter::Equals(f, _)) => into.push((*target, *f)),
                Some(Filter::Condition { cond, .. }) => {
                    cond.dependencies(*target, tables, into);
                    cond.outers(&mut |e| e.dependencies(table, tables, into));
                }
                None => {}
            }
            if let Some(w) = within {
                into.push((table, *w));
            }
        }
        Gen::Parent { column } => {
            if let Source::PerParent { parent, .. } = tables[table].source {
                into.push((parent, *column));
            }
        }
        _ => {}
    }
}

/// A `constant` is text: `value = 5` is the text "5". Used in arithmetic it would be read as a
/// number by luck of its text, so it is refused, naming where, and the fix.
fn check_constant_arithmetic(tables: &[TableSpec], file: &Path) -> Result<()> {
    /// The numeric constant an operand reads, as (table, column, text).
    fn constant<'t>(
        e: &Expr,
        table: usize,
        tables: &'t [TableSpec],
    ) -> Option<(usize, usize, &'t str)> {
        let (t, c) = match e {
            Expr::Column(c) => (table, *c),
            Expr::Path {
                start,
                tables: reached,
                column,
                ..
            } => {
                let t = match (reached.last(), start, tables[table].source) {
                    (Some(t), ..) => *t,
                    (None, expr::Start::Parent, Source::PerParent { parent, .. }) => parent,
                    _ => table,
                };
                (t, *column)
            }
            _ => return None,
        };
        match &tables[t].columns[c].generator {
            Gen::Constant { value: Some(text) }
                if text.trim().parse::<i64>().is_ok()
                    || text.trim().parse::<rust_decimal::Decimal>().is_ok() =>
            {
                Some((t, c, text.as_str()))
            }
            _ => None,
        }
    }
    fn walk(e: &Expr, table: usize, tables: &[TableSpec]) -> std::result::Result<(), String> {
        use expr::BinOp::{Add, Div, Mul, Rem, Sub};
        let operands: Vec<&Expr> = match e {
            Expr::Binary(Add | Sub | Mul | Div | Rem, a, b) => vec![a, b],
            Expr::Neg(a) => vec![a],
            _ => Vec::new(),
        };
        for operand in operands {
            if let Some((t, c, text)) = constant(operand, table, tables) {
                let name = &tables[t].columns[c].name;
                return Err(format!(
                    "uses {}.{name} in arithmetic, but it is a `constant`, which is text ({text:?}); \
                     make it a number with {name} = {{ expr = \"{}\" }}",
                    tables[t].name,
                    text.trim()
                ));
            }
        }
        match e {
            Expr::Template(parts) => parts.iter().try_for_each(|(p, _)| walk(p, table, tables)),
            Expr::Neg(a) | Expr::Not(a) => walk(a, table, tables),
            Expr::Binary(_, a, b) => {
                walk(a, table, tables)?;
                walk(b, table, tables)
            }
            Expr::Func(_, args) | Expr::Array(args) => {
                args.iter().try_for_each(|a| walk(a, table, tables))
            }
            Expr::Object(fields) => fields.iter().try_for_each(|(_, a)| walk(a, table, tables)),
            Expr::Aggregate {
                table: child,
                of: Some(of),
                ..
            } => walk(of, *child, tables),
            _ => Ok(()),
        }
    }
    fn walk_gen(g: &Gen, table: usize, tables: &[TableSpec]) -> std::result::Result<(), String> {
        match g {
            Gen::Expr { expr } => walk(expr, table, tables),
            Gen::When {
                cond,
                then,
                otherwise,
            } => {
                walk(cond, table, tables)?;
                walk_gen(then, table, tables)?;
                walk_gen(otherwise, table, tables)
            }
            _ => Ok(()),
        }
    }
    for (ti, table) in tables.iter().enumerate() {
        for column in &table.columns {
            walk_gen(&column.generator, ti, tables).map_err(|e| {
                At {
                    file,
                    table: &table.name,
                    column: Some(&column.name),
                }
                .error(e)
            })?;
        }
        if let Source::PerParent { parent, .. } = table.source {
            for e in table.children.expressions() {
                walk(e, parent, tables).map_err(|e| {
                    At {
                        file,
                        table: &table.name,
                        column: None,
                    }
                    .error(e)
                })?;
            }
        }
    }
    Ok(())
}

/// Whether a column's value depends on the row's position in its table (known only while the
/// table is enumerated in order).
fn positional(tables: &[TableSpec], table: usize, column: usize, seen: &mut Vec<usize>) -> bool {
    if seen.contains(&column) {
        return false;
    }
    seen.push(column);
    let generator = &tables[table].columns[column].generator;
    if let Gen::Serial { .. } = generator {
        return true;
    }
    let mut deps = Vec::new();
    gen_dependencies(generator, table, tables, &mut deps);
    deps.iter()
        .any(|&(t, c)| t == table && positional(tables, table, c, seen))
}

/// A per-parent table's row position is not known when another row reaches one of its rows
/// (a ref, a parent, a path or an aggregate), so such a reach may not read a column that
/// depends on it.
fn check_positions(tables: &[TableSpec], file: &Path) -> Result<()> {
    for (ti, table) in tables.iter().enumerate() {
        for column in &table.columns {
            let at = At {
                file,
                table: &table.name,
                column: Some(&column.name),
            };
            let mut deps = Vec::new();
            gen_dependencies(&column.generator, ti, tables, &mut deps);
            for (t, c) in deps {
                let target_table = &tables[t];
                if t != ti
                    && matches!(target_table.source, Source::PerParent { .. })
                    && positional(tables, t, c, &mut Vec::new())
                {
                    return Err(at.error(format!(
                        "reads {}.{}, which depends on the row's position in a table generated per parent; \
                         key such tables with a uuid or a per-parent ordinal",
                        target_table.name, target_table.columns[c].name
                    )));
                }
            }
            if let Gen::Ref {
                table: target,
                distinct: true,
                ..
            } = &column.generator
                && tables[*target].source != Source::Counted
            {
                return Err(at.error(
                    "ref with `distinct` needs a counted table (not one generated per parent)",
                ));
            }
            if let Gen::Ref {
                table: target,
                filter: Some(_),
                ..
            } = &column.generator
                && tables[*target].source != Source::Counted
            {
                return Err(at.error(
                    "ref with `where` needs a counted table (not one generated per parent)",
                ));
            }
            if let Gen::Ref {
                table: target,
                within: Some(w),
                ..
            } = &column.generator
            {
                let ancestor = match &table.columns[*w].generator {
                    Gen::Ref { table, .. } => Some(*table),
                    Gen::Parent { .. } => match table.source {
                        Source::PerParent { parent, .. } => Some(parent),
                        Source::Counted => None,
                    },
                    _ => None,
                };
                let Some(ancestor) = ancestor else {
                    return Err(at.error(format!(
                        "ref: `within` names {}, which is not a `ref` or `parent` column",
                        table.columns[*w].name
                    )));
                };
                let mut up = *target;
                let mut found = false;
                while let Source::PerParent { parent, .. } = tables[up].source {
                    if parent == ancestor {
                        found = true;
                        break;
                    }
                    up = parent;
                }
                if !found {
                    return Err(at.error(format!(
                        "ref: `within = \"{}\"` points at {}, which is not an ancestor (`per`) of {}",
                        table.columns[*w].name, tables[ancestor].name, tables[*target].name
                    )));
                }
            }
        }
    }
    Ok(())
}

/// A column may not depend on itself through other columns, here or in related rows; the error
/// names every column of the cycle.
fn check_cycles(tables: &[TableSpec], file: &Path) -> Result<()> {
    let ids: Vec<Vec<usize>> = {
        let mut next = 0;
        tables
            .iter()
            .map(|t| {
                (0..t.columns.len())
                    .map(|_| {
                        next += 1;
                        next - 1
                    })
                    .collect()
            })
            .collect()
    };
    let nodes: Vec<(usize, usize)> = tables
        .iter()
        .enumerate()
        .flat_map(|(t, table)| (0..table.columns.len()).map(move |c| (t, c)))
        .collect();
    let edges: Vec<Vec<(usize, usize)>> = nodes
        .iter()
        .map(|&(t, c)| {
            let mut deps = Vec::new();
            gen_dependencies(&tables[t].columns[c].generator, t, tables, &mut deps);
            deps
        })
        .collect();
    let mut state = vec![0u8; nodes.len()]; // 0 new, 1 on the stack, 2 done
    let mut stack: Vec<usize> = Vec::new();
    fn visit(
        n: usize,
        ids: &[Vec<usize>],
        edges: &[Vec<(usize, usize)>],
        state: &mut [u8],
        stack: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        state[n] = 1;
        stack.push(n);
        for &(t, c) in &edges[n] {
            let m = ids[t][c];
            match state[m] {
                1 => {
                    let from = stack.iter().position(|&s| s == m).expect("on the stack");
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(m);
                    return Some(cycle);
                }
                0 => {
                    if let Some(cycle) = visit(m, ids, edges, state, stack) {
                        return Some(cycle);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state[n] = 2;
        None
    }
    for n in 0..nodes.len() {
        if state[n] == 0
            && let Some(cycle) = visit(n, &ids, &edges, &mut state, &mut stack)
        {
            let names: Vec<String> = cycle
                .iter()
                .map(|&i| {
                    let (t, c) = nodes[i];
                    format!("{}.{}", tables[t].name, tables[t].columns[c].name)
                })
                .collect();
            let (t, c) = nodes[cycle[0]];
            return Err(At {
                file,
                table: &tables[t].name,
                column: Some(&tables[t].columns[c].name),
            }
            .error(format!("a cycle among columns: {}", names.join(" -> "))));
        }
    }
    Ok(())
}

/// Resolves the names in every expression against the tables in their final order.
fn resolve_all(
    tables: &mut [TableSpec],
    seeds_dir: &Path,
    files: &mut ReadFiles,
    file: &Path,
) -> Result<()> {
    fn resolve_gen(
        generator: &mut Gen,
        table: usize,
        scope: &mut Scope,
    ) -> std::result::Result<(), String> {
        match generator {
            Gen::Expr { expr } => scope.resolve(expr, table),
            Gen::When {
                cond,
                then,
                otherwise,
            } => {
                scope
                    .resolve(cond, table)
                    .map_err(|e| format!("when: {e}"))?;
                resolve_gen(then, table, scope)?;
                resolve_gen(otherwise, table, scope)
            }
            Gen::Ref {
                table: target,
                filter: Some(Filter::Condition { cond, outer }),
                distinct,
                ..
            } => {
                *outer = scope
                    .resolve_outer(cond, table)
                    .map_err(|e| format!("where: {e}"))?;
                if *outer && *distinct {
                    return Err(
                        "ref: `distinct` with a `where` that reads the referencing row (parent. or this.) is not supported"
                            .into(),
                    );
                }
                scope.resolve(cond, *target).map_err(|e| {
                    format!("where (over a row of {}): {e}", scope.tables[*target].name)
                })
            }
            _ => Ok(()),
        }
    }
    for ti in 0..tables.len() {
        if let Source::PerParent { parent, .. } = tables[ti].source {
            let mut children = std::mem::take(&mut tables[ti].children);
            for (what, e) in children.expressions_mut() {
                // Over the parent row, where `parent.x` names the parent's x too.
                if what != "when" {
                    strip_parent(e);
                }
                let result = Scope {
                    tables,
                    seeds_dir,
                    files,
                }
                .resolve(e, parent);
                result.map_err(|e| {
                    At {
                        file,
                        table: &tables[ti].name,
                        column: None,
                    }
                    .error(format!("{what} (over the parent row): {e}"))
                })?;
            }
            tables[ti].children = children;
        }
        for ci in 0..tables[ti].columns.len() {
            let mut generator = std::mem::replace(&mut tables[ti].columns[ci].generator, Gen::Uuid);
            let result = resolve_gen(
                &mut generator,
                ti,
                &mut Scope {
                    tables,
                    seeds_dir,
                    files,
                },
            );
            tables[ti].columns[ci].generator = generator;
            result.map_err(|e| {
                At {
                    file,
                    table: &tables[ti].name,
                    column: Some(&tables[ti].columns[ci].name),
                }
                .error(e)
            })?;
        }
    }
    Ok(())
}
