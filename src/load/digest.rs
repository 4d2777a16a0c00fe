//! Table digest, version 2: computed by the client while it generates the rows, and by the
//! server in `dbtool fingerprint`, with the same result, so a reset needs no second scan.
//!
//! A table's digest is its row count and the sum, modulo 2^64, of every row's hash, where a
//! row's hash is the first 8 bytes (big-endian) of md5 of the row's text as the server prints
//! it (`t::text`: record_out of its columns in attnum order, with the work connections'
//! settings: TimeZone UTC, DateStyle ISO). A sum does not depend on the order of the rows, so
//! chunks loaded on any connection in any order combine, and nothing is sorted.
//!
//! Version 1 (an md5 of the rows' text joined in primary-key order) needs the rows in key
//! order, which a uuid key or parallel chunks do not give without sorting them all.

use md5::{Digest, Md5};

use crate::connection::quote_ident;
use crate::error::Result;
use crate::load::copy::{ColumnType, Value, from_generated, parse};
use crate::load::md5_lanes::{self, LANES};
use crate::spec::{Dataset, RowValues};

pub const VERSION: u32 = 2;

/// The server's side: `SELECT rows, digest` of one table, as `rows` (bigint) and 16 hex digits.
pub fn server_query(schema: &str, table: &str) -> String {
    format!(
        "SELECT n, lpad(to_hex((CASE WHEN u >= 9223372036854775808 THEN u - 18446744073709551616 \
                                     ELSE u END)::bigint), 16, '0')
           FROM (SELECT count(*) AS n,
                        mod(mod(coalesce(sum(('x' || left(pg_catalog.md5(t::text), 16))::bit(64)::bigint), 0),
                                18446744073709551616) + 18446744073709551616,
                            18446744073709551616) AS u
                   FROM {}.{} AS t) d",
        quote_ident(schema),
        quote_ident(table)
    )
}

/// A partial digest: some rows of a table. Two partial digests of disjoint rows merge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sum {
    pub rows: u64,
    pub sum: u64,
}

impl Sum {
    /// Adds one row, by its hash.
    fn add(&mut self, hash: u64) {
        self.rows += 1;
        self.sum = self.sum.wrapping_add(hash);
    }

    pub fn merge(&mut self, other: Sum) {
        self.rows += other.rows;
        self.sum = self.sum.wrapping_add(other.sum);
    }

    /// 16 hex digits, as `server_query` prints them.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.sum)
    }
}

/// The digest of rows digested in parts: `None` when a part's rows could not be digested.
pub fn merged(parts: impl IntoIterator<Item = Option<Sum>>) -> Option<Sum> {
    parts
        .into_iter()
        .try_fold(Sum::default(), |mut total, part| {
            total.merge(part?);
            Some(total)
        })
}

/// How to print one table's rows as the server does: for each column in attnum order, which of
/// the spec's columns fills it and its type.
#[derive(Debug, Clone)]
pub struct RowText {
    columns: Vec<(usize, ColumnType)>,
}

impl RowText {
    /// `None` when the client cannot know a row's text: a column the spec does not fill (a
    /// default, a generated column) or a type whose text the client does not reproduce (jsonb,
    /// floats, domains, arrays, ...). Such a table is digested by the server.
    pub fn new(data: &Dataset, table: usize, catalog: &[(String, ColumnType)]) -> Option<Self> {
        let spec = &data.spec.tables[table];
        let columns = catalog
            .iter()
            .map(|(name, ty)| {
                let position = spec.columns.iter().position(|c| c.name == *name)?;
                has_canonical_text(*ty).then_some((position, *ty))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(RowText { columns })
    }

    /// Adds one row to `digester`. `Ok(false)` when a value does not parse as its column's type:
    /// the client cannot be sure of the server's text, and the caller falls back to the server.
    pub fn add(
        &self,
        values: &mut RowValues,
        buffer: &mut Vec<u8>,
        digester: &mut Digester,
    ) -> Result<bool> {
        buffer.clear();
        buffer.push(b'(');
        for (i, &(column, ty)) in self.columns.iter().enumerate() {
            if i > 0 {
                buffer.push(b',');
            }
            let value = values.value_ref(column)?;
            if *value == crate::spec::Value::Null {
                continue;
            }
            // Text is often already canonical: checking its shape is cheaper than parsing.
            if !matches!(value, crate::spec::Value::Text(_)) {
                match from_generated(value, ty) {
                    None => {}
                    Some(Ok(typed)) => {
                        write_record_field(buffer, &typed, ty);
                        continue;
                    }
                    Some(Err(_)) => return Ok(false),
                }
            }
            let text = values.get(column)?.expect("not null");
            if is_canonical(ty, text) {
                let start = buffer.len();
                buffer.extend_from_slice(text.as_bytes());
                quote_if_needed(buffer, start);
                continue;
            }
            let Ok(value) = parse(ty, text) else {
                return Ok(false);
            };
            write_record_field(buffer, &value, ty);
        }
        buffer.push(b')');
        digester.add(buffer);
        Ok(true)
    }

    /// Adds one row to `digester` from its fields as `Fields` gathered them while the row was
    /// encoded. Every column of a table with a `RowText` is filled by the spec, so a column
    /// without a field is NULL.
    pub fn add_fields(&self, fields: &Fields, buffer: &mut Vec<u8>, digester: &mut Digester) {
        buffer.clear();
        buffer.push(b'(');
        for (i, &(column, _)) in self.columns.iter().enumerate() {
            if i > 0 {
                buffer.push(b',');
            }
            let (start, end) = fields.spans[column];
            buffer.extend_from_slice(&fields.bytes[start as usize..end as usize]);
        }
        buffer.push(b')');
        digester.add(buffer);
    }
}

/// One row's record fields by spec column, written as the row is encoded in binary
/// (`RowEncoder::row_seen`) from the values it sends: each value is converted once, for the
/// COPY and the digest alike. A non-null field is never empty (empty text is `""`), so an
/// empty span is NULL.
pub struct Fields {
    bytes: Vec<u8>,
    spans: Vec<(u32, u32)>,
}

impl Fields {
    pub fn new(columns: usize) -> Self {
        Fields {
            bytes: Vec::with_capacity(256),
            spans: vec![(0, 0); columns],
        }
    }

    /// Forgets the previous row's fields.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.spans.fill((0, 0));
    }

    /// Column `column`'s value, as record_out prints it.
    pub fn push(&mut self, column: usize, ty: ColumnType, value: &Value) {
        let start = self.bytes.len();
        write_record_field(&mut self.bytes, value, ty);
        self.spans[column] = (start as u32, self.bytes.len() as u32);
    }
}

/// Rows' hashes summed, eight rows at a time: a row's text waits with others of its number of
/// md5 blocks until `md5_lanes::LANES` of them are in, and they are hashed together. The sum
/// does not depend on the order, so neither does the batching.
pub struct Digester {
    sum: Sum,
    /// Per number of md5 blocks (1 to `BATCHED_BLOCKS`), the texts waiting.
    waiting: Vec<Waiting>,
}

/// Rows of more blocks than this (a text over 247 bytes) are hashed one at a time.
const BATCHED_BLOCKS: usize = 4;

/// Texts of one number of md5 blocks, padded (`md5_lanes::push_padded`) one after the other.
#[derive(Default)]
struct Waiting {
    padded: Vec<u8>,
    count: usize,
}

impl Waiting {
    /// The waiting texts' hashes, in their first `count` lanes (the other lanes hash the first
    /// text again); empties the batch.
    fn hash(&mut self, blocks: usize) -> [u64; LANES] {
        let size = blocks * 64;
        let count = self.count;
        let padded = std::array::from_fn(|lane| {
            let text = if lane < count { lane } else { 0 };
            &self.padded[text * size..][..size]
        });
        let hashes = md5_lanes::first_halves(padded);
        self.padded.clear();
        self.count = 0;
        hashes
    }
}

impl Default for Digester {
    fn default() -> Self {
        Digester {
            sum: Sum::default(),
            waiting: (0..BATCHED_BLOCKS).map(|_| Waiting::default()).collect(),
        }
    }
}

impl Digester {
    /// Adds one row, by its text as the server prints it.
    pub fn add(&mut self, text: &[u8]) {
        let blocks = md5_lanes::blocks(text.len());
        let Some(waiting) = self.waiting.get_mut(blocks - 1) else {
            let hash = Md5::digest(text);
            self.sum.add(u64::from_be_bytes(
                hash[..8].try_into().expect("md5 has 16 bytes"),
            ));
            return;
        };
        md5_lanes::push_padded(&mut waiting.padded, text);
        waiting.count += 1;
        if waiting.count == LANES {
            for hash in waiting.hash(blocks) {
                self.sum.add(hash);
            }
        }
    }

    /// The sum of every row added.
    pub fn finish(mut self) -> Sum {
        for (i, waiting) in self.waiting.iter_mut().enumerate() {
            let count = waiting.count;
            if count > 0 {
                for hash in &waiting.hash(i + 1)[..count] {
                    self.sum.add(*hash);
                }
            }
        }
        self.sum
    }
}

/// Every row of `table` generated in one pass and digested, as a reset that loads the table on
/// one connection would: `None` when the client cannot know the rows' text.
pub fn generate(data: &Dataset, table: usize, row_text: &RowText) -> Result<Option<Sum>> {
    let mut digester = Digester::default();
    let mut buffer = Vec::with_capacity(256);
    let mut known = true;
    data.for_each_row_values(table, 0..data.root_count(table), 0, &mut |values| {
        if known {
            known = row_text.add(values, &mut buffer, &mut digester)?;
        }
        Ok(())
    })?;
    Ok(known.then(|| digester.finish()))
}

fn has_canonical_text(ty: ColumnType) -> bool {
    !matches!(
        ty,
        ColumnType::Jsonb | ColumnType::Float4 | ColumnType::Float8 | ColumnType::Other
    )
}

/// Whether `text` is already what the server prints for it, checked by its shape alone (most
/// generators write canonical text): parsing and printing it again is most of the digest's cost.
/// A value of that shape that the server would refuse fails the load, so its digest never counts.
fn is_canonical(ty: ColumnType, text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let date =
        |b: &[u8]| b[4] == b'-' && b[7] == b'-' && digits(0..4) && digits(5..7) && digits(8..10);
    let time = |b: &[u8]| {
        b[10] == b' '
            && b[13] == b':'
            && b[16] == b':'
            && digits(11..13)
            && digits(14..16)
            && digits(17..19)
    };
    // `-?(0|[1-9][0-9]*)`, not `-0`.
    let integer = |b: &[u8]| {
        let unsigned = b.strip_prefix(b"-").unwrap_or(b);
        !unsigned.is_empty()
            && unsigned.iter().all(u8::is_ascii_digit)
            && (unsigned[0] != b'0' || unsigned.len() == 1)
            && unsigned.len() < 19
            && !(b[0] == b'-' && unsigned == b"0")
    };
    match ty {
        ColumnType::Text | ColumnType::Enum | ColumnType::Json => true,
        ColumnType::Int2 | ColumnType::Int4 | ColumnType::Int8 => integer(b),
        ColumnType::Bool => text == "t" || text == "f",
        ColumnType::Uuid => {
            b.len() == 36
                && b.iter().enumerate().all(|(i, &c)| match i {
                    8 | 13 | 18 | 23 => c == b'-',
                    _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
                })
        }
        ColumnType::Date => b.len() == 10 && date(b),
        ColumnType::Timestamp => b.len() == 19 && date(b) && time(b),
        ColumnType::Timestamptz => b.len() == 22 && date(b) && time(b) && &b[19..] == b"+00",
        ColumnType::Numeric { scale } => {
            let (whole, fraction) = match text.split_once('.') {
                Some((w, f)) => (w.as_bytes(), Some(f.as_bytes())),
                None => (b, None),
            };
            let fraction_ok = match (fraction, scale) {
                (None, None | Some(0)) => true,
                (Some(f), None) => !f.is_empty() && f.iter().all(u8::is_ascii_digit),
                (Some(f), Some(s)) => f.len() == usize::from(s) && f.iter().all(u8::is_ascii_digit),
                _ => false,
            };
            // `-0.00` prints as `0.00`; `-0.50` is canonical.
            let zero = b.iter().all(|&c| matches!(c, b'0' | b'.' | b'-'));
            fraction_ok && (integer(whole) || (whole == b"-0" && !zero))
        }
        _ => false,
    }
}

/// One field of record_out: quoted when empty or holding `"`, `\`, `(`, `)`, `,` or white
/// space, with `"` and `\` doubled inside the quotes.
fn write_record_field(out: &mut Vec<u8>, value: &Value, ty: ColumnType) {
    match value {
        // A timestamp always has a space, and never a quote or a backslash.
        Value::Timestamp(_) => {
            out.push(b'"');
            write_text(out, value, ty);
            out.push(b'"');
        }
        Value::Text(_) => {
            let start = out.len();
            write_text(out, value, ty);
            quote_if_needed(out, start);
        }
        // Digits, signs, points and dashes never need quotes.
        _ => write_text(out, value, ty),
    }
}

fn quote_if_needed(out: &mut Vec<u8>, start: usize) {
    let needs_quotes = out.len() == start
        || out[start..].iter().any(|&b| {
            matches!(
                b,
                b'"' | b'\\' | b'(' | b')' | b',' | b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c
            )
        });
    if !needs_quotes {
        return;
    }
    let doubled = out[start..]
        .iter()
        .filter(|&&b| b == b'"' || b == b'\\')
        .count();
    if doubled == 0 {
        out.insert(start, b'"');
        out.push(b'"');
        return;
    }
    // In place, from the end: no allocation per quoted value.
    let old_end = out.len();
    out.resize(old_end + doubled + 2, 0);
    let mut to = out.len() - 1;
    out[to] = b'"';
    for from in (start..old_end).rev() {
        let b = out[from];
        to -= 1;
        out[to] = b;
        if b == b'"' || b == b'\\' {
            to -= 1;
            out[to] = b;
        }
    }
    out[to - 1] = b'"';
}

/// A value's text as the server's output function prints it.
fn write_text(out: &mut Vec<u8>, value: &Value, ty: ColumnType) {
    match value {
        Value::Int(v) => push_integer(out, *v),
        Value::Bool(b) => out.push(if *b { b't' } else { b'f' }),
        Value::Text(t) => out.extend_from_slice(t.as_bytes()),
        Value::Uuid(u) => out.extend_from_slice(crate::spec::uuid_text(*u).as_bytes()),
        Value::Date(days) => crate::spec::calendar::push_date(out, *days),
        Value::Timestamp(micros) => {
            let seconds = micros.div_euclid(1_000_000);
            let fraction = micros.rem_euclid(1_000_000);
            crate::spec::calendar::push_date(out, seconds.div_euclid(86_400));
            out.push(b' ');
            crate::spec::calendar::push_time(out, seconds.rem_euclid(86_400));
            if fraction > 0 {
                let digits = format!("{fraction:06}");
                out.push(b'.');
                out.extend_from_slice(digits.trim_end_matches('0').as_bytes());
            }
            if ty == ColumnType::Timestamptz {
                out.extend_from_slice(b"+00");
            }
        }
        Value::Numeric(n) => n.write_text(out),
        Value::Decimal { unscaled, scale } => {
            super::copy::write_decimal_text(*unscaled, *scale, out)
        }
        Value::Float(_) => unreachable!("floats have no canonical text here"),
    }
}

/// `{v}`: most of a row's fields are keys.
fn push_integer(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    super::copy::push_unsigned(out, v.unsigned_abs());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digester_sums_what_one_row_at_a_time_sums() {
        // Texts of one to six md5 blocks, some batches full and some left over at the end.
        for rows in [0, 1, 7, 8, 9, 41, 300] {
            let texts: Vec<Vec<u8>> = (0..rows)
                .map(|i: usize| (0..(i * 37) % 330).map(|b| (b * 13 + i) as u8).collect())
                .collect();
            let mut digester = Digester::default();
            let mut expected = Sum::default();
            for text in &texts {
                digester.add(text);
                let hash = Md5::digest(text);
                expected.add(u64::from_be_bytes(hash[..8].try_into().unwrap()));
            }
            assert_eq!(digester.finish(), expected, "{rows} rows");
        }
    }

    fn field(text: &str, ty: ColumnType) -> String {
        let mut out = Vec::new();
        write_record_field(&mut out, &parse(ty, text).unwrap(), ty);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn integers_print_as_format_prints_them() {
        for v in [0, 7, -7, 10, 1_000_000, i64::MAX, i64::MIN, -1] {
            let mut out = Vec::new();
            push_integer(&mut out, v);
            assert_eq!(String::from_utf8(out).unwrap(), v.to_string());
        }
    }

    #[test]
    fn fields_print_and_quote_as_record_out_does() {
        assert_eq!(field("a b", ColumnType::Text), "\"a b\"");
        assert_eq!(field("", ColumnType::Text), "\"\"");
        assert_eq!(
            field("say \"hi\\\"", ColumnType::Text),
            "\"say \"\"hi\\\\\"\"\""
        );
        assert_eq!(field("plain", ColumnType::Text), "plain");
        assert_eq!(field("TRUE", ColumnType::Bool), "t");
        assert_eq!(
            field("2025-01-01T03:02:03.250+02:00", ColumnType::Timestamptz),
            "\"2025-01-01 01:02:03.25+00\""
        );
        assert_eq!(
            field("2025-01-01 01:02:03+05", ColumnType::Timestamp),
            "\"2025-01-01 01:02:03\""
        );
        assert_eq!(field("15", ColumnType::Numeric { scale: Some(2) }), "15.00");
        assert_eq!(
            field("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", ColumnType::Uuid),
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
        );
    }

    #[test]
    fn canonical_text_is_recognized_by_its_shape_and_odd_text_is_not() {
        let numeric = ColumnType::Numeric { scale: Some(2) };
        for (ty, text, canonical) in [
            (ColumnType::Int4, "-42", true),
            (ColumnType::Int4, "042", false),
            (ColumnType::Int4, "-0", false),
            (numeric, "12.50", true),
            (numeric, "-0.50", true),
            (numeric, "-0.00", false),
            (numeric, "12.5", false),
            (numeric, "012.50", false),
            (ColumnType::Timestamptz, "2025-01-01 01:02:03+00", true),
            (ColumnType::Timestamp, "2025-01-01 01:02:03+00", false),
            (
                ColumnType::Uuid,
                "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
                true,
            ),
            (
                ColumnType::Uuid,
                "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
                false,
            ),
            (ColumnType::Bool, "true", false),
        ] {
            assert_eq!(is_canonical(ty, text), canonical, "{ty:?} {text}");
            if canonical {
                // Printing it again changes nothing.
                let mut out = Vec::new();
                write_text(&mut out, &parse(ty, text).unwrap(), ty);
                assert_eq!(String::from_utf8(out).unwrap(), text);
            }
        }
    }

    #[test]
    fn sums_merge_in_any_order() {
        let parts = [
            Sum {
                rows: 1,
                sum: u64::MAX,
            },
            Sum { rows: 2, sum: 5 },
            Sum {
                rows: 3,
                sum: 1 << 63,
            },
        ];
        let mut forward = Sum::default();
        parts.iter().for_each(|p| forward.merge(*p));
        let mut backward = Sum::default();
        parts.iter().rev().for_each(|p| backward.merge(*p));
        assert_eq!(forward, backward);
        assert_eq!(forward.rows, 6);
        assert_eq!(forward.hex(), "8000000000000004");
    }
}
