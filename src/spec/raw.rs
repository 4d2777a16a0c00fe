//! seed.toml as written, and its validation into a `Spec`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{At, Case, ColumnSpec, FixedRows, Gen, Part, Source, Spec, TableSpec, load_order};
use crate::config::fnv1a64;
use crate::error::{Error, Result};

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
    count: Option<u64>,
    per: Option<String>,
    min: Option<u64>,
    max: Option<u64>,
    fixed: Option<String>,
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
        filter: Option<BTreeMap<String, String>>,
    },
    Parent {
        column: String,
    },
    Constant {
        value: toml::Value,
    },
}

fn one() -> i64 {
    1
}
fn two() -> u32 {
    2
}

pub(super) fn load(seeds_dir: &Path) -> Result<Spec> {
    let file = seeds_dir.join("seed.toml");
    let text = std::fs::read_to_string(&file)
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
    let column_of = |table: usize, name: &str| column_names[table].iter().position(|c| c == name);

    let mut files = vec![file.clone()];
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
                if table.count.is_some() || table.fixed.is_some() {
                    return Err(
                        at.error("a table with rows per parent takes no `count` or `fixed`")
                    );
                }
                let (min, max) = (table.min.unwrap_or(1), table.max.unwrap_or(1));
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
            let raw_gen = RawGen::deserialize(toml::Value::Table(body))
                .map_err(|e| at.error(e.to_string().trim_end()))?;
            let generator = match raw_gen {
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
                    let path = data_file(seeds_dir, &name).map_err(|e| at.error(e))?;
                    let text = std::fs::read_to_string(&path).map_err(|e| {
                        at.error(format!("cannot read the data file {}: {e}", path.display()))
                    })?;
                    let values: Vec<String> = text
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(String::from)
                        .collect();
                    if values.is_empty() {
                        return Err(at.error(format!("the data file {} is empty", path.display())));
                    }
                    files.push(path);
                    Gen::Pick { values }
                }
                RawGen::Format { template } => Gen::Format {
                    parts: parse_template(&template, &|c| column_of(ti, c))
                        .map_err(|e| at.error(e))?,
                },
                RawGen::Date { from, to } => {
                    let (from, to) = (offset(&from, &at)?, offset(&to, &at)?);
                    let (from, to) = (from.div_euclid(86_400), to.div_euclid(86_400));
                    if from > to {
                        return Err(at.error("`from` is after `to`"));
                    }
                    Gen::Date { from, to }
                }
                RawGen::Timestamp { from, to } => {
                    let (from, to) = (offset(&from, &at)?, offset(&to, &at)?);
                    if from > to {
                        return Err(at.error("`from` is after `to`"));
                    }
                    Gen::Timestamp { from, to }
                }
                RawGen::Ref {
                    table: target,
                    column,
                    filter,
                } => {
                    let t = index_of(&target)
                        .ok_or_else(|| at.error(format!("ref: unknown table {target}")))?;
                    if t == ti {
                        return Err(at.error("ref: a table cannot reference its own rows"));
                    }
                    let c = column_of(t, &column).ok_or_else(|| {
                        at.error(format!(
                            "ref: table {target} has no column {column} in the spec"
                        ))
                    })?;
                    let filter = match filter {
                        None => None,
                        Some(f) if f.len() == 1 => {
                            let (fc, value) = f.into_iter().next().expect("one entry");
                            let fi = column_of(t, &fc).ok_or_else(|| {
                                at.error(format!("ref: `where` names {fc}, which table {target} does not generate"))
                            })?;
                            Some((fi, value))
                        }
                        Some(_) => return Err(at.error("ref: `where` takes one column = value")),
                    };
                    Gen::Ref {
                        table: t,
                        column: c,
                        filter,
                    }
                }
                RawGen::Parent { column } => {
                    let Source::PerParent { parent, .. } = source else {
                        return Err(at.error("parent: the table has no `per` parent"));
                    };
                    let c = column_of(parent, &column).ok_or_else(|| {
                        at.error(format!(
                            "parent: table {} has no column {column} in the spec",
                            names[parent]
                        ))
                    })?;
                    Gen::Parent { column: c }
                }
                RawGen::Constant { value } => Gen::Constant {
                    value: Some(constant_text(value).map_err(|e| at.error(e))?),
                },
            };
            columns.push(ColumnSpec {
                name: name.clone(),
                hash: fnv1a64(name.as_bytes()),
                null,
                generator,
            });
        }
        let fixed = match &table.fixed {
            None => None,
            Some(name) => {
                let path = data_file(seeds_dir, name).map_err(|e| at.error(e))?;
                let rows = read_fixed(&path, &columns, &at)?;
                files.push(path);
                Some(rows)
            }
        };
        tables.push(TableSpec {
            name: table.name.clone(),
            hash: fnv1a64(table.name.as_bytes()),
            source,
            columns,
            fixed,
            default_count: table.count,
        });
    }
    let depends: Vec<Vec<usize>> = tables.iter().map(|t| t.dependencies().collect()).collect();
    check_positions(&tables, &file)?;
    check_format_cycles(&tables, &file)?;
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
    Ok(Spec {
        version: raw.version,
        tables: ordered,
        files,
    })
}

/// A data file named by the spec (`pick`, `fixed`), which must lie inside the seeds directory:
/// a spec is data, and must not read (and load into tables) whatever file its author names.
fn data_file(seeds_dir: &Path, name: &str) -> std::result::Result<PathBuf, String> {
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

fn read_fixed(path: &PathBuf, columns: &[ColumnSpec], at: &At) -> Result<FixedRows> {
    let mut reader = csv::Reader::from_path(path)
        .map_err(|e| at.error(format!("cannot read {}: {e}", path.display())))?;
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
        file: path.clone(),
        lines,
    })
}

/// Whether a column's value depends on the row's position in its table (known only while the
/// table is enumerated in order).
fn positional(table: &TableSpec, column: usize, seen: &mut Vec<usize>) -> bool {
    if seen.contains(&column) {
        return false;
    }
    seen.push(column);
    match &table.columns[column].generator {
        Gen::Serial { .. } => true,
        Gen::Format { parts } => parts.iter().any(|p| match p {
            Part::Column(c, _) => positional(table, *c, seen),
            Part::Text(_) => false,
        }),
        _ => false,
    }
}

/// A per-parent table's row position is not known when another table picks one of its rows, so
/// a reference may not name a column that depends on it.
fn check_positions(tables: &[TableSpec], file: &Path) -> Result<()> {
    for table in tables {
        for column in &table.columns {
            let (target, target_column) = match &column.generator {
                Gen::Ref { table, column, .. } => (*table, *column),
                Gen::Parent { column: c } => match table.source {
                    Source::PerParent { parent, .. } => (parent, *c),
                    Source::Counted => continue,
                },
                _ => continue,
            };
            let target_table = &tables[target];
            if matches!(target_table.source, Source::PerParent { .. })
                && positional(target_table, target_column, &mut Vec::new())
            {
                return Err(At {
                    file,
                    table: &table.name,
                    column: Some(&column.name),
                }
                .error(format!(
                    "references {}.{}, which depends on the row's position in a table generated per parent; \
                     key such tables with a uuid or a per-parent ordinal",
                    target_table.name, target_table.columns[target_column].name
                )));
            }
            if let Gen::Ref {
                filter: Some(_), ..
            } = &column.generator
                && target_table.source != Source::Counted
            {
                return Err(At {
                    file,
                    table: &table.name,
                    column: Some(&column.name),
                }
                .error("ref with `where` needs a counted table (not one generated per parent)"));
            }
        }
    }
    Ok(())
}

fn check_format_cycles(tables: &[TableSpec], file: &Path) -> Result<()> {
    fn visit(table: &TableSpec, c: usize, stack: &mut Vec<usize>) -> bool {
        if stack.contains(&c) {
            return false;
        }
        stack.push(c);
        let ok = match &table.columns[c].generator {
            Gen::Format { parts } => parts.iter().all(|p| match p {
                Part::Column(next, _) => visit(table, *next, stack),
                Part::Text(_) => true,
            }),
            _ => true,
        };
        stack.pop();
        ok
    }
    for table in tables {
        for (c, column) in table.columns.iter().enumerate() {
            if !visit(table, c, &mut Vec::new()) {
                return Err(At {
                    file,
                    table: &table.name,
                    column: Some(&column.name),
                }
                .error("its template refers back to itself"));
            }
        }
    }
    Ok(())
}
