//! Whether the values a spec generates fit the columns they go to: the row counts and serial
//! ranges before any connection opens (`check_counts`), and every column's type, enum labels and
//! generated flag from the catalog before anything changes (`check_types`). A value that cannot
//! fit is a spec error (exit 2) naming the table and the column, never a failed COPY after a drop.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::plan::SeedPlan;
use crate::spec::profile::Profile;
use crate::spec::{Gen, SchemaColumn, Source, Spec};

/// The most rows dbtool plans for one table. Planning counts the rows of tables generated per
/// parent one parent at a time, so a ceiling keeps `--dry-run` and `profiles` quick; a load this
/// large would take hours to seed anyway.
pub const MAX_ROWS_PER_TABLE: u64 = 100_000_000;

/// The most rows each table can get with this profile (per-parent tables at their maximum),
/// in spec order; None where the profile gives no count (reported when the data set is built).
fn upper_rows(spec: &Spec, profile: &Profile) -> Vec<Option<u128>> {
    let mut upper: Vec<Option<u128>> = Vec::with_capacity(spec.tables.len());
    for table in &spec.tables {
        let rows = match table.source {
            Source::Counted => {
                let fixed = table.fixed.as_ref().map_or(0, |f| f.rows.len() as u64);
                profile
                    .counts
                    .get(&table.name)
                    .copied()
                    .or(table.default_count)
                    .or((fixed > 0).then_some(fixed))
                    .map(u128::from)
            }
            Source::PerParent { parent, max, .. } => {
                let max = profile
                    .per
                    .get(&table.name)
                    .map_or(max, |per| per.bounds().1);
                // Tables are in load order: a parent's bound is known before its children's.
                upper[parent].map(|p| p.saturating_mul(u128::from(max)))
            }
        };
        upper.push(rows);
    }
    upper
}

/// Counts, serial ranges and date ranges that no column could hold, or that planning could not
/// finish, refused before connecting. Costs one pass over the tables, whatever the counts.
pub fn check_counts(spec: &Spec, profile: &Profile) -> Result<()> {
    check_time_ranges(spec, profile)?;
    let upper = upper_rows(spec, profile);
    for (table, rows) in spec.tables.iter().zip(&upper) {
        let Some(rows) = *rows else { continue };
        if rows > u128::from(MAX_ROWS_PER_TABLE) {
            let how = match table.source {
                Source::Counted => format!("[counts] {} = {rows}", table.name),
                Source::PerParent { .. } => format!(
                    "table {} would get up to {rows} rows (its parents' count times its [per] maximum)",
                    table.name
                ),
            };
            return Err(Error::usage(format!(
                "profile {}: {how}: dbtool seeds at most {MAX_ROWS_PER_TABLE} rows per table",
                profile.name
            )));
        }
        for column in &table.columns {
            let Gen::Serial { start } = column.generator else {
                continue;
            };
            let last = i128::from(start) + rows as i128 - 1;
            if rows > 0 && last > i128::from(i64::MAX) {
                return Err(Error::usage(format!(
                    "profile {}: table {}, column {}: serial from {start} over {rows} rows ends at \
                     {last}, past the largest bigint ({}); lower `start` or the count",
                    profile.name,
                    table.name,
                    column.name,
                    i64::MAX
                )));
            }
        }
    }
    Ok(())
}

/// Dates and timestamps are written as `YYYY-MM-DD`: years 1 to 9999, which PostgreSQL reads as
/// written (a year 0 or below would need `BC`, and is read as a time zone instead).
fn check_time_ranges(spec: &Spec, profile: &Profile) -> Result<()> {
    use crate::spec::calendar::days_from_civil;
    let (first, last) = (days_from_civil(1, 1, 1), days_from_civil(9999, 12, 31));
    let epoch_day = profile.epoch.div_euclid(86_400);
    for table in &spec.tables {
        for column in &table.columns {
            let days = match column.generator {
                Gen::Date { from, to } => {
                    (epoch_day.saturating_add(from), epoch_day.saturating_add(to))
                }
                Gen::Timestamp { from, to } => (
                    profile.epoch.saturating_add(from).div_euclid(86_400),
                    profile.epoch.saturating_add(to).div_euclid(86_400),
                ),
                _ => continue,
            };
            if days.0 < first || days.1 > last {
                return Err(Error::usage(format!(
                    "profile {}: table {}, column {}: `from` and `to` reach outside the years 1 to \
                     9999 from the epoch {}; dbtool generates dates within those years",
                    profile.name,
                    table.name,
                    column.name,
                    crate::spec::calendar::format_timestamp(profile.epoch)
                )));
            }
        }
    }
    Ok(())
}

/// The integer range of a PostgreSQL integer type (by its base type's name).
fn integer_range(base_type: &str) -> Option<(i64, i64)> {
    match base_type {
        "int2" => Some((i64::from(i16::MIN), i64::from(i16::MAX))),
        "int4" => Some((i64::from(i32::MIN), i64::from(i32::MAX))),
        "int8" => Some((i64::MIN, i64::MAX)),
        _ => None,
    }
}

/// `numeric(p, s)`: the largest absolute value it holds is below 10^(p - s).
fn numeric_digits(column: &SchemaColumn) -> Option<(u32, u32)> {
    (column.base_type == "numeric" && column.typmod >= 4).then(|| {
        let typmod = (column.typmod - 4) as u32;
        (typmod >> 16, typmod & 0xffff)
    })
}

/// `varchar(n)` / `char(n)`: at most n characters.
fn max_chars(column: &SchemaColumn) -> Option<usize> {
    (matches!(column.base_type.as_str(), "varchar" | "bpchar") && column.typmod >= 4)
        .then(|| (column.typmod - 4) as usize)
}

/// Why `value` (text, as COPY would send it) cannot go into `column`, if it cannot.
fn text_misfit(value: &str, column: &SchemaColumn) -> Option<String> {
    if !column.enum_labels.is_empty() {
        if !column.enum_labels.iter().any(|l| l == value) {
            return Some(format!(
                "{value:?} is not a value of enum {} ({})",
                column.type_name,
                column.enum_labels.join(", ")
            ));
        }
        return None;
    }
    if let Some((min, max)) = integer_range(&column.base_type) {
        return match value.trim().parse::<i64>() {
            Ok(v) if (min..=max).contains(&v) => None,
            Ok(_) => Some(format!(
                "{value} is outside {} ({min} to {max})",
                column.type_name
            )),
            Err(_) => Some(format!(
                "{value:?} is not a whole number, as {} needs",
                column.type_name
            )),
        };
    }
    if column.base_type == "bool" {
        let known = [
            "t", "f", "true", "false", "y", "n", "yes", "no", "on", "off", "1", "0",
        ];
        if !known.contains(&value.trim().to_ascii_lowercase().as_str()) {
            return Some(format!("{value:?} is not a boolean"));
        }
        return None;
    }
    if matches!(column.base_type.as_str(), "numeric" | "float4" | "float8")
        && value.trim().parse::<f64>().is_err()
    {
        return Some(format!(
            "{value:?} is not a number, as {} needs",
            column.type_name
        ));
    }
    if let Some(n) = max_chars(column)
        && value.chars().count() > n
    {
        return Some(format!(
            "{value:?} is {} characters long, more than {} holds",
            value.chars().count(),
            column.type_name
        ));
    }
    None
}

/// Why the integers `min..=max` cannot all go into `column`, if they cannot.
fn range_misfit(min: i128, max: i128, column: &SchemaColumn) -> Option<String> {
    if let Some((low, high)) = integer_range(&column.base_type) {
        if min < i128::from(low) || max > i128::from(high) {
            return Some(format!(
                "values from {min} to {max} do not fit {} ({low} to {high})",
                column.type_name
            ));
        }
        return None;
    }
    if let Some((precision, scale)) = numeric_digits(column) {
        let limit = 10i128.checked_pow(precision.saturating_sub(scale));
        if limit.is_some_and(|limit| min.abs() >= limit || max.abs() >= limit) {
            return Some(format!(
                "values from {min} to {max} do not fit {}",
                column.type_name
            ));
        }
        return None;
    }
    if !column.enum_labels.is_empty() || column.base_type == "bool" {
        return Some(format!("numbers do not fit {}", column.type_name));
    }
    None
}

/// Checks each spec column against the catalog's column: not a generated column, and every
/// value its generator can produce accepted by the column's type. `plan` gives the exact rows
/// per table; `columns` maps table -> its columns (as `migrate::schema_columns` reads them).
pub fn check_types(
    spec: &Spec,
    plan: &SeedPlan,
    columns: &HashMap<String, Vec<SchemaColumn>>,
) -> Result<()> {
    for (index, table) in spec.tables.iter().enumerate() {
        let Some(actual) = columns.get(&table.name) else {
            continue;
        };
        let rows = plan
            .tables
            .iter()
            .find(|t| t.index == index)
            .map_or(0, |t| t.rows);
        for spec_column in &table.columns {
            let Some(column) = actual.iter().find(|c| c.name == spec_column.name) else {
                continue;
            };
            let fail = |why: String| {
                Error::usage(format!(
                    "seed spec: table {}, column {} ({}): {why}",
                    table.name, column.name, column.type_name
                ))
            };
            if column.generated {
                return Err(fail(
                    "a generated column: the database computes its values, so the spec must not \
                     list it; remove it from the spec"
                        .to_string(),
                ));
            }
            // Arrays and other structured types take values the checks here do not model.
            if column.base_type.starts_with('_') {
                continue;
            }
            let misfit = match &spec_column.generator {
                Gen::Serial { start } if rows > 0 => range_misfit(
                    i128::from(*start),
                    i128::from(*start) + i128::from(rows) - 1,
                    column,
                )
                .map(|why| format!("serial over {rows} rows: {why}")),
                Gen::Ordinal { start } => {
                    range_misfit(i128::from(*start), i128::from(*start), column)
                }
                Gen::Int { min, max } => range_misfit(i128::from(*min), i128::from(*max), column),
                Gen::Decimal { min, max, scale } => {
                    if integer_range(&column.base_type).is_some() && *scale > 0 {
                        Some(format!(
                            "decimal values with {scale} decimal places do not fit {}",
                            column.type_name
                        ))
                    } else {
                        let unit = 10i128.pow(*scale);
                        range_misfit(
                            i128::from(*min).div_euclid(unit),
                            i128::from(*max).div_euclid(unit),
                            column,
                        )
                    }
                }
                Gen::Choice { values, .. } | Gen::Cycle { values } | Gen::Pick { values } => {
                    values.iter().find_map(|v| text_misfit(v, column))
                }
                Gen::Constant { value: Some(value) } => text_misfit(value, column),
                Gen::Bool { .. } => (!column.enum_labels.is_empty()
                    || integer_range(&column.base_type).is_some())
                .then(|| format!("booleans do not fit {}", column.type_name)),
                _ => None,
            };
            if let Some(why) = misfit {
                return Err(fail(why));
            }
        }
        if let Some(fixed) = &table.fixed {
            check_fixed_rows(table, fixed, actual)?;
        }
    }
    Ok(())
}

/// The CSV's values against enum and integer columns: row i of the CSV is line i + 2.
fn check_fixed_rows(
    table: &crate::spec::TableSpec,
    fixed: &crate::spec::FixedRows,
    actual: &[SchemaColumn],
) -> Result<()> {
    for (spec_index, position) in fixed.columns.iter().enumerate() {
        let Some(position) = position else { continue };
        let name = &table.columns[spec_index].name;
        let Some(column) = actual.iter().find(|c| &c.name == name) else {
            continue;
        };
        for (row, values) in fixed.rows.iter().enumerate() {
            if let Some(Some(value)) = values.get(*position)
                && let Some(why) = text_misfit(value, column)
            {
                return Err(Error::usage(format!(
                    "seed spec: table {}, column {} ({}): fixed row {} (CSV line {}): {why}",
                    table.name,
                    column.name,
                    column.type_name,
                    row + 1,
                    row + 2
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(type_name: &str, base_type: &str, typmod: i32) -> SchemaColumn {
        SchemaColumn {
            name: "c".to_string(),
            required: false,
            type_name: type_name.to_string(),
            base_type: base_type.to_string(),
            typmod,
            enum_labels: Vec::new(),
            generated: false,
        }
    }

    #[test]
    fn integer_ranges_follow_the_type() {
        let int4 = column("integer", "int4", -1);
        assert!(range_misfit(1, i128::from(i32::MAX), &int4).is_none());
        assert!(range_misfit(1, i128::from(i32::MAX) + 1, &int4).is_some());
        let int2 = column("smallint", "int2", -1);
        assert!(range_misfit(-40_000, 0, &int2).is_some());
        let numeric = column("numeric(5,2)", "numeric", (5 << 16 | 2) + 4);
        assert!(range_misfit(0, 999, &numeric).is_none());
        assert!(range_misfit(0, 1000, &numeric).is_some());
        assert!(range_misfit(0, 10_000_000, &column("text", "text", -1)).is_none());
    }

    #[test]
    fn text_values_follow_enums_integers_booleans_and_lengths() {
        let mut status = column("invoice_status", "invoice_status", -1);
        status.enum_labels = vec!["paid".into(), "open".into()];
        assert!(text_misfit("paid", &status).is_none());
        let why = text_misfit("refunded", &status).unwrap();
        assert!(why.contains("paid, open"), "{why}");
        assert!(text_misfit("30", &column("integer", "int4", -1)).is_none());
        assert!(text_misfit("thirty", &column("integer", "int4", -1)).is_some());
        assert!(text_misfit("40000", &column("smallint", "int2", -1)).is_some());
        assert!(text_misfit("yes", &column("boolean", "bool", -1)).is_none());
        assert!(text_misfit("maybe", &column("boolean", "bool", -1)).is_some());
        assert!(text_misfit("abcdef", &column("character varying(5)", "varchar", 9)).is_some());
        assert!(text_misfit("abcde", &column("character varying(5)", "varchar", 9)).is_none());
    }
}
