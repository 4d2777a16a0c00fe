//! How a generated row travels in a COPY stream: binary where every column of the table has a
//! cheap binary form and every value the spec can produce for it parses on the client, text COPY
//! otherwise (decided once per table). Binary COPY spares the server its per-value input parsing,
//! which is most of its work in a load. The same typed parse gives each value's canonical text,
//! as the server would print it, for the digest (src/load/digest.rs).
//!
//! Values arrive as text (`RowValues::get`); each is parsed here into the binary form of the
//! column's type, with the server's own rules: numeric as base-10000 digits with the typmod's
//! scale, timestamps as microseconds from 2000-01-01 (timestamptz read in UTC, the work
//! connections' time zone; a zone given to a `timestamp` is ignored, as the server ignores it).

use crate::connection::quote_ident;
use crate::spec::expr::Func;
use crate::spec::kinds::{self, Kinds};
use crate::spec::{Dataset, Expr, Gen, RowValues};

/// Days from 1970-01-01 to 2000-01-01, PostgreSQL's epoch for dates and timestamps.
const PG_EPOCH_DAYS: i64 = 10_957;
const BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// A column's type as far as COPY and the digest care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Int2,
    Int4,
    Int8,
    Bool,
    /// text, varchar: the bytes themselves.
    Text,
    Uuid,
    Date,
    Timestamp,
    Timestamptz,
    /// `scale` from the typmod, when the column has one.
    Numeric {
        scale: Option<u16>,
    },
    Float4,
    Float8,
    /// Binary form: the label's bytes.
    Enum,
    Json,
    /// Binary form: version byte 1, then the text.
    Jsonb,
    /// Anything else (domains, arrays, bpchar, ...): text COPY only.
    Other,
}

impl ColumnType {
    /// From pg_type's name (of a pg_catalog type), typtype and the column's atttypmod.
    pub fn from_catalog(name: &str, typtype: &str, builtin: bool, typmod: i32) -> Self {
        if typtype == "e" {
            return ColumnType::Enum;
        }
        if !builtin || typtype != "b" {
            return ColumnType::Other;
        }
        match name {
            "int2" => ColumnType::Int2,
            "int4" => ColumnType::Int4,
            "int8" => ColumnType::Int8,
            "bool" => ColumnType::Bool,
            "text" | "varchar" => ColumnType::Text,
            "uuid" => ColumnType::Uuid,
            "date" => ColumnType::Date,
            "timestamp" => ColumnType::Timestamp,
            "timestamptz" => ColumnType::Timestamptz,
            "numeric" => ColumnType::Numeric {
                scale: (typmod >= 4).then(|| ((typmod - 4) & 0xffff) as u16),
            },
            "float4" => ColumnType::Float4,
            "float8" => ColumnType::Float8,
            "json" => ColumnType::Json,
            "jsonb" => ColumnType::Jsonb,
            _ => ColumnType::Other,
        }
    }

    fn has_binary_form(self) -> bool {
        self != ColumnType::Other
    }
}

/// The types of the spec's columns of `table` (in the spec's column order), from the table's
/// catalog columns (`load_catalog::LoadedTable::columns`).
pub fn spec_column_types(
    data: &Dataset,
    table: usize,
    catalog: &[(String, ColumnType)],
) -> Vec<ColumnType> {
    data.spec.tables[table]
        .columns
        .iter()
        .map(|c| {
            catalog
                .iter()
                .find(|(name, _)| *name == c.name)
                .map_or(ColumnType::Other, |(_, t)| *t)
        })
        .collect()
}

/// Whether every value the spec can put in each column of `table` parses on the client as the
/// column's type: generators of typed values by their kind, listed values one by one. A table
/// that fails this loads with text COPY, so the server keeps the last word on odd input.
pub fn parses_on_client(data: &Dataset, table: usize, types: &[ColumnType]) -> bool {
    types.len() == data.spec.tables[table].columns.len()
        && types
            .iter()
            .enumerate()
            .all(|(c, &ty)| ty.has_binary_form() && column_parses(data, table, c, ty, 0))
}

/// Whether every value of `column` of `table`, its fixed rows' and its generator's, parses.
fn column_parses(data: &Dataset, table: usize, column: usize, ty: ColumnType, depth: u32) -> bool {
    parses_fixed(data, table, column, ty)
        && gen_parses(
            data,
            table,
            &data.spec.tables[table].columns[column].generator,
            ty,
            depth,
        )
}

fn gen_parses(data: &Dataset, table: usize, generator: &Gen, ty: ColumnType, depth: u32) -> bool {
    if depth > 16 {
        return false;
    }
    let textual = matches!(
        ty,
        ColumnType::Text | ColumnType::Enum | ColumnType::Json | ColumnType::Jsonb
    );
    let all = |values: &[String]| values.iter().all(|v| parse(ty, v).is_ok());
    // Another column's values, here or in a related row.
    let column_parses = |table, column| column_parses(data, table, column, ty, depth + 1);
    match generator {
        // Enum labels and JSON are checked by the server in either format.
        _ if textual => true,
        Gen::Serial { .. } | Gen::Ordinal { .. } | Gen::Int { .. } => matches!(
            ty,
            ColumnType::Int2
                | ColumnType::Int4
                | ColumnType::Int8
                | ColumnType::Numeric { .. }
                | ColumnType::Float4
                | ColumnType::Float8
        ),
        Gen::Decimal { .. } => matches!(
            ty,
            ColumnType::Numeric { .. } | ColumnType::Float4 | ColumnType::Float8
        ),
        Gen::Uuid => ty == ColumnType::Uuid,
        Gen::Bool { .. } => ty == ColumnType::Bool,
        Gen::Date { .. } => matches!(
            ty,
            ColumnType::Date | ColumnType::Timestamp | ColumnType::Timestamptz
        ),
        Gen::Timestamp { .. } => matches!(ty, ColumnType::Timestamp | ColumnType::Timestamptz),
        Gen::Choice { values, .. } | Gen::Cycle { values } | Gen::Pick { values } => all(values),
        Gen::Constant { value } => value.as_deref().is_none_or(|v| parse(ty, v).is_ok()),
        Gen::Csv { rows, field, .. } => rows.iter().all(|row| match row.get(*field) {
            Some(text) if !text.is_empty() => parse(ty, text).is_ok(),
            _ => true,
        }),
        // Text made from other values: only the server reads it as a non-text type.
        Gen::Format { .. } => false,
        Gen::When {
            then, otherwise, ..
        } => {
            gen_parses(data, table, then, ty, depth + 1)
                && gen_parses(data, table, otherwise, ty, depth + 1)
        }
        Gen::Expr { expr } => expr_parses(data, table, expr, ty, depth + 1),
        Gen::Ref {
            table: target,
            column: target_column,
            ..
        } => column_parses(*target, *target_column),
        Gen::Parent {
            column: parent_column,
        } => {
            let crate::spec::Source::PerParent { parent, .. } = data.spec.tables[table].source
            else {
                return false;
            };
            column_parses(parent, *parent_column)
        }
    }
}

/// Whether every value of `expr` (in a row of `table`) is a value of a non-text column type
/// `ty` as the client encodes it: a reference to a column whose values are, a literal that
/// parses, or an expression whose every kind of result has a typed form (a number for a
/// numeric column, a timestamp or a date for a timestamp column, ...).
fn expr_parses(data: &Dataset, table: usize, expr: &Expr, ty: ColumnType, depth: u32) -> bool {
    if depth > 16 {
        return false;
    }
    match expr {
        Expr::Column(c) => column_parses(data, table, *c, ty, depth + 1),
        Expr::Path {
            start,
            tables,
            column,
            ..
        } => kinds::path_target(data.spec, table, *start, tables, *column)
            .is_some_and(|(target, c)| column_parses(data, target, c, ty, depth + 1)),
        Expr::Lit(crate::spec::Value::Text(text)) => parse(ty, text).is_ok(),
        Expr::Func(Func::If, args) => args
            .get(1..)
            .unwrap_or_default()
            .iter()
            .all(|a| expr_parses(data, table, a, ty, depth + 1)),
        Expr::Func(Func::Coalesce | Func::RandChoice, args) => args
            .iter()
            .all(|a| expr_parses(data, table, a, ty, depth + 1)),
        _ => kinds::expression(data.spec, table, expr, depth).within(typed_kinds(ty)),
    }
}

/// The kinds of generated value that `from_generated` writes as a column of type `ty`.
fn typed_kinds(ty: ColumnType) -> Kinds {
    Kinds::NULL
        | match ty {
            ColumnType::Int2 | ColumnType::Int4 | ColumnType::Int8 => Kinds::INT,
            ColumnType::Numeric { .. } | ColumnType::Float4 | ColumnType::Float8 => {
                Kinds::INT | Kinds::DEC
            }
            ColumnType::Bool => Kinds::BOOL,
            ColumnType::Date => Kinds::DATE,
            ColumnType::Timestamp | ColumnType::Timestamptz => Kinds::TIMESTAMP | Kinds::DATE,
            _ => Kinds::default(),
        }
}

fn parses_fixed(data: &Dataset, table: usize, column: usize, ty: ColumnType) -> bool {
    let Some(fixed) = &data.spec.tables[table].fixed else {
        return true;
    };
    let Some(Some(position)) = fixed.columns.get(column) else {
        return true;
    };
    fixed.rows.iter().all(|row| match row.get(*position) {
        Some(Some(v)) => parse(ty, v).is_ok(),
        _ => true,
    })
}

/// A value parsed as its column's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Int(i64),
    Bool(bool),
    Text(&'a str),
    Uuid(u128),
    /// Days from 1970-01-01.
    Date(i64),
    /// Microseconds from 1970-01-01 (UTC for timestamptz).
    Timestamp(i64),
    Numeric(Numeric),
    /// A numeric that fits 64 bits unscaled: `unscaled` × 10^-`scale`, exact (a generated
    /// decimal's, sent without a digit array).
    Decimal {
        unscaled: i64,
        scale: u16,
    },
    Float(f64),
}

/// A decimal: sign, its digits (no leading zeros; empty for zero) and how many of them are
/// after the point.
#[derive(Debug, Clone, PartialEq)]
pub struct Numeric {
    negative: bool,
    digits: Vec<u8>,
    scale: usize,
}

pub fn parse(ty: ColumnType, text: &str) -> Result<Value<'_>, String> {
    let bad = || format!("{text:?} is not a valid {ty:?} value for binary COPY");
    match ty {
        ColumnType::Int2 | ColumnType::Int4 | ColumnType::Int8 => {
            let (min, max) = match ty {
                ColumnType::Int2 => (i64::from(i16::MIN), i64::from(i16::MAX)),
                ColumnType::Int4 => (i64::from(i32::MIN), i64::from(i32::MAX)),
                _ => (i64::MIN, i64::MAX),
            };
            let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            match text.parse::<i64>() {
                Ok(v) if (min..=max).contains(&v) => Ok(Value::Int(v)),
                _ => Err(bad()),
            }
        }
        ColumnType::Bool => match text.to_ascii_lowercase().as_str() {
            "t" | "true" => Ok(Value::Bool(true)),
            "f" | "false" => Ok(Value::Bool(false)),
            _ => Err(bad()),
        },
        ColumnType::Text | ColumnType::Enum | ColumnType::Json | ColumnType::Jsonb => {
            Ok(Value::Text(text))
        }
        ColumnType::Uuid => parse_uuid(text).map(Value::Uuid).ok_or_else(bad),
        ColumnType::Date => parse_date(text.as_bytes())
            .filter(|(_, rest)| rest.is_empty())
            .map(|(d, _)| Value::Date(d))
            .ok_or_else(bad),
        ColumnType::Timestamp => parse_timestamp(text, false)
            .map(Value::Timestamp)
            .ok_or_else(bad),
        ColumnType::Timestamptz => parse_timestamp(text, true)
            .map(Value::Timestamp)
            .ok_or_else(bad),
        ColumnType::Numeric { scale } => parse_numeric(text, scale)
            .map(Value::Numeric)
            .ok_or_else(bad),
        ColumnType::Float4 | ColumnType::Float8 => {
            let plain = text
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'));
            match text.parse::<f64>() {
                Ok(v) if plain && v.is_finite() => Ok(Value::Float(v)),
                _ => Err(bad()),
            }
        }
        ColumnType::Other => Err(bad()),
    }
}

fn parse_uuid(text: &str) -> Option<u128> {
    let b = text.as_bytes();
    let dashed = match b.len() {
        36 if [8, 13, 18, 23].iter().all(|&i| b[i] == b'-') => true,
        32 => false,
        _ => return None,
    };
    let mut bits = 0u128;
    for (i, &c) in b.iter().enumerate() {
        if dashed && matches!(i, 8 | 13 | 18 | 23) {
            continue;
        }
        bits = bits << 4 | u128::from(char::from(c).to_digit(16)?);
    }
    Some(bits)
}

fn digits(b: &[u8], n: usize) -> Option<i64> {
    if b.len() < n || !b[..n].iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b[..n].iter().fold(0, |v, d| v * 10 + i64::from(d - b'0')))
}

/// `YYYY-MM-DD` at the start of `b`: days from 1970-01-01 and what follows.
fn parse_date(b: &[u8]) -> Option<(i64, &[u8])> {
    let year = digits(b, 4)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let month = digits(&b[5..], 2)?;
    let day = digits(&b[8..], 2)?;
    if !(1..=12).contains(&month) || day < 1 || year < 1 {
        return None;
    }
    let days = crate::spec::calendar::days_from_civil(year, month as u32, day as u32);
    // Reject 2025-02-30 and friends, as the server does.
    if crate::spec::calendar::civil_from_days(days) != (year, month as u32, day as u32) {
        return None;
    }
    Some((days, &b[10..]))
}

/// `YYYY-MM-DD[( |T)HH:MM[:SS[.ffffff]]][Z|±HH[[:]MM]]`: microseconds from 1970-01-01 UTC. A
/// zone counts only for timestamptz; `timestamp` ignores it, as the server does.
fn parse_timestamp(text: &str, with_zone: bool) -> Option<i64> {
    let (days, mut rest) = parse_date(text.as_bytes())?;
    let mut micros: i64 = 0;
    if let Some((&sep, after)) = rest.split_first()
        && (sep == b' ' || sep == b'T')
    {
        let hour = digits(after, 2)?;
        if after.get(2) != Some(&b':') {
            return None;
        }
        let minute = digits(&after[3..], 2)?;
        rest = &after[5..];
        let mut second = 0;
        if rest.first() == Some(&b':') {
            second = digits(&rest[1..], 2)?;
            rest = &rest[3..];
            if rest.first() == Some(&b'.') {
                let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
                if n == 0 || n > 6 {
                    return None;
                }
                micros = digits(&rest[1..], n)? * 10i64.pow(6 - n as u32);
                rest = &rest[1 + n..];
            }
        }
        if hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        micros += (hour * 3600 + minute * 60 + second) * 1_000_000;
    }
    let offset_seconds = match rest {
        [] => 0,
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), zone @ ..] => {
            let hours = digits(zone, 2)?;
            let minutes = match &zone[2..] {
                [] => 0,
                [b':', m @ ..] if m.len() == 2 => digits(m, 2)?,
                m if m.len() == 2 => digits(m, 2)?,
                _ => return None,
            };
            let s = hours * 3600 + minutes * 60;
            if *sign == b'-' { -s } else { s }
        }
        _ => return None,
    };
    let offset = if with_zone { offset_seconds } else { 0 };
    Some(days * 86_400_000_000 + micros - offset * 1_000_000)
}

/// `[+-]digits[.digits]`, rounded half away from zero to the typmod's scale when there is one.
fn parse_numeric(text: &str, typmod_scale: Option<u16>) -> Option<Numeric> {
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (whole, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    if whole.is_empty() && frac.is_empty()
        || !whole
            .bytes()
            .chain(frac.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let digits: Vec<u8> = whole
        .bytes()
        .chain(frac.bytes())
        .map(|b| b - b'0')
        .collect();
    Some(numeric(negative, digits, frac.len(), typmod_scale))
}

/// A decimal from its digits, rounded (half away from zero) or padded to the column's scale as
/// numeric_in does.
fn numeric(
    negative: bool,
    mut digits: Vec<u8>,
    mut scale: usize,
    typmod_scale: Option<u16>,
) -> Numeric {
    if let Some(target) = typmod_scale.map(usize::from) {
        if target < scale {
            let round_up = digits[digits.len() - (scale - target)] >= 5;
            digits.truncate(digits.len() - (scale - target));
            scale = target;
            if round_up {
                let mut i = digits.len();
                loop {
                    if i == 0 {
                        digits.insert(0, 1);
                        break;
                    }
                    i -= 1;
                    if digits[i] == 9 {
                        digits[i] = 0;
                    } else {
                        digits[i] += 1;
                        break;
                    }
                }
            }
        } else {
            digits.resize(digits.len() + target - scale, 0);
            scale = target;
        }
    }
    let leading = digits.iter().take_while(|&&d| d == 0).count();
    digits.drain(..leading.min(digits.len()));
    let zero = digits.is_empty();
    Numeric {
        negative: negative && !zero,
        digits,
        scale,
    }
}

/// `d` as `Value::Decimal` at the column's scale, where that needs no rounding and fits.
fn exact_decimal(d: &rust_decimal::Decimal, typmod_scale: Option<u16>) -> Option<Value<'static>> {
    let scale = u16::try_from(d.scale()).ok()?;
    let target = typmod_scale.unwrap_or(scale);
    let pad = 10i64.checked_pow(u32::from(target.checked_sub(scale)?))?;
    let unscaled = i64::try_from(d.mantissa()).ok()?.checked_mul(pad)?;
    Some(Value::Decimal {
        unscaled,
        scale: target,
    })
}

/// numeric_send's form of `unscaled` × 10^-`scale`, from the integer (as `Numeric`'s).
fn write_decimal(unscaled: i64, scale: u16, out: &mut Vec<u8>) {
    // The fraction padded to whole base-10000 digits, so that the point falls between two.
    let pad = (4 - scale % 4) % 4;
    let mut rest = u128::from(unscaled.unsigned_abs()) * 10u128.pow(u32::from(pad));
    let fraction_groups = ((scale + pad) / 4) as i16;
    // Base-10000 digits, least significant first: 64 bits and three more digits need 6.
    let mut groups = [0i16; 6];
    let mut n = 0;
    while rest > 0 {
        groups[n] = (rest % 10_000) as i16;
        rest /= 10_000;
        n += 1;
    }
    let low = groups[..n].iter().take_while(|&&g| g == 0).count();
    let used = n - low;
    let weight = if used == 0 {
        0
    } else {
        n as i16 - 1 - fraction_groups
    };
    let sign: u16 = if unscaled < 0 { 0x4000 } else { 0 };
    out.extend_from_slice(&(8 + 2 * used as i32).to_be_bytes());
    out.extend_from_slice(&(used as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&scale.to_be_bytes());
    for g in groups[low..n].iter().rev() {
        out.extend_from_slice(&g.to_be_bytes());
    }
}

/// The server's text of `unscaled` × 10^-`scale` (as `Numeric::write_text`).
pub fn write_decimal_text(unscaled: i64, scale: u16, out: &mut Vec<u8>) {
    if unscaled < 0 {
        out.push(b'-');
    }
    let magnitude = unscaled.unsigned_abs();
    let Some(unit) = 10u64.checked_pow(u32::from(scale)) else {
        // More digits after the point than 64 bits hold: the digits are all there is.
        out.push(b'0');
        out.push(b'.');
        let digits = magnitude.to_string();
        out.extend(std::iter::repeat_n(b'0', usize::from(scale) - digits.len()));
        out.extend_from_slice(digits.as_bytes());
        return;
    };
    push_unsigned(out, magnitude / unit);
    if scale > 0 {
        out.push(b'.');
        let mut fraction = magnitude % unit;
        let start = out.len();
        out.resize(start + usize::from(scale), b'0');
        for slot in out[start..].iter_mut().rev() {
            *slot = b'0' + (fraction % 10) as u8;
            fraction /= 10;
        }
    }
}

/// Appends `n` in decimal, without the formatting machinery.
#[inline]
pub fn push_unsigned(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// A generated decimal, as `parse_numeric` reads its text.
fn decimal_numeric(d: &rust_decimal::Decimal, typmod_scale: Option<u16>) -> Numeric {
    let mantissa = d.mantissa().unsigned_abs();
    let mut digits = Vec::with_capacity(20);
    // Most mantissas fit 64 bits, whose division is a machine instruction (128 bits' is a call).
    match u64::try_from(mantissa) {
        Ok(mut rest) => {
            while rest > 0 {
                digits.push((rest % 10) as u8);
                rest /= 10;
            }
        }
        Err(_) => {
            let mut rest = mantissa;
            while rest > 0 {
                digits.push((rest % 10) as u8);
                rest /= 10;
            }
        }
    }
    let scale = d.scale() as usize;
    // At least every digit after the point, as the text `0.05` has them.
    digits.resize(digits.len().max(scale + 1), 0);
    digits.reverse();
    numeric(d.is_sign_negative(), digits, scale, typmod_scale)
}

impl Numeric {
    /// The server's text: at least one digit before the point, exactly `scale` after it.
    pub fn write_text(&self, out: &mut Vec<u8>) {
        if self.negative {
            out.push(b'-');
        }
        let whole = self.digits.len().saturating_sub(self.scale);
        if whole == 0 {
            out.push(b'0');
        }
        out.extend(self.digits[..whole].iter().map(|d| d + b'0'));
        if self.scale > 0 {
            out.push(b'.');
            out.extend((self.digits.len()..self.scale).map(|_| b'0'));
            out.extend(self.digits[whole..].iter().map(|d| d + b'0'));
        }
    }

    /// numeric_send's form: ndigits, weight, sign, dscale, then base-10000 digits. Computed
    /// in place: a large reset sends millions of these.
    fn write_binary(&self, out: &mut Vec<u8>) {
        // Decimal digits aligned so that the point falls on a base-10000 boundary.
        let whole = self.digits.len() as isize - self.scale as isize;
        let pad_front = ((4 - whole.rem_euclid(4)) % 4) as usize;
        let pad_back = (4 - (self.scale % 4)) % 4;
        let groups = (pad_front + self.digits.len() + pad_back) / 4;
        let digit = |i: usize| {
            i.checked_sub(pad_front)
                .and_then(|i| self.digits.get(i))
                .map_or(0, |&d| i16::from(d))
        };
        let group = |g: usize| (0..4).fold(0i16, |v, k| v * 10 + digit(4 * g + k));
        let first = (0..groups).find(|&g| group(g) != 0);
        let last = (0..groups).rev().find(|&g| group(g) != 0);
        let (used, weight) = match (first, last) {
            (Some(first), Some(last)) => (
                first..last + 1,
                ((whole + pad_front as isize) / 4 - 1 - first as isize) as i16,
            ),
            _ => (0..0, 0),
        };
        let sign: u16 = if self.negative { 0x4000 } else { 0 };
        out.extend_from_slice(&(8 + 2 * used.len() as i32).to_be_bytes());
        out.extend_from_slice(&(used.len() as i16).to_be_bytes());
        out.extend_from_slice(&weight.to_be_bytes());
        out.extend_from_slice(&sign.to_be_bytes());
        out.extend_from_slice(&(self.scale as u16).to_be_bytes());
        for g in used {
            out.extend_from_slice(&group(g).to_be_bytes());
        }
    }
}

impl Value<'_> {
    /// The value's binary COPY field: length, then bytes.
    fn write_binary(&self, ty: ColumnType, out: &mut Vec<u8>) {
        let mut field = |bytes: &[u8]| {
            out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
            out.extend_from_slice(bytes);
        };
        match (self, ty) {
            (Value::Int(v), ColumnType::Int2) => field(&(*v as i16).to_be_bytes()),
            (Value::Int(v), ColumnType::Int4) => field(&(*v as i32).to_be_bytes()),
            (Value::Int(v), ColumnType::Int8) => field(&v.to_be_bytes()),
            (Value::Float(v), ColumnType::Float4) => field(&(*v as f32).to_be_bytes()),
            (Value::Float(v), _) => field(&v.to_be_bytes()),
            (Value::Bool(b), _) => field(&[u8::from(*b)]),
            (Value::Text(t), ColumnType::Jsonb) => {
                out.extend_from_slice(&(t.len() as i32 + 1).to_be_bytes());
                out.push(1);
                out.extend_from_slice(t.as_bytes());
            }
            (Value::Text(t), _) => field(t.as_bytes()),
            (Value::Uuid(u), _) => field(&u.to_be_bytes()),
            (Value::Date(d), ColumnType::Date) => {
                field(&((d - PG_EPOCH_DAYS) as i32).to_be_bytes())
            }
            (Value::Date(d), _) => field(&((d - PG_EPOCH_DAYS) * 86_400_000_000).to_be_bytes()),
            (Value::Timestamp(t), _) => field(&(t - PG_EPOCH_DAYS * 86_400_000_000).to_be_bytes()),
            (Value::Numeric(n), _) => n.write_binary(out),
            (Value::Decimal { unscaled, scale }, _) => write_decimal(*unscaled, *scale, out),
            (Value::Int(v), _) => field(&v.to_be_bytes()),
        }
    }
}

/// A generated value as its column's type, straight from its typed form (no text in between),
/// where that form says exactly what the server would make of it. `None`: go through the
/// value's text, as for text COPY. An error: the value cannot be a value of the column.
#[inline]
pub fn from_generated(
    value: &crate::spec::Value,
    ty: ColumnType,
) -> Option<Result<Value<'_>, String>> {
    use crate::spec::Value as Generated;
    // The value as the spec shows it: a date or timestamp as a calendar time, not a count.
    let out_of_range = || format!("{} is out of range for {ty:?}", value.shown());
    Some(match (value, ty) {
        (Generated::Text(t) | Generated::Json(t), _) => parse(ty, t),
        (Generated::Int(i), ColumnType::Int2 | ColumnType::Int4 | ColumnType::Int8) => {
            let fits = match ty {
                ColumnType::Int2 => i16::try_from(*i).is_ok(),
                ColumnType::Int4 => i32::try_from(*i).is_ok(),
                _ => true,
            };
            if fits {
                Ok(Value::Int(*i))
            } else {
                Err(out_of_range())
            }
        }
        (Generated::Int(i), ColumnType::Numeric { scale }) => parse_numeric(&i.to_string(), scale)
            .map(Value::Numeric)
            .ok_or_else(out_of_range),
        (Generated::Dec(d), ColumnType::Numeric { scale }) => Ok(
            exact_decimal(d, scale).unwrap_or_else(|| Value::Numeric(decimal_numeric(d, scale)))
        ),
        (Generated::Bool(b), ColumnType::Bool) => Ok(Value::Bool(*b)),
        // date_recv takes an i32 of days: a date beyond it would wrap, not fail.
        (Generated::Date(d), ColumnType::Date) => i32::try_from(d - PG_EPOCH_DAYS)
            .map(|_| Value::Date(*d))
            .map_err(|_| out_of_range()),
        // Midnight: the server prints it as a timestamp, with its time.
        (Generated::Date(d), ColumnType::Timestamp | ColumnType::Timestamptz) => d
            .checked_mul(86_400_000_000)
            .map(Value::Timestamp)
            .ok_or_else(out_of_range),
        (Generated::Timestamp(t), ColumnType::Timestamp | ColumnType::Timestamptz) => t
            .checked_mul(1_000_000)
            .map(Value::Timestamp)
            .ok_or_else(out_of_range),
        _ => return None,
    })
}

/// One table's COPY: the statement and how each row is written.
pub struct RowEncoder {
    /// Per column, when the table goes binary.
    binary: Option<Vec<ColumnType>>,
    columns: usize,
    /// The spec's column names, for errors.
    names: Vec<String>,
    statement: String,
}

impl RowEncoder {
    /// Text COPY of `columns` columns.
    pub fn text(columns: usize) -> Self {
        RowEncoder {
            binary: None,
            columns,
            names: Vec::new(),
            statement: String::new(),
        }
    }

    /// The COPY of the spec's columns of `table` into `schema`: binary when every column has a
    /// binary form and every value the spec can produce parses on the client; text otherwise.
    /// `freeze` only where the table was created or truncated in the same (sub)transaction,
    /// else the server refuses: the rows are then written frozen, so the first reads after the
    /// load set no hint bits.
    pub fn for_table(
        data: &Dataset,
        table: usize,
        types: Vec<ColumnType>,
        schema: &str,
        freeze: bool,
    ) -> Self {
        let spec = &data.spec.tables[table];
        let columns = spec.columns.len();
        let binary = parses_on_client(data, table, &types).then_some(types);
        let quoted: Vec<String> = spec.columns.iter().map(|c| quote_ident(&c.name)).collect();
        let mut options = Vec::new();
        if binary.is_some() {
            options.push("FORMAT binary");
        }
        if freeze {
            options.push("FREEZE");
        }
        let with = if options.is_empty() {
            String::new()
        } else {
            format!(" WITH ({})", options.join(", "))
        };
        RowEncoder {
            binary,
            columns,
            names: spec.columns.iter().map(|c| c.name.clone()).collect(),
            statement: format!(
                "COPY {}.{} ({}) FROM STDIN{with}",
                quote_ident(schema),
                quote_ident(&spec.name),
                quoted.join(", ")
            ),
        }
    }

    pub fn is_binary(&self) -> bool {
        self.binary.is_some()
    }

    /// The `COPY ... FROM STDIN` statement.
    pub fn statement(&self) -> &str {
        &self.statement
    }

    /// What the stream starts with.
    pub fn begin(&self, out: &mut Vec<u8>) {
        if self.is_binary() {
            out.extend_from_slice(BINARY_HEADER);
        }
    }

    /// Appends one row. An error names the column and the value.
    pub fn row(&self, values: &mut RowValues, out: &mut Vec<u8>) -> crate::error::Result<()> {
        self.row_seen(values, out, &mut |_, _, _| {})
    }

    /// `row`, handing each non-null cell of a binary COPY to `seen` (its spec column, its
    /// column's type and its value as sent), so that the digest and the sequences read the
    /// value converted once. A text COPY hands on nothing.
    pub fn row_seen(
        &self,
        values: &mut RowValues,
        out: &mut Vec<u8>,
        seen: &mut dyn FnMut(usize, ColumnType, &Value),
    ) -> crate::error::Result<()> {
        match &self.binary {
            None => {
                for c in 0..self.columns {
                    if c > 0 {
                        out.push(b'\t');
                    }
                    match values.get(c)? {
                        None => out.extend_from_slice(b"\\N"),
                        Some(text) => escape_copy_text(out, text),
                    }
                }
                out.push(b'\n');
            }
            Some(types) => {
                out.extend_from_slice(&(self.columns as i16).to_be_bytes());
                for (c, &ty) in types.iter().enumerate() {
                    let bad = |e: String| {
                        crate::error::Error::Work(format!("column {}: {e}", self.names[c]))
                    };
                    let value = values.value_ref(c)?;
                    if *value == crate::spec::Value::Null {
                        out.extend_from_slice(&(-1i32).to_be_bytes());
                        continue;
                    }
                    if let Some(typed) = from_generated(value, ty) {
                        let typed = typed.map_err(bad)?;
                        typed.write_binary(ty, out);
                        seen(c, ty, &typed);
                        continue;
                    }
                    let text = values.get(c)?.expect("not null");
                    let typed = parse(ty, text).map_err(bad)?;
                    typed.write_binary(ty, out);
                    seen(c, ty, &typed);
                }
            }
        }
        Ok(())
    }

    /// What the stream ends with.
    pub fn end(&self, out: &mut Vec<u8>) {
        if self.is_binary() {
            out.extend_from_slice(&(-1i16).to_be_bytes());
        }
    }
}

/// COPY text format: backslash, tab, newline and carriage return are escaped.
pub fn escape_copy_text(out: &mut Vec<u8>, text: &str) {
    if !text.contains(['\\', '\t', '\n', '\r']) {
        out.extend_from_slice(text.as_bytes());
        return;
    }
    for b in text.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric_text(text: &str, scale: Option<u16>) -> String {
        let mut out = Vec::new();
        parse_numeric(text, scale).unwrap().write_text(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn generated_values_out_of_their_columns_range_are_refused_not_wrapped() {
        use crate::spec::Value as Generated;
        let refused = |v: Generated, ty| matches!(from_generated(&v, ty), Some(Err(_)));
        assert!(refused(Generated::Int(40_000), ColumnType::Int2));
        assert!(refused(
            Generated::Int(i64::from(i32::MAX) + 1),
            ColumnType::Int4
        ));
        assert!(refused(
            Generated::Date(i64::from(i32::MAX) + PG_EPOCH_DAYS + 1),
            ColumnType::Date
        ));
        assert!(refused(
            Generated::Timestamp(i64::MAX / 10),
            ColumnType::Timestamptz
        ));
        // Named as a time, not as a raw count of seconds or days.
        let far = Generated::Timestamp(1 << 45);
        let Some(Err(e)) = from_generated(&far, ColumnType::Timestamptz) else {
            panic!("refused")
        };
        assert!(e.starts_with("1116918-05-14 "), "{e}");
        assert_eq!(
            from_generated(&Generated::Date(0), ColumnType::Timestamp),
            Some(Ok(Value::Timestamp(0)))
        );
        // A value with no typed form for the column goes through its text.
        assert!(from_generated(&Generated::Duration(60), ColumnType::Int4).is_none());
    }

    #[test]
    fn uuids_print_and_parse_back() {
        let bits = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210u128;
        let text = crate::spec::uuid_text(bits);
        assert_eq!(text, "01234567-89ab-cdef-fedc-ba9876543210");
        assert_eq!(parse_uuid(&text), Some(bits));
        assert_eq!(parse_uuid(&text.replace('-', "")), Some(bits));
        assert_eq!(parse_uuid(&text.to_uppercase()), Some(bits));
        assert_eq!(
            crate::spec::uuid_text(0),
            "00000000-0000-0000-0000-000000000000"
        );
        for bad in [
            "01234567-89ab-cdef-fedc-ba987654321",
            "0123456789ab-cdef-fedc-ba98-76543210",
            "g1234567-89ab-cdef-fedc-ba9876543210",
            "",
        ] {
            assert_eq!(parse_uuid(bad), None, "{bad}");
        }
    }

    #[test]
    fn generated_decimals_are_the_numerics_their_text_is() {
        for text in [
            "0",
            "0.05",
            "-0.50",
            "12.345",
            "99.995",
            "-1.005",
            "100",
            "0.000",
            // Mantissas beyond 64 bits.
            "18446744073709551616",
            "-123456789012345678901234.5678",
        ] {
            let d: rust_decimal::Decimal = text.parse().unwrap();
            for scale in [None, Some(0), Some(2), Some(4)] {
                assert_eq!(
                    decimal_numeric(&d, scale),
                    parse_numeric(&d.to_string(), scale).unwrap(),
                    "{text} at {scale:?}"
                );
            }
        }
    }

    #[test]
    fn exact_decimals_send_and_print_as_their_numerics_do() {
        let mut checked = 0;
        for mantissa in [
            0,
            1,
            -1,
            5,
            9_999,
            10_000,
            -10_001,
            123_456_789,
            100_000_000,
            i64::MAX,
            i64::MIN + 1,
        ] {
            for decimal_scale in [0, 1, 2, 3, 4, 5, 8, 19, 20, 25] {
                let d = rust_decimal::Decimal::new(mantissa, decimal_scale);
                for scale in [None, Some(0), Some(2), Some(4), Some(7), Some(30)] {
                    let Some(exact) = exact_decimal(&d, scale) else {
                        continue;
                    };
                    let numeric = decimal_numeric(&d, scale);
                    let (mut sent, mut expected) = (Vec::new(), Vec::new());
                    exact.write_binary(ColumnType::Numeric { scale }, &mut sent);
                    numeric.write_binary(&mut expected);
                    assert_eq!(sent, expected, "{d} at {scale:?}");
                    let (mut text, mut expected) = (Vec::new(), Vec::new());
                    let Value::Decimal { unscaled, scale: s } = exact else {
                        unreachable!()
                    };
                    write_decimal_text(unscaled, s, &mut text);
                    numeric.write_text(&mut expected);
                    assert_eq!(text, expected, "{d} at {scale:?}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 250, "{checked}");
        // Rounding, or past 64 bits: the digit array.
        let d = rust_decimal::Decimal::new(1_005, 3);
        assert!(exact_decimal(&d, Some(2)).is_none());
        assert!(exact_decimal(&d, Some(30)).is_none());
    }

    #[test]
    fn numerics_round_and_pad_to_the_typmod_scale_as_the_server_does() {
        assert_eq!(numeric_text("15", Some(2)), "15.00");
        assert_eq!(numeric_text("1.005", Some(2)), "1.01");
        assert_eq!(numeric_text("-9.995", Some(2)), "-10.00");
        assert_eq!(numeric_text("-0.001", Some(2)), "0.00");
        assert_eq!(numeric_text("007.50", None), "7.50");
        assert_eq!(numeric_text(".5", None), "0.5");
        assert!(parse_numeric("1e5", None).is_none());
    }

    #[test]
    fn numeric_binary_uses_base_10000_groups_aligned_on_the_point() {
        let mut out = Vec::new();
        parse_numeric("12345.67", Some(2))
            .unwrap()
            .write_binary(&mut out);
        // len 14: ndigits 3, weight 1, sign 0, dscale 2, digits 1 2345 6700
        let expected: Vec<u8> = [14i32.to_be_bytes().to_vec()]
            .into_iter()
            .chain(
                [3i16, 1, 0, 2, 1, 2345, 6700]
                    .iter()
                    .map(|v| v.to_be_bytes().to_vec()),
            )
            .flatten()
            .collect();
        assert_eq!(out, expected);
    }

    #[test]
    fn timestamps_read_zones_only_when_the_column_has_one() {
        let t = parse_timestamp("2025-01-01 01:02:03+00", true).unwrap();
        assert_eq!(t, (1_735_689_600 + 3723) * 1_000_000);
        assert_eq!(parse_timestamp("2025-01-01T03:02:03+02:00", true), Some(t));
        assert_eq!(parse_timestamp("2025-01-01 01:02:03+05", false), Some(t));
        assert_eq!(
            parse_timestamp("2025-01-01 01:02:03.5Z", true),
            Some(t + 500_000)
        );
        assert!(parse_timestamp("2025-02-30 00:00:00", true).is_none());
        assert!(parse_timestamp("yesterday", true).is_none());
    }

    #[test]
    fn copy_text_escapes_its_delimiters() {
        let mut out = Vec::new();
        escape_copy_text(&mut out, "a\tb\\c\nd\re");
        assert_eq!(out, b"a\\tb\\\\c\\nd\\re");
    }
}
