//! Row-addressable generation (DESIGN.md §5): every cell is a pure function of
//! (seed, table, column, row key, generator). Each cell draws from its own PCG stream seeded
//! from those, so any row of any table can be produced alone, in any order, on any thread.

use std::collections::HashMap;
use std::ops::Range;
use std::rc::Rc;

use rand_core::Rng;
use rand_pcg::Pcg64Mcg;
use rust_decimal::Decimal;

use super::expr::{self, Agg, BinOp, Expr, Func, Start, Value};
use super::{Case, Filter, Gen, Part, Source, Spec};
use crate::error::{Error, Result};
use crate::spec::profile::{PerCounts, Profile};

mod unique;

/// Stands in for a column name in the stream that decides how many children a parent row has.
const CHILD_COUNT_STREAM: u64 = 0x6368_696c_6472_656e;
/// The stream of a per-parent table's `when` over the parent row.
const CHILD_WHEN_STREAM: u64 = 0x6368_696c_6477_6865;
/// The stream deciding whether a parent gets children at all (`p`).
const CHILD_PRESENCE_STREAM: u64 = 0x6368_696c_6470_7265;
/// How many draws a unique column makes for one row before giving up.
const UNIQUE_ATTEMPTS: u32 = 64;
/// How many parents `ref` tries before deciding that a per-parent table has no rows to offer.
const REF_ATTEMPTS: u32 = 1000;
/// The largest table whose rows a `ref ... where` (not `distinct`) lists; beyond, each row
/// draws candidates until one matches.
const MAX_FILTERED_ROWS: u64 = 1_000_000;

/// A row's address. `key` is the row's index in a counted table and a mix of (parent key,
/// ordinal) in a per-parent one; `index` is its position in the table when known.
#[derive(Debug, Clone)]
pub struct RowId {
    pub key: u64,
    pub index: Option<u64>,
    pub ordinal: u64,
    pub parent: Option<Rc<RowId>>,
}

impl RowId {
    fn counted(index: u64) -> Self {
        RowId {
            key: index,
            index: Some(index),
            ordinal: index,
            parent: None,
        }
    }

    fn child(parent: &Rc<RowId>, ordinal: u64) -> Self {
        RowId {
            key: splitmix64(parent.key ^ splitmix64(ordinal.wrapping_add(0x9e37_79b9))),
            index: None,
            ordinal,
            parent: Some(parent.clone()),
        }
    }
}

pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The PCG stream of one cell.
fn cell_stream(seed: u64, table: u64, column: u64, key: u64) -> Pcg64Mcg {
    cell_stream_at(column_stream(seed, table, column), key)
}

/// The part of a cell's stream that only (seed, table, column) decide: computed once per column.
fn column_stream(seed: u64, table: u64, column: u64) -> u64 {
    splitmix64(splitmix64(splitmix64(seed) ^ table) ^ column)
}

/// `cell_stream` from its column's part (`column_stream`).
fn cell_stream_at(b: u64, key: u64) -> Pcg64Mcg {
    let c = splitmix64(b ^ key);
    let d = splitmix64(c ^ 0x5851_f42d_4c95_7f2d);
    Pcg64Mcg::new((u128::from(c) << 64) | u128::from(d))
}

/// A uniform draw in 0..n (n > 0), by multiply-shift: stable across versions and platforms,
/// unlike a library's range sampling, which may change.
fn below(rng: &mut Pcg64Mcg, n: u64) -> u64 {
    ((u128::from(rng.next_u64()) * u128::from(n)) >> 64) as u64
}

/// A uniform draw in [min, max].
fn between(rng: &mut Pcg64Mcg, min: i64, max: i64) -> i64 {
    let span = (i128::from(max) - i128::from(min) + 1) as u128;
    if span > u128::from(u64::MAX) {
        return rng.next_u64() as i64;
    }
    (i128::from(min) + i128::from(below(rng, span as u64))) as i64
}

/// The `i`-th value (`i < n`) of a pseudo-random permutation of `0..n` that `key` decides: a
/// four-round Feistel network over the smallest power of four above `n`, walking the cycle
/// until the value falls in `0..n`. Distinct `i` give distinct values, with nothing stored.
fn permute(i: u64, n: u64, key: u64) -> u64 {
    let bits = 64 - u64::from((n.max(1) - 1).leading_zeros());
    let half = bits.div_ceil(2).max(1);
    let mask = if half >= 64 {
        u64::MAX
    } else {
        (1u64 << half) - 1
    };
    let mut x = i;
    loop {
        let (mut left, mut right) = (x >> half, x & mask);
        for round in 0..4u64 {
            let f = splitmix64(key ^ splitmix64(right ^ (round << 56))) & mask;
            (left, right) = (right, left ^ f);
        }
        x = (left << half) | right;
        if x < n {
            return x;
        }
    }
}

/// A uniform draw in [0, 1).
fn unit(rng: &mut Pcg64Mcg) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

#[derive(Debug, Clone)]
enum Shape {
    Counted(u64),
    PerParent {
        parent: usize,
        min: u64,
        max: u64,
        weights: Option<Vec<(u64, u64)>>,
        /// The profile's [per] gives the range: a `count` expression gives way to it.
        from_profile: bool,
    },
}

/// A spec resolved with a profile and a seed: what every table holds, row by row.
pub struct Dataset<'s> {
    pub spec: &'s Spec,
    pub seed: u64,
    epoch: i64,
    shapes: Vec<Shape>,
    /// The rows that a `ref ... where` may pick, by the address of the `ref` generator (in the
    /// spec, which outlives the data set; a `when` branch may hold one).
    candidates: HashMap<usize, RowSet>,
    /// Unique columns: the rows (by key) whose first draws were taken, and the draw they use.
    retries: HashMap<(usize, usize), HashMap<u64, u32>>,
    /// Every cell (value and text) of small reference tables that other rows look up often
    /// (services, staff): at most `SMALL_TABLE_ROWS` rows each, so memory stays flat.
    small: Vec<Option<Vec<KeptRow>>>,
    /// The (table, column) pairs that a path or a `within` follows to another row: only these
    /// keep the row they point to.
    followed: Vec<Vec<bool>>,
    /// Per table, the `column_stream` of each column and of its children's decisions.
    streams: Vec<TableStreams>,
    /// Per table and column: whether the column draws again where a table-level unique set's
    /// combination was taken.
    redrawn: Vec<Vec<bool>>,
    /// Per table, the columns that `prev.x` reads.
    prev_columns: Vec<Vec<usize>>,
}

/// Per table, the columns that its expressions read of the previous sibling (`prev.x`).
fn prev_columns(spec: &Spec) -> Vec<Vec<usize>> {
    fn walk(e: &Expr, into: &mut Vec<usize>) {
        match e {
            Expr::Prev(c) if !into.contains(c) => into.push(*c),
            Expr::Template(parts) => parts.iter().for_each(|(p, _)| walk(p, into)),
            Expr::Neg(a) | Expr::Not(a) | Expr::Outer(a) => walk(a, into),
            Expr::Binary(_, a, b) => {
                walk(a, into);
                walk(b, into);
            }
            Expr::Func(_, args) | Expr::Array(args) => args.iter().for_each(|a| walk(a, into)),
            Expr::Object(fields) => fields.iter().for_each(|(_, a)| walk(a, into)),
            _ => {}
        }
    }
    fn walk_gen(g: &Gen, into: &mut Vec<usize>) {
        match g {
            Gen::Expr { expr } => walk(expr, into),
            Gen::When {
                cond,
                then,
                otherwise,
            } => {
                walk(cond, into);
                walk_gen(then, into);
                walk_gen(otherwise, into);
            }
            _ => {}
        }
    }
    spec.tables
        .iter()
        .map(|t| {
            let mut columns = Vec::new();
            for c in &t.columns {
                walk_gen(&c.generator, &mut columns);
            }
            columns
        })
        .collect()
}

struct TableStreams {
    columns: Vec<u64>,
    child_when: u64,
    child_presence: u64,
    child_count: u64,
}

impl TableStreams {
    fn new(seed: u64, table: &super::TableSpec) -> Self {
        let stream = |column| column_stream(seed, table.hash, column);
        TableStreams {
            columns: table.columns.iter().map(|c| stream(c.hash)).collect(),
            child_when: stream(CHILD_WHEN_STREAM),
            child_presence: stream(CHILD_PRESENCE_STREAM),
            child_count: stream(CHILD_COUNT_STREAM),
        }
    }
}

/// The rows of a table that a `ref ... where` may pick, in row order: a bit per row and a
/// running count per 64 rows, so that the i-th of them is found without listing them (a
/// million rows take 190 KB rather than 8 MB). Beyond `RESIDENT_ROWS` rows only a count per
/// block of `BLOCK_ROWS` rows is kept (16 bytes per 4096 rows), and the bits of the block an
/// `nth` lands in are recomputed from the candidates' cells, which are pure (a few recent
/// blocks are cached): the same answers, with memory flat at any size.
#[derive(Debug, Default)]
struct RowSet {
    words: Vec<u64>,
    /// How many rows match before each word.
    before: Vec<u32>,
    /// Only counts per block: how many rows match before each block.
    blocks: Option<Vec<u64>>,
    /// Streamed blocks' bits recently recomputed, the latest first.
    cache: std::sync::Mutex<std::collections::VecDeque<(usize, std::sync::Arc<Vec<u64>>)>>,
    rows: u64,
    len: u64,
}

/// The largest set kept bit by bit: 2 MB of bits and counts.
const RESIDENT_ROWS: u64 = 1 << 24;
/// Rows per block of a streamed set.
const BLOCK_ROWS: u64 = 4096;
/// Recomputed blocks a streamed set keeps (512 bytes of bits each).
const CACHED_BLOCKS: usize = 64;

impl RowSet {
    /// An empty set for a table of `rows` rows: bits when they fit `RESIDENT_ROWS`, block
    /// counts beyond.
    fn for_rows(rows: u64) -> Self {
        RowSet::new(rows > RESIDENT_ROWS)
    }

    fn new(streamed: bool) -> Self {
        RowSet {
            blocks: streamed.then(Vec::new),
            ..RowSet::default()
        }
    }

    /// Appends the next row, matching or not.
    fn push(&mut self, matches: bool) {
        if let Some(blocks) = &mut self.blocks {
            if self.rows.is_multiple_of(BLOCK_ROWS) {
                blocks.push(self.len);
            }
            self.len += u64::from(matches);
            self.rows += 1;
            return;
        }
        if self.rows.is_multiple_of(64) {
            self.words.push(0);
            self.before.push(self.len as u32);
        }
        if matches {
            *self.words.last_mut().expect("pushed") |= 1 << (self.rows % 64);
            self.len += 1;
        }
        self.rows += 1;
    }

    fn len(&self) -> u64 {
        self.len
    }

    /// The row of the `i`-th match (`i < len`); `matches` tells whether a row matches, for
    /// the block of a streamed set that `i` lands in.
    fn nth(&self, i: u64, matches: &mut dyn FnMut(u64) -> Eval<bool>) -> Eval<u64> {
        let Some(blocks) = &self.blocks else {
            let word = self.before.partition_point(|&b| u64::from(b) <= i) - 1;
            return Ok(
                word as u64 * 64 + nth_bit(self.words[word], i - u64::from(self.before[word]))
            );
        };
        let block = blocks.partition_point(|&b| b <= i) - 1;
        let words = self.block_words(block, matches)?;
        let mut left = i - blocks[block];
        for (w, &bits) in words.iter().enumerate() {
            let ones = u64::from(bits.count_ones());
            if left < ones {
                return Ok(block as u64 * BLOCK_ROWS + w as u64 * 64 + nth_bit(bits, left));
            }
            left -= ones;
        }
        Err(Failure::Done(Error::Internal(anyhow::anyhow!(
            "a block of candidates matched fewer rows when recomputed"
        ))))
    }

    /// The bits of a streamed set's `block`, from the cache or recomputed.
    fn block_words(
        &self,
        block: usize,
        matches: &mut dyn FnMut(u64) -> Eval<bool>,
    ) -> Eval<std::sync::Arc<Vec<u64>>> {
        {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(k) = cache.iter().position(|(b, _)| *b == block) {
                let hit = cache.remove(k).expect("found");
                let words = hit.1.clone();
                cache.push_front(hit);
                return Ok(words);
            }
        }
        let first = block as u64 * BLOCK_ROWS;
        let rows = first..(first + BLOCK_ROWS).min(self.rows);
        let mut words = vec![0u64; (rows.end - rows.start).div_ceil(64) as usize];
        for r in rows.clone() {
            if matches(r)? {
                let at = r - first;
                words[(at / 64) as usize] |= 1 << (at % 64);
            }
        }
        let words = std::sync::Arc::new(words);
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.push_front((block, words.clone()));
        cache.truncate(CACHED_BLOCKS);
        Ok(words)
    }
}

/// The position of the `n`-th set bit of `bits`.
fn nth_bit(mut bits: u64, n: u64) -> u64 {
    for _ in 0..n {
        bits &= bits - 1;
    }
    u64::from(bits.trailing_zeros())
}

/// What an error in the expressions deciding a table's children names as its column.
fn children_label(children: &super::Children) -> &'static str {
    match (
        &children.count,
        &children.range,
        &children.p_expr,
        &children.weight_exprs,
    ) {
        (Some(_), ..) => "count",
        (None, Some(_), ..) => "min/max",
        (None, None, Some(_), _) => "p",
        (None, None, None, Some(_)) => "counts",
        _ => "when",
    }
}

/// How a table-level unique set keeps its combinations distinct.
enum UniqueSet {
    /// A parent's key column beside a `distinct` ref: siblings never share the ref's value and
    /// rows of different parents differ in the parent's key.
    Guaranteed,
    /// This column draws again where a combination was taken.
    Redraw(usize),
    /// No column can draw again.
    Fixed,
}

fn unique_set_redraw(tables: &[super::TableSpec], table: usize, set: &[usize]) -> UniqueSet {
    let t = &tables[table];
    let parent_key = set
        .iter()
        .any(|&c| match (&t.columns[c].generator, t.source) {
            (Gen::Parent { column }, Source::PerParent { parent, .. }) => matches!(
                tables[parent].columns[*column].generator,
                Gen::Serial { .. } | Gen::Uuid
            ),
            _ => false,
        });
    let distinct_ref = set
        .iter()
        .any(|&c| matches!(t.columns[c].generator, Gen::Ref { distinct: true, .. }));
    if parent_key && distinct_ref {
        return UniqueSet::Guaranteed;
    }
    set.iter()
        .rev()
        .copied()
        .find(|&c| {
            !matches!(
                t.columns[c].generator,
                Gen::Serial { .. }
                    | Gen::Ordinal { .. }
                    | Gen::Parent { .. }
                    | Gen::Constant { .. }
                    | Gen::Ref { distinct: true, .. }
            )
        })
        .map_or(UniqueSet::Fixed, UniqueSet::Redraw)
}

/// A kept row: each cell's value and, when the value is not text, its text.
type KeptRow = Vec<KeptCell>;

/// A kept cell: its value and its text.
type KeptCell = (Value, Option<String>);

/// The largest counted table whose cells are kept (see `Dataset::small`).
const SMALL_TABLE_ROWS: u64 = 256;

impl<'s> Dataset<'s> {
    pub fn new(spec: &'s Spec, profile: &Profile, seed: u64) -> Result<Self> {
        super::check_profile_tables(spec, profile)?;
        let mut shapes = Vec::with_capacity(spec.tables.len());
        for table in &spec.tables {
            let shape = match table.source {
                Source::Counted => {
                    let fixed = table.fixed.as_ref().map_or(0, |f| f.rows.len() as u64);
                    let count = profile
                        .counts
                        .get(&table.name)
                        .copied()
                        .or(table.default_count)
                        .or((fixed > 0).then_some(fixed))
                        .ok_or_else(|| {
                            Error::usage(format!(
                                "profile {}: no row count for table {} (add it under [counts])",
                                profile.name, table.name
                            ))
                        })?;
                    if count < fixed {
                        return Err(Error::usage(format!(
                            "profile {}: [counts] {} = {count}, fewer than its {fixed} fixed rows",
                            profile.name, table.name
                        )));
                    }
                    Shape::Counted(count)
                }
                Source::PerParent { parent, min, max } => match profile.per.get(&table.name) {
                    None => Shape::PerParent {
                        parent,
                        min,
                        max,
                        weights: table.children.weights.clone(),
                        from_profile: false,
                    },
                    Some(per) => {
                        let (min, max) = per.bounds();
                        let weights = match per {
                            PerCounts::Range(..) => None,
                            PerCounts::Weights(w) => Some(w.clone()),
                        };
                        Shape::PerParent {
                            parent,
                            min,
                            max,
                            weights,
                            from_profile: true,
                        }
                    }
                },
            };
            shapes.push(shape);
        }
        let redrawn = spec
            .tables
            .iter()
            .enumerate()
            .map(|(ti, table)| {
                let mut columns = vec![false; table.columns.len()];
                for set in &table.unique {
                    if let UniqueSet::Redraw(c) = unique_set_redraw(&spec.tables, ti, set) {
                        columns[c] = true;
                    }
                }
                columns
            })
            .collect();
        let mut data = Dataset {
            redrawn,
            prev_columns: prev_columns(spec),
            spec,
            seed,
            epoch: profile.epoch,
            shapes,
            candidates: HashMap::new(),
            retries: HashMap::new(),
            small: Vec::new(),
            streams: spec
                .tables
                .iter()
                .map(|t| TableStreams::new(seed, t))
                .collect(),
            followed: {
                let set = super::followed_columns(spec);
                spec.tables
                    .iter()
                    .enumerate()
                    .map(|(t, table)| {
                        (0..table.columns.len())
                            .map(|c| set.contains(&(t, c)))
                            .collect()
                    })
                    .collect()
            },
        };
        data.check_references()?;
        data.candidates = data.filter_candidates()?;
        data.check_distinct()?;
        data.retries = data.make_unique(&profile.name)?;
        data.small = data.keep_small_tables()?;
        data.try_first_rows()?;
        Ok(data)
    }

    /// A table whose rows are referenced must have rows to offer.
    fn check_references(&self) -> Result<()> {
        for (ti, table) in self.spec.tables.iter().enumerate() {
            for column in &table.columns {
                if let Gen::Ref { table: target, .. } = column.generator
                    && self.may_have_rows(ti)
                    && !self.may_have_rows(target)
                {
                    return Err(Error::usage(format!(
                        "table {}, column {}: references table {}, which gets no rows",
                        table.name, column.name, self.spec.tables[target].name
                    )));
                }
            }
        }
        Ok(())
    }

    /// Why no row of `target` can be picked.
    fn no_match(&self, target: usize, filter: &Filter) -> String {
        let t = &self.spec.tables[target];
        match filter {
            Filter::Equals(c, wanted) => format!(
                "no row of {} has {} = {wanted:?}",
                t.name, t.columns[*c].name
            ),
            Filter::Condition { .. } => format!("no row of {} matches the `where`", t.name),
        }
    }

    /// A `distinct` ref needs at least as many candidates as a parent may have children.
    fn check_distinct(&self) -> Result<()> {
        fn distinct_refs<'g>(generator: &'g Gen, into: &mut Vec<&'g Gen>) {
            match generator {
                Gen::Ref { distinct: true, .. } => into.push(generator),
                Gen::When {
                    then, otherwise, ..
                } => {
                    distinct_refs(then, into);
                    distinct_refs(otherwise, into);
                }
                _ => {}
            }
        }
        for (ti, table) in self.spec.tables.iter().enumerate() {
            let Shape::PerParent { parent, max, .. } = self.shapes[ti] else {
                continue;
            };
            for column in &table.columns {
                let mut refs = Vec::new();
                distinct_refs(&column.generator, &mut refs);
                for generator in refs {
                    let Gen::Ref {
                        table: target,
                        filter,
                        ..
                    } = generator
                    else {
                        continue;
                    };
                    let candidates = match filter {
                        Some(_) => self.candidates[&(std::ptr::from_ref(generator) as usize)].len(),
                        None => self.root_count(*target),
                    };
                    if max > candidates && self.may_have_rows(ti) {
                        return Err(Error::usage(format!(
                            "{}: table {}, column {}: distinct: a row of {} may have up to {max} rows here, \
                             but {} has only {candidates} candidates to draw without replacement \
                             (lower the table's max or raise the count of {})",
                            self.spec.path.display(),
                            table.name,
                            column.name,
                            self.spec.tables[parent].name,
                            self.spec.tables[*target].name,
                            self.spec.tables[*target].name,
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    fn may_have_rows(&self, table: usize) -> bool {
        match self.shapes[table] {
            Shape::Counted(n) => n > 0,
            Shape::PerParent { parent, max, .. } => max > 0 && self.may_have_rows(parent),
        }
    }

    fn filter_candidates(&self) -> Result<HashMap<usize, RowSet>> {
        fn refs_with_where<'g>(generator: &'g Gen, into: &mut Vec<&'g Gen>) {
            match generator {
                Gen::Ref {
                    filter: Some(_), ..
                } => into.push(generator),
                Gen::When {
                    then, otherwise, ..
                } => {
                    refs_with_where(then, into);
                    refs_with_where(otherwise, into);
                }
                _ => {}
            }
        }
        let mut candidates = HashMap::new();
        for (ti, table) in self.spec.tables.iter().enumerate() {
            for column in &table.columns {
                let mut refs = Vec::new();
                refs_with_where(&column.generator, &mut refs);
                for generator in refs {
                    let Gen::Ref {
                        table: target,
                        filter: Some(filter),
                        distinct,
                        ..
                    } = generator
                    else {
                        continue;
                    };
                    if let Filter::Condition { outer: true, .. } = filter {
                        // The matches differ per referencing row: found as each row is made.
                        continue;
                    }
                    let count = self.root_count(*target);
                    if count > MAX_FILTERED_ROWS && !*distinct {
                        // Larger tables are not listed: each row draws candidates until one
                        // matches (`RowValues::pick_matching`), with memory flat.
                        continue;
                    }
                    // A `distinct` ref needs the count and the n-th match: listed at any size
                    // (beyond `RESIDENT_ROWS`, as counts per block).
                    let mut matching = RowSet::for_rows(count);
                    for i in 0..count {
                        let mut row = RowValues::new(self, *target, RowId::counted(i));
                        matching.push(
                            row.matches(filter, i)
                                .map_err(|f| f.into_error(&table.name, &column.name))?,
                        );
                    }
                    if matching.len() == 0 && self.may_have_rows(ti) {
                        return Err(Error::usage(format!(
                            "table {}, column {}: {}",
                            table.name,
                            column.name,
                            self.no_match(*target, filter)
                        )));
                    }
                    candidates.insert(std::ptr::from_ref(generator) as usize, matching);
                }
            }
        }
        Ok(candidates)
    }

    /// The row of the `i`-th candidate of `rows`, the matches of `filter` in the counted `target`.
    fn nth_candidate(&self, rows: &RowSet, target: usize, filter: &Filter, i: u64) -> Eval<u64> {
        rows.nth(i, &mut |r| {
            RowValues::new(self, target, RowId::counted(r)).matches(filter, r)
        })
    }

    /// Unique columns and column sets: refuses a generator whose values are too few for the
    /// rows, then walks the table once in order and, where a row's value (or combination) was
    /// already taken, lets it draw again from its own stream (draw 1, 2, ...). Only the rows
    /// that redrew are kept, so the result is the same on every run and the data stays a
    /// function of the row key.
    fn make_unique(&self, profile: &str) -> Result<HashMap<(usize, usize), HashMap<u64, u32>>> {
        let mut all = HashMap::new();
        for (ti, table) in self.spec.tables.iter().enumerate() {
            // (the columns whose values together are distinct, the column that draws again)
            let mut sets: Vec<(Vec<usize>, usize)> = Vec::new();
            for (ci, column) in table.columns.iter().enumerate() {
                if !column.unique || matches!(column.generator, Gen::Serial { .. } | Gen::Uuid) {
                    continue;
                }
                let rows = self.count_rows(ti, 0..self.root_count(ti));
                if let Some(space) = super::gen_space(&column.generator, ti, &self.spec.tables)
                    && space < u128::from(rows)
                {
                    return Err(Error::usage(format!(
                        "seed spec: table {}, column {}: unique, but its generator makes at most {space} distinct values for the {rows} rows of profile {profile}",
                        table.name, column.name
                    )));
                }
                sets.push((vec![ci], ci));
            }
            for set in &table.unique {
                match unique_set_redraw(&self.spec.tables, ti, set) {
                    UniqueSet::Guaranteed => {}
                    UniqueSet::Redraw(column) => sets.push((set.clone(), column)),
                    UniqueSet::Fixed => {
                        return Err(Error::usage(format!(
                            "{}: table {}: unique ({}): no column of the set can draw again (each is a serial, ordinal, parent, constant or distinct ref); add a random column to the set",
                            self.spec.path.display(),
                            table.name,
                            set.iter()
                                .map(|&c| table.columns[c].name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )));
                    }
                }
            }
            for (columns, redraw) in sets {
                let redrawn = self.redraw_taken(ti, &columns, redraw)?;
                all.insert((ti, redraw), redrawn);
            }
        }
        Ok(all)
    }

    /// The cells of counted tables of at most `SMALL_TABLE_ROWS` rows whose columns point to no
    /// other row (a lookup into them is then a copy).
    fn keep_small_tables(&self) -> Result<Vec<Option<Vec<KeptRow>>>> {
        let mut small = Vec::with_capacity(self.spec.tables.len());
        for (ti, table) in self.spec.tables.iter().enumerate() {
            let Shape::Counted(count) = self.shapes[ti] else {
                small.push(None);
                continue;
            };
            let local = table.columns.iter().all(|c| {
                !matches!(
                    c.generator,
                    Gen::Ref { .. } | Gen::Parent { .. } | Gen::Expr { .. } | Gen::When { .. }
                )
            });
            if count > SMALL_TABLE_ROWS || !local {
                small.push(None);
                continue;
            }
            let mut rows = Vec::with_capacity(count as usize);
            for i in 0..count {
                let mut values = RowValues::new(self, ti, RowId::counted(i));
                let mut row = Vec::with_capacity(table.columns.len());
                for c in 0..table.columns.len() {
                    let text = values.get(c)?.map(String::from);
                    row.push((values.value(c)?, text));
                }
                rows.push(row);
            }
            small.push(Some(rows));
        }
        Ok(small)
    }

    /// Generates the first row of every table, so that an expression that cannot be evaluated
    /// (a type mismatch, a division by zero) is reported before any connection.
    fn try_first_rows(&self) -> Result<()> {
        for (ti, table) in self.spec.tables.iter().enumerate() {
            let roots = self.root_count(ti).min(8);
            let mut done = false;
            self.for_each_row(ti, 0..roots, &mut |mut row| {
                if done {
                    return Ok(());
                }
                done = true;
                row.index = Some(0);
                let mut values = RowValues::new(self, ti, row);
                for c in 0..table.columns.len() {
                    values.get(c)?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// A `serial` cell of a row whose position is known, without generating the row: the most
    /// common target of a ref or parent (an id).
    fn serial_value(&self, table: usize, column: usize, row: &RowId) -> Option<Value> {
        let t = &self.spec.tables[table];
        let spec = &t.columns[column];
        let (Gen::Serial { start }, Some(index), 0.0) = (&spec.generator, row.index, spec.null)
        else {
            return None;
        };
        if let Some(fixed) = &t.fixed
            && fixed.columns[column].is_some()
            && (index as usize) < fixed.rows.len()
        {
            return None;
        }
        Some(Value::Int(start + index as i64))
    }

    fn attempt(&self, table: usize, column: usize, key: u64) -> u32 {
        self.retries
            .get(&(table, column))
            .and_then(|m| m.get(&key))
            .copied()
            .unwrap_or(0)
    }

    /// The counted table whose rows a table's rows descend from.
    pub fn root(&self, table: usize) -> usize {
        match self.shapes[table] {
            Shape::Counted(_) => table,
            Shape::PerParent { parent, .. } => self.root(parent),
        }
    }

    /// The row count of a table's root.
    pub fn root_count(&self, table: usize) -> u64 {
        match self.shapes[self.root(table)] {
            Shape::Counted(n) => n,
            Shape::PerParent { .. } => unreachable!("a root is counted"),
        }
    }

    /// How many children `parent_row` has in the per-parent `table`.
    fn children(&self, table: usize, parent_row: &RowId) -> Result<u64> {
        let Shape::PerParent { parent, .. } = &self.shapes[table] else {
            return Ok(0);
        };
        let children = &self.spec.tables[table].children;
        if children.expressions().next().is_none() {
            return Ok(self.children_unconditional(table, parent_row));
        }
        RowValues::new(self, *parent, parent_row.clone())
            .children_here(table)
            .map_err(|f| f.into_error(&self.spec.tables[table].name, children_label(children)))
    }

    /// `children` once the table's `when` holds for the parent: `p`, then the count.
    fn children_unconditional(&self, table: usize, parent_row: &RowId) -> u64 {
        self.children_counted(table, parent_row, None)
    }

    /// `children_unconditional`, with `p` (when given) from the table's `p` expression.
    fn children_counted(&self, table: usize, parent_row: &RowId, p: Option<f64>) -> u64 {
        let Shape::PerParent {
            min, max, weights, ..
        } = &self.shapes[table]
        else {
            return 0;
        };
        let t = &self.spec.tables[table];
        let p = p.unwrap_or(t.children.p);
        if p < 1.0 {
            let mut rng = cell_stream_at(self.streams[table].child_presence, parent_row.key);
            if unit(&mut rng) >= p {
                return 0;
            }
        }
        if let Some(weights) = weights {
            let mut rng = cell_stream_at(self.streams[table].child_count, parent_row.key);
            let total = weights.last().expect("validated non-empty").1;
            let r = below(&mut rng, total);
            return weights[weights.partition_point(|&(_, c)| c <= r)].0;
        }
        if min == max {
            return *min;
        }
        let mut rng = cell_stream_at(self.streams[table].child_count, parent_row.key);
        min + below(&mut rng, max - min + 1)
    }

    /// Calls `f` with every row of `table` that descends from the root rows `roots`, in table
    /// order. Positions (`index`) are left to the caller for per-parent tables.
    pub fn for_each_row(
        &self,
        table: usize,
        roots: Range<u64>,
        f: &mut dyn FnMut(RowId) -> Result<()>,
    ) -> Result<()> {
        match self.shapes[table] {
            Shape::Counted(_) => roots.map(RowId::counted).try_for_each(f),
            Shape::PerParent { parent, .. } => self.for_each_row(parent, roots, &mut |p| {
                let n = self.children(table, &p)?;
                let p = Rc::new(p);
                (0..n).try_for_each(|ordinal| f(RowId::child(&p, ordinal)))
            }),
        }
    }

    /// `for_each_row` with each row's cells, positioned from `first_index`. The rows of a
    /// per-parent table are lent their parent row's cells, so that what siblings read of their
    /// parent (and of the rows it reaches) is computed once for all of them.
    pub fn for_each_row_values<'a>(
        &'a self,
        table: usize,
        roots: Range<u64>,
        first_index: u64,
        f: &mut dyn FnMut(&mut RowValues<'a>) -> Result<()>,
    ) -> Result<()> {
        let mut index = first_index;
        self.each_row_values(table, roots, Some(&mut index), f)
    }

    fn each_row_values<'a>(
        &'a self,
        table: usize,
        roots: Range<u64>,
        mut index: Option<&mut u64>,
        f: &mut dyn FnMut(&mut RowValues<'a>) -> Result<()>,
    ) -> Result<()> {
        let mut position = |row: &mut RowId| {
            if let Some(i) = index.as_deref_mut() {
                row.index = Some(*i);
                *i += 1;
            }
        };
        match self.shapes[table] {
            Shape::Counted(_) => {
                // One row's memory, made each row in turn.
                let mut values: Option<RowValues<'a>> = None;
                roots.into_iter().try_for_each(|key| {
                    let mut row = RowId::counted(key);
                    position(&mut row);
                    f(RowValues::reuse(&mut values, self, table, row, 0))
                })
            }
            Shape::PerParent { parent, .. } => {
                self.each_row_values(parent, roots, None, &mut |p| {
                    let n = p.children_here(table).map_err(|f| {
                        let t = &self.spec.tables[table];
                        f.into_error(&t.name, children_label(&t.children))
                    })?;
                    let parent_row = Rc::new(p.row.clone());
                    if !self.prev_columns[table].is_empty() {
                        // Each child is lent the parent in turn, and kept for the next one's
                        // `prev.`.
                        let mut previous: Option<RowValues<'a>> = None;
                        for ordinal in 0..n {
                            let mut row = RowId::child(&parent_row, ordinal);
                            position(&mut row);
                            let mut child = RowValues::new(self, table, row);
                            if let Some(previous) = previous.take() {
                                child.follow_sibling(previous)?;
                            }
                            p.lend_to(&mut child, |child| f(child))?;
                            previous = Some(child);
                        }
                        return Ok(());
                    }
                    // One child's memory, made each sibling in turn; the lent parent stays first
                    // in its links, moved in before the first sibling and out after the last.
                    let mut child: Option<RowValues<'a>> = None;
                    let mut result = Ok(());
                    for ordinal in 0..n {
                        let mut row = RowId::child(&parent_row, ordinal);
                        position(&mut row);
                        // The child's own links are its alone.
                        let child = RowValues::reuse(&mut child, self, table, row, 1);
                        if child.links.is_empty() {
                            child.links.push((PARENT_LINK, p.lend()));
                        }
                        result = f(child);
                        debug_assert_eq!(child.links[0].0, PARENT_LINK, "the lent parent stays");
                        if result.is_err() {
                            break;
                        }
                    }
                    if let Some(mut child) = child {
                        p.take_back(child.links.swap_remove(0).1);
                    }
                    result
                })
            }
        }
    }

    /// Rows of `table` descending from `roots`, without generating them. A `when` that cannot
    /// be evaluated counts no children here; generating the rows reports it.
    pub fn count_rows(&self, table: usize, roots: Range<u64>) -> u64 {
        match self.shapes[table] {
            Shape::Counted(_) => roots.end - roots.start,
            Shape::PerParent { parent, .. } => {
                let mut total = 0;
                let _ = self.for_each_row(parent, roots, &mut |p| {
                    total += self.children(table, &p).unwrap_or(0);
                    Ok(())
                });
                total
            }
        }
    }

    /// Picks any row of `table` from `rng` (uniform over a counted table; over parents, then
    /// children, in a per-parent one).
    fn pick_row(&self, table: usize, rng: &mut Pcg64Mcg) -> Result<RowId> {
        match self.shapes[table] {
            Shape::Counted(n) => Ok(RowId::counted(below(rng, n.max(1)))),
            Shape::PerParent { parent, .. } => {
                for _ in 0..REF_ATTEMPTS {
                    let p = self.pick_row(parent, rng)?;
                    let n = self.children(table, &p)?;
                    if n > 0 {
                        let ordinal = below(rng, n);
                        return Ok(RowId::child(&Rc::new(p), ordinal));
                    }
                }
                Err(Error::usage(format!(
                    "table {} has too few rows to reference",
                    self.spec.tables[table].name
                )))
            }
        }
    }

    /// Picks a row of the per-parent `table` descending from `row` of `ancestor`; `None` when
    /// that row has no such descendants.
    fn pick_under(
        &self,
        table: usize,
        ancestor: usize,
        row: &RowId,
        rng: &mut Pcg64Mcg,
    ) -> Result<Option<RowId>> {
        let Shape::PerParent { parent, .. } = self.shapes[table] else {
            return Ok(None);
        };
        for _ in 0..REF_ATTEMPTS {
            let p = if parent == ancestor {
                row.clone()
            } else {
                match self.pick_under(parent, ancestor, row, rng)? {
                    Some(p) => p,
                    None => return Ok(None),
                }
            };
            let n = self.children(table, &p)?;
            if n > 0 {
                let ordinal = below(rng, n);
                return Ok(Some(RowId::child(&Rc::new(p), ordinal)));
            }
            if parent == ancestor {
                return Ok(None);
            }
        }
        Ok(None)
    }
}

/// Why an expression failed: a message about the cell being computed, or an error that already
/// names its own table and column.
pub(crate) enum Failure {
    Here(String),
    Done(Error),
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::Here(message)
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Self {
        Failure::Here(message.to_string())
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Done(error)
    }
}

impl Failure {
    fn into_error(self, table: &str, column: &str) -> Error {
        match self {
            Failure::Here(message) => Error::usage(format!(
                "seed spec: table {table}, column {column}: {message}"
            )),
            Failure::Done(error) => error,
        }
    }
}

type Eval<T> = std::result::Result<T, Failure>;

/// Stands in for a column in `RowValues::links`: the per-parent parent row.
const PARENT_LINK: usize = usize::MAX;

/// The cells of one row, computed on demand (a template, an expression or a reference may need
/// another cell, here or in a related row).
pub struct RowValues<'d> {
    data: &'d Dataset<'d>,
    table: usize,
    row: RowId,
    /// Each cell's value once computed, and its text once asked for when the value is not text.
    values: Vec<Cell>,
    /// For ref/parent columns (and paths to them): (column, table, row) pointed to.
    pointers: Vec<(usize, usize, RowId)>,
    /// Related rows already reached from this one, by the column that points to them (or
    /// `PARENT_LINK`), so that several paths through one ref compute its row once.
    links: Vec<(usize, RowValues<'d>)>,
    /// While a unique column looks for a free value: (column, draw).
    attempt: Option<(usize, u32)>,
    /// The row's cells when its table is kept whole (`Dataset::small`).
    kept: Option<&'d [KeptCell]>,
    /// The previous sibling, for `prev.x`: with every column that `prev.` reads computed, and
    /// without its own previous sibling (so the chain is one row long).
    prev: Option<Box<RowValues<'d>>>,
}

/// A row's cells: its value and, once asked for, its text.
type Cell = (Option<Value>, Option<String>);

thread_local! {
    /// Cell vectors of dropped rows, reused: a reset makes several rows (the row itself and
    /// the rows it reaches) for every row it sends, and allocating each was a tenth of the
    /// generation time.
    static SPARE_CELLS: std::cell::RefCell<Vec<Vec<Cell>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// How many cell vectors a thread keeps for reuse: more than rows reach each other at once.
const SPARE_CELLS_KEPT: usize = 64;

fn spare_cells(columns: usize) -> Vec<Cell> {
    let mut cells = SPARE_CELLS.with_borrow_mut(Vec::pop).unwrap_or_default();
    cells.resize_with(columns, Default::default);
    cells
}

impl Drop for RowValues<'_> {
    fn drop(&mut self) {
        let mut cells = std::mem::take(&mut self.values);
        if cells.capacity() > 0 {
            cells.clear();
            SPARE_CELLS.with_borrow_mut(|spare| {
                if spare.len() < SPARE_CELLS_KEPT {
                    spare.push(cells);
                }
            });
        }
    }
}

impl<'d> RowValues<'d> {
    pub fn new(data: &'d Dataset<'d>, table: usize, row: RowId) -> Self {
        let (kept, columns) = Self::kept(data, table, &row);
        RowValues {
            data,
            table,
            row,
            values: spare_cells(columns),
            pointers: Vec::new(),
            links: Vec::new(),
            attempt: None,
            kept,
            prev: None,
        }
    }

    /// The row's cells when its table is kept whole, and how many cells it computes otherwise.
    fn kept(data: &'d Dataset<'d>, table: usize, row: &RowId) -> (Option<&'d [KeptCell]>, usize) {
        let kept = match (data.small.get(table), row.index) {
            (Some(Some(rows)), Some(index)) => rows.get(index as usize).map(Vec::as_slice),
            _ => None,
        };
        let columns = if kept.is_some() {
            0
        } else {
            data.spec.tables[table].columns.len()
        };
        (kept, columns)
    }

    /// The row in `slot` made row `row` of `table` (`become_row`), or a new one put there.
    fn reuse<'s>(
        slot: &'s mut Option<RowValues<'d>>,
        data: &'d Dataset<'d>,
        table: usize,
        row: RowId,
        links_kept: usize,
    ) -> &'s mut RowValues<'d> {
        match slot {
            Some(values) => {
                values.become_row(row, links_kept);
                values
            }
            None => slot.insert(RowValues::new(data, table, row)),
        }
    }

    /// Makes this the row `row` of the same table, computed afresh: its memory is kept, and
    /// its first `links_kept` links (a lent parent, which siblings share).
    fn become_row(&mut self, row: RowId, links_kept: usize) {
        let columns;
        (self.kept, columns) = Self::kept(self.data, self.table, &row);
        self.values.clear();
        self.values.resize_with(columns, Default::default);
        self.pointers.clear();
        self.links.truncate(links_kept);
        self.attempt = None;
        self.prev = None;
        self.row = row;
    }

    /// The text of a cell, `None` for NULL.
    pub fn get(&mut self, column: usize) -> Result<Option<&str>> {
        if let Some(kept) = self.kept {
            return Ok(match &kept[column] {
                (Value::Text(s), _) => Some(s.as_str()),
                (_, text) => text.as_deref(),
            });
        }
        self.ensure(column)?;
        let (value, text) = &mut self.values[column];
        let value = value.as_ref().expect("computed");
        if !matches!(value, Value::Null | Value::Text(_)) && text.is_none() {
            *text = value.text();
        }
        let (value, text) = &self.values[column];
        Ok(match value.as_ref().expect("computed") {
            Value::Null => None,
            Value::Text(s) => Some(s.as_str()),
            _ => text.as_deref(),
        })
    }

    /// The typed value of a cell, borrowed.
    pub fn value_ref(&mut self, column: usize) -> Result<&Value> {
        if let Some(kept) = self.kept {
            return Ok(&kept[column].0);
        }
        self.ensure(column)?;
        Ok(self.values[column].0.as_ref().expect("computed"))
    }

    /// The typed value of a cell.
    pub fn value(&mut self, column: usize) -> Result<Value> {
        self.value_ref(column).cloned()
    }

    fn ensure(&mut self, column: usize) -> Result<()> {
        if self.values[column].0.is_none() {
            let value = self.compute(column)?;
            self.values[column].0 = Some(value);
        }
        Ok(())
    }

    /// Notes the row a ref or parent column's value points to, where paths follow it.
    fn points_to(&mut self, column: usize, table: usize, row: RowId) {
        if self.data.followed[self.table][column] {
            self.pointers.push((column, table, row));
        }
    }

    /// The row a ref or parent column points to.
    fn pointer(&mut self, column: usize) -> Result<Option<(usize, RowId)>> {
        if self.kept.is_some() {
            return Ok(None);
        }
        self.ensure(column)?;
        Ok(self
            .pointers
            .iter()
            .find(|(c, ..)| *c == column)
            .map(|(_, table, row)| (*table, row.clone())))
    }

    /// This row's computed state, moved out (this row is left empty until `take_back`).
    fn lend(&mut self) -> RowValues<'d> {
        RowValues {
            data: self.data,
            table: self.table,
            row: self.row.clone(),
            values: std::mem::take(&mut self.values),
            pointers: std::mem::take(&mut self.pointers),
            links: std::mem::take(&mut self.links),
            attempt: self.attempt,
            kept: self.kept,
            prev: self.prev.take(),
        }
    }

    /// Runs `f` on `child` with this row lent to it as its parent (the child reaches it through
    /// its parent link), then takes the row back with whatever the child computed in it: what
    /// children read of their parent is computed once, not once each.
    fn lend_to<R>(
        &mut self,
        child: &mut RowValues<'d>,
        f: impl FnOnce(&mut RowValues<'d>) -> R,
    ) -> R {
        child.links.push((PARENT_LINK, self.lend()));
        let result = f(child);
        let lent = child
            .links
            .iter()
            .position(|(c, _)| *c == PARENT_LINK)
            .expect("the lent parent");
        self.take_back(child.links.swap_remove(lent).1);
        result
    }

    fn take_back(&mut self, mut lent: RowValues<'d>) {
        self.values = std::mem::take(&mut lent.values);
        self.pointers = std::mem::take(&mut lent.pointers);
        self.links = std::mem::take(&mut lent.links);
        self.prev = lent.prev.take();
    }

    /// The related row that `column` (or `PARENT_LINK`) points to, computed once per row.
    fn link(&mut self, column: usize) -> Eval<Option<&mut RowValues<'d>>> {
        if let Some(i) = self.links.iter().position(|(c, _)| *c == column) {
            return Ok(Some(&mut self.links[i].1));
        }
        let (table, row) = if column == PARENT_LINK {
            self.parent()?
        } else {
            match self.pointer(column)? {
                Some(target) => target,
                None => return Ok(None),
            }
        };
        self.links
            .push((column, RowValues::new(self.data, table, row)));
        Ok(Some(&mut self.links.last_mut().expect("pushed").1))
    }

    /// A cell's value (a ref's or parent's notes the row it points to: `points_to`).
    fn compute(&mut self, column: usize) -> Result<Value> {
        let data = self.data;
        let table = &data.spec.tables[self.table];
        if let (Some(fixed), Some(index)) = (&table.fixed, self.row.index)
            && let (Some(row), Some(Some(position))) =
                (fixed.rows.get(index as usize), fixed.columns.get(column))
        {
            let value = match row.get(*position).cloned().flatten() {
                Some(text) => Value::Text(text),
                None => Value::Null,
            };
            return Ok(value);
        }
        let spec = &table.columns[column];
        let attempt = match self.attempt {
            Some((c, attempt)) if c == column => attempt,
            _ if spec.unique || data.redrawn[self.table][column] => {
                data.attempt(self.table, column, self.row.key)
            }
            _ => 0,
        };
        let stream = if attempt == 0 {
            data.streams[self.table].columns[column]
        } else {
            column_stream(
                data.seed,
                table.hash,
                splitmix64(spec.hash ^ u64::from(attempt)),
            )
        };
        let mut rng = cell_stream_at(stream, self.row.key);
        if spec.null > 0.0 && unit(&mut rng) < spec.null {
            return Ok(Value::Null);
        }
        self.generate(&spec.generator, column, &mut rng)
            .map_err(|f| f.into_error(&table.name, &spec.name))
    }

    fn generate(&mut self, generator: &'d Gen, column: usize, rng: &mut Pcg64Mcg) -> Eval<Value> {
        let data = self.data;
        let table = &data.spec.tables[self.table];
        Ok(match generator {
            Gen::Serial { start } => {
                let index = self.row.index.ok_or_else(|| {
                    Error::Internal(anyhow::anyhow!(
                        "serial in {} without a row position",
                        table.name
                    ))
                })?;
                Value::Int(start + index as i64)
            }
            Gen::Ordinal { start } => Value::Int(start + self.row.ordinal as i64),
            Gen::Uuid => {
                let bits = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
                // Version 4, RFC 4122 variant.
                let bits = (bits & !(0xf << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
                Value::Text(super::uuid_text(bits))
            }
            Gen::Int { min, max } => Value::Int(between(rng, *min, *max)),
            Gen::Decimal { min, max, scale } => {
                Value::Dec(Decimal::new(between(rng, *min, *max), *scale))
            }
            Gen::Bool { p } => Value::Bool(unit(rng) < *p),
            Gen::Choice { values, cumulative } => {
                let total = *cumulative.last().expect("validated non-empty");
                let r = below(rng, total);
                let i = cumulative.partition_point(|&c| c <= r);
                Value::Text(values[i].clone())
            }
            Gen::Cycle { values } => {
                Value::Text(values[(self.row.ordinal % values.len() as u64) as usize].clone())
            }
            Gen::Pick { values } => {
                Value::Text(values[below(rng, values.len() as u64) as usize].clone())
            }
            Gen::Format { parts } => {
                let mut text = String::new();
                for part in parts {
                    match part {
                        Part::Text(t) => text.push_str(t),
                        Part::Column(c, case) => {
                            let value = self.get(*c)?.unwrap_or("");
                            match case {
                                Case::Keep => text.push_str(value),
                                Case::Lower => text.push_str(&value.to_lowercase()),
                                Case::Upper => text.push_str(&value.to_uppercase()),
                            }
                        }
                    }
                }
                Value::Text(text)
            }
            Gen::Date { from, to } => {
                Value::Date(data.epoch.div_euclid(86_400) + between(rng, *from, *to))
            }
            Gen::Timestamp { from, to } => Value::Timestamp(data.epoch + between(rng, *from, *to)),
            Gen::Ref {
                table: target,
                column: target_column,
                filter,
                within,
                distinct,
            } => {
                let row = match (filter, within) {
                    (Some(filter), _) if *distinct => {
                        let rows = &data.candidates[&(std::ptr::from_ref(generator) as usize)];
                        RowId::counted(data.nth_candidate(
                            rows,
                            *target,
                            filter,
                            self.distinct_draw(column, rows.len())?,
                        )?)
                    }
                    (None, None) if *distinct => {
                        let n = data.root_count(*target);
                        RowId::counted(self.distinct_draw(column, n)?)
                    }
                    (Some(filter), _) => {
                        match data
                            .candidates
                            .get(&(std::ptr::from_ref(generator) as usize))
                        {
                            Some(rows) => RowId::counted(data.nth_candidate(
                                rows,
                                *target,
                                filter,
                                below(rng, rows.len()),
                            )?),
                            None => match self.pick_matching(filter, *target, rng)? {
                                Some(row) => row,
                                None => match filter {
                                    Filter::Condition { outer: true, .. } => {
                                        return Ok(Value::Null);
                                    }
                                    _ => return Err(data.no_match(*target, filter).into()),
                                },
                            },
                        }
                    }
                    (None, Some(w)) => {
                        let Some((ancestor, ancestor_row)) = self.pointer(*w)? else {
                            return Ok(Value::Null);
                        };
                        match data.pick_under(*target, ancestor, &ancestor_row, rng)? {
                            Some(row) => row,
                            None => return Ok(Value::Null),
                        }
                    }
                    (None, None) => data.pick_row(*target, rng)?,
                };
                if let Some(value) = data.serial_value(*target, *target_column, &row) {
                    self.points_to(column, *target, row);
                    return Ok(value);
                }
                let mut other = RowValues::new(data, *target, row.clone());
                let value = other.value(*target_column)?;
                if data.followed[self.table][column] {
                    self.links.push((column, other));
                }
                self.points_to(column, *target, row);
                return Ok(value);
            }
            Gen::Parent {
                column: parent_column,
            } => {
                let (parent, parent_row) = self.parent()?;
                if let Some(value) = data.serial_value(parent, *parent_column, &parent_row) {
                    self.points_to(column, parent, parent_row);
                    return Ok(value);
                }
                let other = self.link(PARENT_LINK)?.expect("a parent row");
                let value = other.value(*parent_column)?;
                self.points_to(column, parent, parent_row);
                return Ok(value);
            }
            Gen::Constant { value } => match value {
                Some(text) => Value::Text(text.clone()),
                None => Value::Null,
            },
            Gen::Expr {
                expr:
                    Expr::Path {
                        start,
                        hops,
                        column: end,
                        ..
                    },
            } => {
                let (value, pointer) = self.follow(*start, hops, *end)?;
                if let Some((table, row)) = pointer {
                    self.points_to(column, table, row);
                }
                return Ok(value);
            }
            Gen::Expr { expr } => self.eval(expr, rng)?,
            Gen::When {
                cond,
                then,
                otherwise,
            } => {
                let holds = self.eval(cond, rng)?.truthy()?;
                return self.generate(if holds { then } else { otherwise }, column, rng);
            }
            Gen::Csv {
                rows,
                field,
                stream,
            } => {
                let mut pick = cell_stream(data.seed, table.hash, *stream, self.row.key);
                let row = &rows[below(&mut pick, rows.len() as u64) as usize];
                match row.get(*field) {
                    Some(text) if !text.is_empty() => Value::Text(text.clone()),
                    _ => Value::Null,
                }
            }
        })
    }

    /// `prev.x`: column `column` of the previous sibling. In a pass over a parent's children the
    /// previous sibling is at hand (`follow_sibling`); a row made alone computes its siblings
    /// from the first, one at a time, keeping one.
    fn prev_value(&mut self, column: usize) -> Eval<Value> {
        if self.row.ordinal == 0 {
            return Ok(Value::Null);
        }
        if self.prev.is_none() {
            let parent = self.row.parent.clone().ok_or_else(|| {
                Error::Internal(anyhow::anyhow!("prev in a row without a parent"))
            })?;
            let mut previous: Option<RowValues<'d>> = None;
            for ordinal in 0..self.row.ordinal {
                let mut sibling =
                    RowValues::new(self.data, self.table, RowId::child(&parent, ordinal));
                if let Some(p) = previous.take() {
                    sibling.follow_sibling(p)?;
                }
                previous = Some(sibling);
            }
            let mut previous = previous.expect("ordinal > 0");
            previous.settle_for_next()?;
            self.prev = Some(Box::new(previous));
        }
        Ok(self.prev.as_mut().expect("set above").value(column)?)
    }

    /// Makes `previous` (the sibling before this row) this row's `prev`.
    pub fn follow_sibling(&mut self, mut previous: RowValues<'d>) -> Result<()> {
        previous.settle_for_next()?;
        self.prev = Some(Box::new(previous));
        Ok(())
    }

    /// Computes the columns that the next sibling's `prev.` reads, then lets go of this row's
    /// own previous sibling.
    fn settle_for_next(&mut self) -> Result<()> {
        for &c in &self.data.prev_columns[self.table] {
            self.ensure(c)?;
        }
        self.prev = None;
        Ok(())
    }

    /// Whether this row (of a `ref`'s target, at position `index`) passes the ref's filter; a
    /// condition's parts that read the referencing row were bound to values before.
    fn matches(&mut self, filter: &Filter, index: u64) -> Eval<bool> {
        match filter {
            Filter::Equals(c, wanted) => Ok(self.get(*c)? == Some(wanted.as_str())),
            Filter::Condition { cond, .. } => {
                // A random function in a condition draws from the candidate's own stream.
                let mut rng = cell_stream_at(self.data.streams[self.table].child_when, index);
                Ok(self.eval(cond, &mut rng)?.truthy()?)
            }
        }
    }

    /// A row of the counted `target` passing `filter`, uniform among those that do, without
    /// listing them: draws candidates from `rng` until one passes, and after REF_ATTEMPTS
    /// misses counts the passing rows and takes one of them. Memory stays flat at any size.
    fn pick_matching(
        &mut self,
        filter: &Filter,
        target: usize,
        rng: &mut Pcg64Mcg,
    ) -> Eval<Option<RowId>> {
        let data = self.data;
        let n = data.root_count(target);
        if n == 0 {
            return Ok(None);
        }
        let bound;
        let filter = match filter {
            Filter::Condition { cond, outer: true } => {
                bound = Filter::Condition {
                    cond: cond.bind_outers(&mut |e| self.eval(e, rng))?,
                    outer: false,
                };
                &bound
            }
            other => other,
        };
        let passes = |i: u64| RowValues::new(data, target, RowId::counted(i)).matches(filter, i);
        for _ in 0..REF_ATTEMPTS {
            let i = below(rng, n);
            if passes(i)? {
                return Ok(Some(RowId::counted(i)));
            }
        }
        let mut passing = 0;
        for i in 0..n {
            passing += u64::from(passes(i)?);
        }
        if passing == 0 {
            return Ok(None);
        }
        let mut k = below(rng, passing);
        for i in 0..n {
            if passes(i)? {
                if k == 0 {
                    return Ok(Some(RowId::counted(i)));
                }
                k -= 1;
            }
        }
        Ok(None)
    }

    /// The candidate (of `n`) that this row's `distinct` ref in `column` takes: its ordinal's
    /// place in a permutation of the candidates that the column and the parent row decide.
    fn distinct_draw(&self, column: usize, n: u64) -> Eval<u64> {
        let parent = self.row.parent.as_ref().map_or(0, |p| p.key);
        if self.row.ordinal >= n {
            return Err(format!(
                "distinct: a parent has more than {n} children, but there are only {n} candidates"
            )
            .into());
        }
        let key = splitmix64(self.data.streams[self.table].columns[column] ^ parent);
        Ok(permute(self.row.ordinal, n, key))
    }

    fn parent(&self) -> Eval<(usize, RowId)> {
        let table = &self.data.spec.tables[self.table];
        let Source::PerParent { parent, .. } = table.source else {
            return Err("this table has no parent".into());
        };
        let parent_row = self.row.parent.as_deref().cloned().ok_or_else(|| {
            Error::Internal(anyhow::anyhow!("row of {} without a parent", table.name))
        })?;
        Ok((parent, parent_row))
    }

    /// How many children this row has in the per-parent `table`: its `when` evaluated in this
    /// row (with the cells it has computed already), then `p` and the count.
    fn children_here(&mut self, table: usize) -> Eval<u64> {
        let data = self.data;
        let t = &data.spec.tables[table];
        if let Some(when) = &t.children.when {
            let mut rng = cell_stream_at(data.streams[table].child_when, self.row.key);
            if !self.eval(when, &mut rng)?.truthy()? {
                return Ok(0);
            }
        }
        let p = match &t.children.p_expr {
            None => None,
            Some(e) => {
                // Its own stream: the presence draw stays the one a number `p` makes.
                let mut rng =
                    cell_stream_at(splitmix64(data.streams[table].child_presence), self.row.key);
                let p = self.eval(e, &mut rng)?.decimal()?;
                let p: f64 = p.to_string().parse().map_err(|_| "p: not a probability")?;
                if !(0.0..=1.0).contains(&p) {
                    return Err(format!("p: {p} is not a probability between 0 and 1").into());
                }
                Some(p)
            }
        };
        let Shape::PerParent {
            max, from_profile, ..
        } = data.shapes[table]
        else {
            return Ok(0);
        };
        if let (Some((low, high)), false) = (&t.children.range, from_profile) {
            if let Some(p) = p
                && p < 1.0
            {
                let mut rng = cell_stream_at(data.streams[table].child_presence, self.row.key);
                if unit(&mut rng) >= p {
                    return Ok(0);
                }
            }
            let mut rng = cell_stream_at(data.streams[table].child_count, self.row.key);
            let low = self.eval(low, &mut rng)?.integer()?;
            let high = self.eval(high, &mut rng)?.integer()?;
            if low < 0 || low > high || high > max as i64 {
                return Err(format!(
                    "min/max: {low}..{high} children for one parent, not a range within 0..={max} (a number `max = N` sets the bound)"
                )
                .into());
            }
            return Ok(if low == high {
                low as u64
            } else {
                low as u64 + below(&mut rng, (high - low) as u64 + 1)
            });
        }
        match &t.children.count {
            Some(count) if !from_profile => {
                if let Some(p) = p
                    && p < 1.0
                {
                    let mut rng = cell_stream_at(data.streams[table].child_presence, self.row.key);
                    if unit(&mut rng) >= p {
                        return Ok(0);
                    }
                }
                let mut rng = cell_stream_at(data.streams[table].child_count, self.row.key);
                let n = self.eval(count, &mut rng)?;
                let n = match n {
                    Value::Null => 0,
                    n => n.integer()?,
                };
                if !(0..=max as i64).contains(&n) {
                    return Err(format!(
                        "count: {n} children for one parent, outside 0..={max} (`max = N` raises the bound)"
                    )
                    .into());
                }
                Ok(n as u64)
            }
            _ => match &t.children.weight_exprs {
                Some(weights) if !from_profile => self.weighted_children(table, weights, p),
                _ => Ok(data.children_counted(table, &self.row, p)),
            },
        }
    }

    /// `counts` with an expression among the weights: `p`, then the weights evaluated in this
    /// (the parent) row and a count drawn by them, from the stream a numeric `counts` draws
    /// from.
    fn weighted_children(
        &mut self,
        table: usize,
        weights: &[(u64, Expr)],
        p: Option<f64>,
    ) -> Eval<u64> {
        let data = self.data;
        let p = p.unwrap_or(data.spec.tables[table].children.p);
        if p < 1.0 {
            let mut rng = cell_stream_at(data.streams[table].child_presence, self.row.key);
            if unit(&mut rng) >= p {
                return Ok(0);
            }
        }
        let mut rng = cell_stream_at(data.streams[table].child_count, self.row.key);
        let mut cumulative = Vec::with_capacity(weights.len());
        let mut total: u64 = 0;
        for (n, weight) in weights {
            let w = match self.eval(weight, &mut rng)? {
                Value::Null => 0,
                w => w.integer()?,
            };
            let w = u64::try_from(w)
                .map_err(|_| format!("counts: the weight of {n} children is {w}, below 0"))?;
            total = total
                .checked_add(w)
                .ok_or("counts: the weights add up to more than 2^64")?;
            cumulative.push((*n, total));
        }
        if total == 0 {
            return Err("counts: the weights add up to zero for this parent row".into());
        }
        let r = below(&mut rng, total);
        Ok(cumulative[cumulative.partition_point(|&(_, c)| c <= r)].0)
    }

    /// Follows a path from this row: its value, and the row that value points to if any.
    fn follow(
        &mut self,
        start: Start,
        hops: &[usize],
        column: usize,
    ) -> Eval<(Value, Option<(usize, RowId)>)> {
        let mut current: &mut RowValues<'d> = self;
        if start == Start::Parent {
            current = current.link(PARENT_LINK)?.expect("a parent row");
        }
        for &hop in hops {
            match current.link(hop)? {
                Some(next) => current = next,
                None => return Ok((Value::Null, None)),
            }
        }
        Ok((current.value(column)?, current.pointer(column)?))
    }

    /// Evaluates an expression in this row; random functions draw from `rng`, the stream of
    /// the cell being computed.
    fn eval(&mut self, expr: &Expr, rng: &mut Pcg64Mcg) -> Eval<Value> {
        let data = self.data;
        Ok(match expr {
            Expr::Lit(v) => v.clone(),
            Expr::Column(c) => self.value(*c)?,
            Expr::Path {
                start,
                hops,
                column,
                ..
            } => self.follow(*start, hops, *column)?.0,
            Expr::Template(parts) => {
                let mut text = String::new();
                for (part, case) in parts {
                    if let Some(t) = self.eval(part, rng)?.text() {
                        text.push_str(&expr::case(t, *case));
                    }
                }
                Value::Text(text)
            }
            Expr::Neg(e) => {
                let v = self.eval(e, rng)?;
                expr::binary(BinOp::Sub, Value::Int(0), v)?
            }
            Expr::Not(e) => Value::Bool(!self.eval(e, rng)?.truthy()?),
            Expr::Binary(op @ (BinOp::And | BinOp::Or), a, b) => {
                let a = self.eval(a, rng)?.truthy()?;
                Value::Bool(match op {
                    BinOp::And => a && self.eval(b, rng)?.truthy()?,
                    _ => a || self.eval(b, rng)?.truthy()?,
                })
            }
            // A column beside a literal, the common condition (`status == 'paid'`), compares
            // in place rather than on a copy of the column's value.
            Expr::Binary(op, a, b)
                if op.is_comparison()
                    && matches!((&**a, &**b), (Expr::Column(_), Expr::Lit(_))) =>
            {
                let (Expr::Column(c), Expr::Lit(literal)) = (&**a, &**b) else {
                    unreachable!("matched above")
                };
                Value::Bool(
                    expr::comparison(*op, self.value_ref(*c)?, literal).expect("a comparison")?,
                )
            }
            // Text joined with a literal (`email + '@example.org'`): the literal is appended
            // where it is, not copied first.
            Expr::Binary(BinOp::Add, a, b) if matches!(&**b, Expr::Lit(Value::Text(_))) => {
                let Expr::Lit(Value::Text(literal)) = &**b else {
                    unreachable!("matched above")
                };
                match self.eval(a, rng)? {
                    Value::Text(mut text) => {
                        text.push_str(literal);
                        Value::Text(text)
                    }
                    a => expr::binary(BinOp::Add, a, Value::Text(literal.clone()))?,
                }
            }
            Expr::Binary(op, a, b) => {
                let a = self.eval(a, rng)?;
                let b = self.eval(b, rng)?;
                expr::binary(*op, a, b)?
            }
            Expr::Func(Func::If, args) => {
                let holds = self.eval(&args[0], rng)?.truthy()?;
                self.eval(&args[if holds { 1 } else { 2 }], rng)?
            }
            Expr::Func(Func::Coalesce, args) => {
                for a in args {
                    let v = self.eval(a, rng)?;
                    if v != Value::Null {
                        return Ok(v);
                    }
                }
                Value::Null
            }
            Expr::Func(Func::RandInt, args) => {
                let min = self.eval(&args[0], rng)?.integer()?;
                let max = self.eval(&args[1], rng)?.integer()?;
                if min > max {
                    return Err(format!("int({min}, {max}): min is larger than max").into());
                }
                Value::Int(between(rng, min, max))
            }
            Expr::Func(Func::RandDecimal, args) => {
                let mut min = self.eval(&args[0], rng)?.decimal()?;
                let mut max = self.eval(&args[1], rng)?.decimal()?;
                let scale = min.scale().max(max.scale());
                min.rescale(scale);
                max.rescale(scale);
                let (lo, hi) = (
                    i64::try_from(min.mantissa()).map_err(|_| "decimal(): too large")?,
                    i64::try_from(max.mantissa()).map_err(|_| "decimal(): too large")?,
                );
                if lo > hi {
                    return Err(format!("decimal({min}, {max}): min is larger than max").into());
                }
                Value::Dec(Decimal::new(between(rng, lo, hi), scale))
            }
            Expr::Func(Func::RandBool, args) => {
                let p = self.eval(&args[0], rng)?.decimal()?;
                let p: f64 = p
                    .to_string()
                    .parse()
                    .map_err(|_| "bool(p): p is a probability")?;
                Value::Bool(unit(rng) < p)
            }
            Expr::Func(Func::RandChoice, args) => {
                let i = below(rng, args.len() as u64) as usize;
                self.eval(&args[i], rng)?
            }
            Expr::Func(func, args) => {
                let mut values = Vec::with_capacity(args.len());
                for a in args {
                    values.push(self.eval(a, rng)?);
                }
                expr::apply(*func, values)?
            }
            Expr::Pick(values) => {
                Value::Text(values[below(rng, values.len() as u64) as usize].clone())
            }
            Expr::Aggregate { agg, table, of } => {
                let n = self.children_here(*table)?;
                if *agg == Agg::Count {
                    return Ok(Value::Int(n as i64));
                }
                let of = of
                    .as_deref()
                    .expect("validated: sum/min/max have an expression");
                let parent = Rc::new(self.row.clone());
                let mut result = match agg {
                    Agg::Sum => Value::Int(0),
                    _ => Value::Null,
                };
                let chained = !data.prev_columns[*table].is_empty();
                let mut previous: Option<RowValues<'d>> = None;
                for ordinal in 0..n {
                    let mut child = RowValues::new(data, *table, RowId::child(&parent, ordinal));
                    if let Some(previous) = previous.take() {
                        child.follow_sibling(previous)?;
                    }
                    let v = self.lend_to(&mut child, |child| child.eval(of, rng))?;
                    if chained {
                        previous = Some(child);
                    }
                    if v == Value::Null {
                        continue;
                    }
                    result = match agg {
                        Agg::Sum => expr::binary(BinOp::Add, result, v)?,
                        Agg::Min => expr::apply(Func::Least, vec![result, v])?,
                        _ => expr::apply(Func::Greatest, vec![result, v])?,
                    };
                }
                result
            }
            Expr::Object(fields) => {
                let mut json = String::from("{");
                for (i, (key, e)) in fields.iter().enumerate() {
                    if i > 0 {
                        json.push(',');
                    }
                    json.push_str(&serde_json::Value::String(key.clone()).to_string());
                    json.push(':');
                    self.eval(e, rng)?.json(&mut json);
                }
                json.push('}');
                Value::Json(json)
            }
            Expr::Array(items) => {
                let mut json = String::from("[");
                for (i, e) in items.iter().enumerate() {
                    if i > 0 {
                        json.push(',');
                    }
                    self.eval(e, rng)?.json(&mut json);
                }
                json.push(']');
                Value::Json(json)
            }
            Expr::Now => Value::Timestamp(data.epoch),
            Expr::Today => Value::Date(data.epoch.div_euclid(86_400)),
            Expr::Prev(c) => self.prev_value(*c)?,
            Expr::Name(_) | Expr::Call(..) | Expr::Outer(_) => {
                return Err(Error::Internal(anyhow::anyhow!(
                    "an unresolved name in an expression"
                ))
                .into());
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::spec::Spec;

    fn example() -> (Spec, Profile) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let spec = Spec::load(&root.join("seeds")).expect("the example spec loads");
        let profile = Profile::load(&root.join("profiles"), "dev").expect("dev loads");
        (spec, profile)
    }

    /// Every row of a table as COPY would send it, generated in one pass.
    fn rows(data: &Dataset, table: usize) -> Vec<Vec<Option<String>>> {
        let mut out = Vec::new();
        let mut index = 0;
        data.for_each_row(table, 0..data.root_count(table), &mut |mut row| {
            row.index = Some(index);
            index += 1;
            let mut values = RowValues::new(data, table, row);
            let columns = data.spec.tables[table].columns.len();
            out.push(
                (0..columns)
                    .map(|c| values.get(c).map(|v| v.map(String::from)))
                    .collect::<Result<_>>()?,
            );
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn a_row_is_the_same_whatever_else_was_generated_and_in_what_order() {
        let (spec, profile) = example();
        let data = Dataset::new(&spec, &profile, 42).unwrap();
        let invoices = spec.table("invoices").unwrap();
        let all = rows(&data, invoices);
        // Row 700 alone, with its columns asked for in reverse order.
        let mut alone = RowValues::new(&data, invoices, RowId::counted(700));
        let columns = spec.tables[invoices].columns.len();
        let mut reversed: Vec<Option<String>> = (0..columns)
            .rev()
            .map(|c| alone.get(c).unwrap().map(String::from))
            .collect();
        reversed.reverse();
        assert_eq!(reversed, all[700]);
        // Another data set from the same inputs agrees; another seed does not.
        assert_eq!(
            rows(&Dataset::new(&spec, &profile, 42).unwrap(), invoices),
            all
        );
        assert_ne!(
            rows(&Dataset::new(&spec, &profile, 43).unwrap(), invoices),
            all
        );
    }

    #[test]
    fn a_row_set_finds_the_nth_match_as_a_list_would() {
        let mut set = RowSet::default();
        let mut list = Vec::new();
        for row in 0..1000u64 {
            let matches = splitmix64(row).is_multiple_of(3) || (130..200).contains(&row);
            set.push(matches);
            if matches {
                list.push(row);
            }
        }
        assert_eq!(set.len(), list.len() as u64);
        for (i, row) in list.iter().enumerate() {
            assert_eq!(
                set.nth(i as u64, &mut |_| unreachable!()).ok(),
                Some(*row),
                "match {i}"
            );
        }
    }

    #[test]
    fn a_streamed_row_set_finds_the_nth_match_as_the_bits_do() {
        // Blocks of 4096 rows: several full ones, an empty one, a last partial one.
        let matches = |row: u64| {
            !(3 * BLOCK_ROWS..4 * BLOCK_ROWS).contains(&row)
                && (splitmix64(row).is_multiple_of(5) || (100..300).contains(&row))
        };
        let rows = 7 * BLOCK_ROWS + 1000;
        let (mut bits, mut streamed) = (RowSet::new(false), RowSet::new(true));
        for row in 0..rows {
            bits.push(matches(row));
            streamed.push(matches(row));
        }
        assert_eq!(streamed.len(), bits.len());
        let mut evaluated = 0;
        for i in (0..bits.len()).step_by(7).chain([bits.len() - 1]) {
            let row = streamed
                .nth(i, &mut |r| {
                    evaluated += 1;
                    Ok(matches(r))
                })
                .ok()
                .unwrap();
            assert_eq!(
                Some(row),
                bits.nth(i, &mut |_| unreachable!()).ok(),
                "match {i}"
            );
            assert!(matches(row));
        }
        // Each block was recomputed once (the cache holds them all here).
        assert_eq!(evaluated, rows - BLOCK_ROWS);
    }

    #[test]
    fn rows_that_share_their_parent_are_the_rows_generated_alone() {
        let (spec, profile) = example();
        let data = Dataset::new(&spec, &profile, 7).unwrap();
        for table in 0..spec.tables.len() {
            let mut shared = Vec::new();
            let columns = spec.tables[table].columns.len();
            data.for_each_row_values(table, 0..data.root_count(table), 0, &mut |values| {
                shared.push(
                    (0..columns)
                        .map(|c| values.get(c).map(|v| v.map(String::from)))
                        .collect::<Result<Vec<_>>>()?,
                );
                Ok(())
            })
            .unwrap();
            assert_eq!(shared, rows(&data, table), "{}", spec.tables[table].name);
        }
    }

    #[test]
    fn children_stay_within_their_range_and_counting_matches_generating() {
        let (spec, profile) = example();
        let data = Dataset::new(&spec, &profile, 42).unwrap();
        let items = spec.table("invoice_line_items").unwrap();
        let generated = rows(&data, items);
        assert_eq!(generated.len() as u64, data.count_rows(items, 0..1000));
        let mut per_invoice = std::collections::BTreeMap::<String, u64>::new();
        for row in &generated {
            let invoice = row[spec.tables[items]
                .columns
                .iter()
                .position(|c| c.name == "invoice_id")
                .unwrap()]
            .clone()
            .unwrap();
            *per_invoice.entry(invoice).or_default() += 1;
        }
        assert!(per_invoice.values().all(|n| (1..=4).contains(n)));
        assert_eq!(per_invoice.len(), 1000, "every invoice has a line");
    }

    #[test]
    fn uuids_are_version_4_and_decimals_keep_their_scale() {
        let (spec, profile) = example();
        let data = Dataset::new(&spec, &profile, 42).unwrap();
        let pets = spec.table("pets").unwrap();
        let column = |name: &str| {
            spec.tables[pets]
                .columns
                .iter()
                .position(|c| c.name == name)
                .unwrap()
        };
        for row in rows(&data, pets) {
            let id = row[column("id")].clone().unwrap();
            assert_eq!(id.len(), 36);
            assert_eq!(&id[14..15], "4", "{id}");
            assert!("89ab".contains(&id[19..20]), "{id}");
            if let Some(weight) = &row[column("weight_kg")] {
                let (whole, frac) = weight.split_once('.').expect("a decimal point");
                assert_eq!(frac.len(), 2, "{weight}");
                let value: f64 = weight.parse().unwrap();
                assert!((1.5..=45.0).contains(&value), "{whole}.{frac}");
            }
        }
    }
}

/// Pins a few values of every generator that existed before expressions: their output is part
/// of the seed contract (DESIGN.md §5) and must not move when the generation code changes.
#[cfg(test)]
mod pinned {
    use super::*;
    use crate::spec::Spec;

    const SPEC: &str = r#"
version = 1
[[tables]]
name = "kinds"
count = 4
fixed = "fixed.csv"
[tables.columns]
serial    = { gen = "serial", start = 10 }
ordinal   = { gen = "ordinal" }
uuid      = { gen = "uuid" }
int       = { gen = "int", min = -50, max = 50 }
decimal   = { gen = "decimal", min = -5, max = 120, scale = 2 }
bool      = { gen = "bool", p = 0.3 }
choice    = { gen = "choice", values = ["a", "b", "c"], weights = [5, 3, 2] }
cycle     = { gen = "cycle", values = ["x", "y", "z"] }
pick      = { gen = "pick", file = "words.txt" }
format    = { gen = "format", template = "{pick|upper}-{int}-{serial}" }
date      = { gen = "date", from = "-365d", to = "+30d" }
timestamp = { gen = "timestamp", from = "-30d", to = "+2h" }
constant  = { gen = "constant", value = 7 }
nullable  = { gen = "int", min = 1, max = 9, null = 0.5 }
fixed     = { gen = "constant", value = "generated" }

[[tables]]
name = "children"
per = "kinds"
min = 0
max = 3
[tables.columns]
parent_serial = { gen = "parent", column = "serial" }
ref_pick      = { gen = "ref", table = "kinds", column = "pick" }
ref_where     = { gen = "ref", table = "kinds", column = "serial", where = { cycle = "y" } }
"#;

    fn rows(table: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("seed.toml"), SPEC).unwrap();
        std::fs::write(
            dir.path().join("words.txt"),
            "alpha\nbeta\n# no\ngamma\ndelta\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("fixed.csv"), "fixed,int\nknown,\n").unwrap();
        let spec = Spec::load(dir.path()).unwrap();
        let profile = Profile {
            name: "pin".into(),
            description: String::new(),
            seed: 42,
            epoch: 1_735_689_600,
            counts: Default::default(),
            per: Default::default(),
            files: Default::default(),
            seed_command: None,
        };
        let data = Dataset::new(&spec, &profile, 42).unwrap();
        let t = spec.table(table).unwrap();
        let mut out = Vec::new();
        let mut index = 0;
        data.for_each_row(t, 0..data.root_count(t), &mut |mut row| {
            row.index = Some(index);
            index += 1;
            let mut values = RowValues::new(&data, t, row);
            let cells: Vec<String> = (0..spec.tables[t].columns.len())
                .map(|c| values.get(c).map(|v| v.unwrap_or("NULL").to_string()))
                .collect::<Result<_>>()?;
            out.push(cells.join("|"));
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn every_existing_generator_keeps_its_output() {
        let kinds = rows("kinds");
        let children = rows("children");
        let all = format!("{}\n--\n{}", kinds.join("\n"), children.join("\n"));
        assert_eq!(all, PINNED.trim(), "\n{all}");
    }

    /// Columns in name order: bool|choice|constant|cycle|date|decimal|fixed|format|int|nullable|
    /// ordinal|pick|serial|timestamp|uuid; then parent_serial|ref_pick|ref_where.
    const PINNED: &str = "
false|a|7|x|2025-01-13|66.69|known|BETA--10|NULL|NULL|1|beta|10|2024-12-24 09:55:14+00|fe350da2-6750-4a69-adca-58b52b3b347b
true|a|7|y|2024-05-16|103.49|generated|DELTA-0-11|0|NULL|2|delta|11|2024-12-11 05:44:12+00|961d683e-8c3b-40ed-8827-00902aa9d96a
false|b|7|z|2024-11-04|83.05|generated|ALPHA--28-12|-28|NULL|3|alpha|12|2024-12-09 14:10:07+00|2e7507a3-ae24-47f4-983e-25de51596117
false|a|7|x|2024-06-03|67.35|generated|ALPHA--49-13|-49|9|4|alpha|13|2024-12-07 19:00:55+00|40536186-c964-4071-b493-dc7f53d2ff0e
--
10|alpha|11
10|alpha|11
10|delta|11
11|alpha|11
11|alpha|11
12|alpha|11
12|delta|11
13|beta|11
13|beta|11
";
}

#[cfg(test)]
mod fixtures {
    use crate::error::Result;
    use crate::spec::Spec;
    use crate::spec::profile::Profile;

    /// A spec from the text of its seed.toml, with `files` (name, contents) beside it.
    pub fn spec(toml: &str, files: &[(&str, &str)]) -> Result<Spec> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("seed.toml"), toml).unwrap();
        for (name, contents) in files {
            std::fs::write(dir.path().join(name), contents).unwrap();
        }
        Spec::load(dir.path())
    }

    /// A profile of seed `seed` with `counts`, at 2025-01-01.
    pub fn profile(seed: u64, counts: &[(&str, u64)]) -> Profile {
        Profile {
            name: "t".into(),
            description: String::new(),
            seed,
            epoch: 1_735_689_600,
            counts: counts.iter().map(|(t, n)| (t.to_string(), *n)).collect(),
            per: Default::default(),
            files: Default::default(),
            seed_command: None,
        }
    }
}

#[cfg(test)]
mod language {
    use super::*;
    use crate::spec::Spec;

    fn load(spec: &str) -> Result<Spec> {
        super::fixtures::spec(spec, &[("places.csv", "city,zip\nA,1\nB,2\nC,3\n")])
    }

    fn profile() -> Profile {
        super::fixtures::profile(7, &[])
    }

    fn column(data: &Dataset, table: &str, name: &str) -> Vec<Option<String>> {
        let t = data.spec.table(table).unwrap();
        let c = data.spec.tables[t]
            .columns
            .iter()
            .position(|c| c.name == name)
            .unwrap();
        let mut out = Vec::new();
        let mut index = 0;
        data.for_each_row(t, 0..data.root_count(t), &mut |mut row| {
            row.index = Some(index);
            index += 1;
            out.push(RowValues::new(data, t, row).get(c)?.map(String::from));
            Ok(())
        })
        .unwrap();
        out
    }

    const SPEC: &str = r#"
version = 1
[[tables]]
name = "parents"
count = 300
disable_triggers = true
[tables.columns]
id    = { gen = "serial" }
code  = { expr = "'p{int(1, 400)}'", unique = true }
city  = { gen = "csv", file = "places.csv", field = "city" }
zip   = { gen = "csv", file = "places.csv", field = "zip" }
total = { expr = "sum(kids, price * 2)" }
kids  = { expr = "count(kids)" }
doc   = { expr = "{ 'id': id, 'tags': [city, 1.50] }" }

[[tables]]
name = "kids"
per = "parents"
counts = { 0 = 1, 2 = 3 }
[tables.columns]
parent_id = { gen = "parent", column = "id" }
n         = { gen = "ordinal" }
price     = { expr = "decimal(0.01, 9.99)" }
"#;

    #[test]
    fn unique_values_are_distinct_and_the_same_on_every_run() {
        let spec = load(SPEC).unwrap();
        let data = Dataset::new(&spec, &profile(), 7).unwrap();
        let codes = column(&data, "parents", "code");
        let mut distinct = codes.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 300, "distinct in a space of 400");
        let again = Dataset::new(&spec, &profile(), 7).unwrap();
        assert_eq!(column(&again, "parents", "code"), codes);
    }

    #[test]
    fn a_unique_column_with_too_few_values_is_refused() {
        let spec = load(&SPEC.replace("int(1, 400)", "int(1, 299)")).unwrap();
        let error = Dataset::new(&spec, &profile(), 7)
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("at most 299 distinct values"), "{error}");
    }

    #[test]
    fn aggregates_csv_rows_json_weights_and_the_trigger_switch() {
        let spec = load(SPEC).unwrap();
        assert!(spec.tables[spec.table("parents").unwrap()].disable_triggers);
        assert!(!spec.tables[spec.table("kids").unwrap()].disable_triggers);
        let data = Dataset::new(&spec, &profile(), 7).unwrap();
        let prices = column(&data, "kids", "price");
        let parents = column(&data, "kids", "parent_id");
        let totals = column(&data, "parents", "total");
        let counts = column(&data, "parents", "kids");
        for (i, total) in totals.iter().enumerate() {
            let id = (i + 1).to_string();
            let mine: Vec<Decimal> = parents
                .iter()
                .zip(&prices)
                .filter(|(p, _)| p.as_deref() == Some(id.as_str()))
                .map(|(_, v)| v.as_ref().unwrap().parse().unwrap())
                .collect();
            let sum: Decimal = mine.iter().map(|p| p * Decimal::from(2)).sum();
            assert_eq!(total.as_ref().unwrap().parse::<Decimal>().unwrap(), sum);
            assert_eq!(counts[i].as_deref(), Some(mine.len().to_string().as_str()));
            assert!(mine.is_empty() || mine.len() == 2);
        }
        let none = counts.iter().filter(|c| c.as_deref() == Some("0")).count();
        assert!((40..=110).contains(&none), "about a quarter of 300: {none}");
        for (city, zip) in column(&data, "parents", "city")
            .iter()
            .zip(column(&data, "parents", "zip"))
        {
            let expected = match city.as_deref() {
                Some("A") => "1",
                Some("B") => "2",
                _ => "3",
            };
            assert_eq!(zip.as_deref(), Some(expected));
        }
        let doc = column(&data, "parents", "doc")[0].clone().unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&doc).unwrap();
        assert_eq!(parsed["id"], 1);
        assert!(parsed["tags"].is_array(), "{doc}");
        assert!(
            doc.ends_with(",1.50]}"),
            "decimals keep their scale in JSON: {doc}"
        );
    }

    #[test]
    fn a_cycle_names_every_column_of_it() {
        let error = load(
            &SPEC
                .replace(
                    "city  = { gen = \"csv\", file = \"places.csv\", field = \"city\" }",
                    "city  = { expr = \"lower(zip)\" }",
                )
                .replace(
                    "zip   = { gen = \"csv\", file = \"places.csv\", field = \"zip\" }",
                    "zip   = { expr = \"doc + ''\" }",
                ),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            error.contains(
                "a cycle among columns: parents.city -> parents.zip -> parents.doc -> parents.city"
            ),
            "{error}"
        );
    }
}

#[cfg(test)]
mod unique_sets {
    use super::*;
    use crate::spec::Spec;

    fn profile() -> Profile {
        super::fixtures::profile(3, &[])
    }

    fn load(spec: &str) -> Result<Spec> {
        super::fixtures::spec(spec, &[])
    }

    fn cells(data: &Dataset, table: &str, columns: &[&str]) -> Vec<Vec<String>> {
        let t = data.spec.table(table).unwrap();
        let indices: Vec<usize> = columns
            .iter()
            .map(|n| {
                data.spec.tables[t]
                    .columns
                    .iter()
                    .position(|c| c.name == *n)
                    .unwrap()
            })
            .collect();
        let mut out = Vec::new();
        data.for_each_row_values(t, 0..data.root_count(t), 0, &mut |values| {
            out.push(
                indices
                    .iter()
                    .map(|&c| values.get(c).map(|v| v.unwrap_or("NULL").to_string()))
                    .collect::<Result<_>>()?,
            );
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn a_unique_column_set_keeps_its_combinations_distinct_by_drawing_again() {
        let spec = load(
            r#"
version = 1
[[tables]]
name = "pairs"
count = 60
unique = [["a", "b"]]
[tables.columns]
a = { gen = "int", min = 1, max = 3 }
b = { gen = "int", min = 1, max = 40 }
"#,
        )
        .unwrap();
        let data = Dataset::new(&spec, &profile(), 3).unwrap();
        let rows = cells(&data, "pairs", &["a", "b"]);
        let mut distinct = rows.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 60, "{rows:?}");
        // The same rows on every run, and a is never redrawn (b is the set's last column).
        let again = Dataset::new(&spec, &profile(), 3).unwrap();
        assert_eq!(cells(&again, "pairs", &["a", "b"]), rows);
        let plain = load(
            r#"
version = 1
[[tables]]
name = "pairs"
count = 60
[tables.columns]
a = { gen = "int", min = 1, max = 3 }
b = { gen = "int", min = 1, max = 40 }
"#,
        )
        .unwrap();
        let plain_data = Dataset::new(&plain, &profile(), 3).unwrap();
        let plain_rows = cells(&plain_data, "pairs", &["a", "b"]);
        for (set, free) in rows.iter().zip(&plain_rows) {
            assert_eq!(set[0], free[0]);
        }
        assert_ne!(rows, plain_rows, "some row drew b again");
    }

    #[test]
    fn a_distinct_ref_takes_every_candidate_once_when_a_parent_has_as_many_children() {
        let text = r#"
version = 1
[[tables]]
name = "films"
count = 40
[tables.columns]
id = { gen = "serial" }

[[tables]]
name = "actors"
count = 7
[tables.columns]
id = { gen = "serial" }
kind = { gen = "cycle", values = ["lead", "extra"] }

[[tables]]
name = "cast"
per = "films"
min = 7
max = 7
unique = [["film_id", "actor_id"]]
[tables.columns]
film_id  = { gen = "parent", column = "id" }
actor_id = { gen = "ref", table = "actors", column = "id", distinct = true }
lead_id  = { when = "actor_id < 5", gen = "ref", table = "actors", column = "id", where = { kind = "lead" }, distinct = true }
"#;
        let spec = load(text).unwrap();
        let error = Dataset::new(&spec, &profile(), 3)
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("table cast, column lead_id: distinct: a row of films may have up to 7 rows here, but actors has only 4 candidates"),
            "{error}"
        );
        // Without the filtered column, every film casts each of the 7 actors exactly once.
        let spec = load(&text.replace("lead_id  = {", "# lead_id = {")).unwrap();
        let data = Dataset::new(&spec, &profile(), 3).unwrap();
        let rows = cells(&data, "cast", &["film_id", "actor_id"]);
        assert_eq!(rows.len(), 280);
        for film in rows.chunks(7) {
            let mut actors: Vec<&str> = film.iter().map(|r| r[1].as_str()).collect();
            assert!(film.iter().all(|r| r[0] == film[0][0]));
            actors.sort();
            assert_eq!(actors, ["1", "2", "3", "4", "5", "6", "7"]);
        }
        // ... in an order of their own per film.
        assert_ne!(rows[0..7], rows[7..14]);
    }
}

#[cfg(test)]
mod where_expressions {
    use super::*;
    use crate::spec::Spec;

    fn load(spec: &str) -> Spec {
        super::fixtures::spec(spec, &[]).unwrap()
    }

    fn profile(counts: &[(&str, u64)]) -> Profile {
        super::fixtures::profile(5, counts)
    }

    /// Every row of `table`: its cells by column name.
    fn rows(data: &Dataset, table: &str) -> Vec<HashMap<String, String>> {
        let t = data.spec.table(table).unwrap();
        let names: Vec<&str> = data.spec.tables[t]
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        let mut out = Vec::new();
        data.for_each_row_values(t, 0..data.root_count(t), 0, &mut |values| {
            let mut row = HashMap::new();
            for (c, name) in names.iter().enumerate() {
                row.insert(
                    name.to_string(),
                    values.get(c)?.unwrap_or("NULL").to_string(),
                );
            }
            out.push(row);
            Ok(())
        })
        .unwrap();
        out
    }

    const SPEC: &str = r#"
version = 1
[[tables]]
name = "stores"
[tables.columns]
id = { gen = "serial" }

[[tables]]
name = "staff"
[tables.columns]
id       = { gen = "serial" }
store_id = { gen = "int", min = 1, max = 3 }
role     = { gen = "choice", values = ["groomer", "bather", "manager"] }

[[tables]]
name = "visits"
per = "stores"
min = 20
max = 20
[tables.columns]
store_id = { gen = "parent", column = "id" }
# A groomer or bather of the visit's own store.
staff_id = { gen = "ref", table = "staff", column = "id", where = "store_id == parent.id and role in ('groomer', 'bather')" }
# Any manager (a condition that does not read the visit: listed once).
manager  = { gen = "ref", table = "staff", column = "id", where = "role not in ('groomer', 'bather')" }
"#;

    #[test]
    fn where_takes_expressions_over_the_candidate_and_paths_to_the_referencing_row() {
        let spec = load(SPEC);
        let data = Dataset::new(&spec, &profile(&[("stores", 3), ("staff", 60)]), 5).unwrap();
        let staff: HashMap<String, HashMap<String, String>> = rows(&data, "staff")
            .into_iter()
            .map(|r| (r["id"].clone(), r))
            .collect();
        let visits = rows(&data, "visits");
        assert_eq!(visits.len(), 60);
        let mut picked = std::collections::BTreeSet::new();
        for visit in &visits {
            let member = &staff[&visit["staff_id"]];
            assert_eq!(
                member["store_id"], visit["store_id"],
                "{visit:?} {member:?}"
            );
            assert!(["groomer", "bather"].contains(&member["role"].as_str()));
            assert_eq!(staff[&visit["manager"]]["role"], "manager");
            picked.insert(visit["staff_id"].clone());
        }
        assert!(
            picked.len() > 10,
            "spread over the matching staff: {picked:?}"
        );
        // The same on every run.
        let again = Dataset::new(&spec, &profile(&[("stores", 3), ("staff", 60)]), 5).unwrap();
        assert_eq!(rows(&again, "visits"), visits);
    }

    #[test]
    fn where_over_more_than_a_million_rows_picks_matching_rows_without_listing_them() {
        let spec = load(
            r#"
version = 1
[[tables]]
name = "visits"
[tables.columns]
id     = { gen = "serial" }
status = { gen = "choice", values = ["completed", "cancelled"], weights = [1, 9] }

[[tables]]
name = "invoices"
[tables.columns]
visit_id = { gen = "ref", table = "visits", column = "id", where = { status = "completed" } }
other_id = { gen = "ref", table = "visits", column = "id", where = "status == 'completed'" }
"#,
        );
        let data = Dataset::new(
            &spec,
            &profile(&[("visits", 1_500_000), ("invoices", 200)]),
            5,
        )
        .unwrap();
        let status = |id: &str| {
            let key = id.parse::<u64>().unwrap() - 1;
            let mut visit = RowValues::new(&data, 0, RowId::counted(key));
            visit.get(1).unwrap().unwrap().to_string()
        };
        let invoices = rows(&data, "invoices");
        assert_eq!(invoices.len(), 200);
        for invoice in &invoices {
            assert_eq!(status(&invoice["visit_id"]), "completed");
            assert_eq!(status(&invoice["other_id"]), "completed");
        }
        let distinct: std::collections::BTreeSet<&String> =
            invoices.iter().map(|i| &i["visit_id"]).collect();
        assert!(distinct.len() > 190);
    }

    #[test]
    fn distinct_with_where_over_more_than_a_million_rows_lists_them_as_counts_per_block() {
        let spec = load(
            r#"
version = 1
[[tables]]
name = "visits"
[tables.columns]
id     = { gen = "serial" }
status = { gen = "choice", values = ["completed", "cancelled"], weights = [1, 9] }

[[tables]]
name = "clients"
[tables.columns]
id = { gen = "serial" }

[[tables]]
name = "reviews"
per = "clients"
min = 6
max = 6
[tables.columns]
client_id = { gen = "parent", column = "id" }
visit_id  = { gen = "ref", table = "visits", column = "id", where = "status == 'completed'", distinct = true }
"#,
        );
        let counts = [("visits", 1_100_000), ("clients", 300)];
        let mut data = Dataset::new(&spec, &profile(&counts), 5).unwrap();
        let status = |data: &Dataset, id: &str| {
            let key = id.parse::<u64>().unwrap() - 1;
            let mut visit = RowValues::new(data, 0, RowId::counted(key));
            visit.get(1).unwrap().unwrap().to_string()
        };
        let reviews = rows(&data, "reviews");
        assert_eq!(reviews.len(), 1800);
        for client in reviews.chunks(6) {
            let mut visits: Vec<&str> = client.iter().map(|r| r["visit_id"].as_str()).collect();
            for visit in &visits {
                assert_eq!(status(&data, visit), "completed");
            }
            visits.sort();
            visits.dedup();
            assert_eq!(visits.len(), 6, "distinct per client: {client:?}");
        }
        let spread: std::collections::BTreeSet<&String> =
            reviews.iter().map(|r| &r["visit_id"]).collect();
        assert!(spread.len() > 1700, "{}", spread.len());
        // The same rows when the candidates are kept as counts per block (as beyond
        // RESIDENT_ROWS) and each block's bits are recomputed.
        let (key, bits) = data.candidates.drain().next().unwrap();
        let mut streamed = RowSet::new(true);
        for i in 0..bits.rows {
            let mut visit = RowValues::new(&data, 0, RowId::counted(i));
            streamed.push(visit.get(1).unwrap() == Some("completed"));
        }
        assert_eq!(streamed.len(), bits.len());
        data.candidates.insert(key, streamed);
        assert_eq!(rows(&data, "reviews"), reviews);
    }
}

#[cfg(test)]
mod child_counts {
    use super::*;
    use crate::spec::Spec;

    fn load(spec: &str) -> Result<Spec> {
        super::fixtures::spec(spec, &[])
    }

    fn profile() -> Profile {
        super::fixtures::profile(11, &[])
    }

    const SPEC: &str = r#"
version = 1
[[tables]]
name = "appointments"
count = 400
[tables.columns]
id        = { gen = "serial" }
bather_id = { gen = "int", min = 1, max = 9, null = 0.5 }
vip       = { gen = "bool", p = 0.5 }

[[tables]]
name = "assignments"
per = "appointments"
count = "if(parent.bather_id != null, 2, 1)"
[tables.columns]
appointment_id = { gen = "parent", column = "id" }
n              = { gen = "ordinal" }

[[tables]]
name = "gifts"
per = "appointments"
p = "if(vip, 1, 0)"
[tables.columns]
appointment_id = { gen = "parent", column = "id" }

[[tables]]
name = "extras"
per = "appointments"
min = 1
max = "if(parent.vip, 5, 2)"
[tables.columns]
appointment_id = { gen = "parent", column = "id" }
"#;

    fn per_parent(data: &Dataset, table: &str) -> HashMap<i64, u64> {
        let t = data.spec.table(table).unwrap();
        let mut counts = HashMap::new();
        data.for_each_row_values(t, 0..data.root_count(t), 0, &mut |values| {
            let id = values.value(0)?.integer().unwrap();
            *counts.entry(id).or_insert(0) += 1;
            Ok(())
        })
        .unwrap();
        counts
    }

    #[test]
    fn a_child_count_and_its_probability_come_from_the_parent_row() {
        let spec = load(SPEC).unwrap();
        let data = Dataset::new(&spec, &profile(), 11).unwrap();
        let assignments = per_parent(&data, "assignments");
        let gifts = per_parent(&data, "gifts");
        let extras = per_parent(&data, "extras");
        let mut above_two = 0;
        let appointments = spec.table("appointments").unwrap();
        let (mut with_bather, mut vips) = (0, 0);
        for i in 0..400u64 {
            let mut row = RowValues::new(&data, appointments, RowId::counted(i));
            let id = i as i64 + 1;
            // Columns in name order: bather_id, id, vip.
            let bather = row.value(0).unwrap() != Value::Null;
            let vip = row.value(2).unwrap() == Value::Bool(true);
            with_bather += u64::from(bather);
            vips += u64::from(vip);
            assert_eq!(assignments[&id], if bather { 2 } else { 1 }, "row {id}");
            assert_eq!(
                gifts.get(&id).copied().unwrap_or(0),
                u64::from(vip),
                "row {id}"
            );
            let n = extras[&id];
            assert!((1..=if vip { 5 } else { 2 }).contains(&n), "row {id}: {n}");
            above_two += u64::from(n > 2);
        }
        assert!((120..280).contains(&with_bather) && (120..280).contains(&vips));
        assert!(above_two > 50, "{above_two}");
        let t = spec.table("assignments").unwrap();
        assert_eq!(data.count_rows(t, 0..400), 400 + with_bather);
    }

    #[test]
    fn weighted_counts_take_weights_from_the_parent_row() {
        let text = r#"
[[tables]]
name = "tips"
per = "appointments"
counts = { 1 = "if(parent.vip, 0, 1)", 3 = "if(vip, 1, 0)" }
[tables.columns]
appointment_id = { gen = "parent", column = "id" }

[[tables]]
name = "notes"
per = "appointments"
counts = { 0 = 50, 2 = "35", 4 = 15 }
[tables.columns]
appointment_id = { gen = "parent", column = "id" }
"#;
        let spec = load(&format!("{SPEC}{text}")).unwrap();
        let data = Dataset::new(&spec, &profile(), 11).unwrap();
        let tips = per_parent(&data, "tips");
        let appointments = spec.table("appointments").unwrap();
        let mut vips = 0;
        for i in 0..400u64 {
            let mut row = RowValues::new(&data, appointments, RowId::counted(i));
            let vip = row.value(2).unwrap() == Value::Bool(true);
            vips += u64::from(vip);
            assert_eq!(tips[&(i as i64 + 1)], if vip { 3 } else { 1 }, "row {i}");
        }
        let t = spec.table("tips").unwrap();
        assert_eq!(data.count_rows(t, 0..400), 400 + 2 * vips);
        // A weight written as an expression draws from the stream a number draws from.
        let numbers = format!("{SPEC}{}", text.replace("2 = \"35\"", "2 = 35"));
        let plain = load(&numbers).unwrap();
        assert!(
            plain.tables[plain.table("notes").unwrap()]
                .children
                .weights
                .is_some()
        );
        let plain = per_parent(&Dataset::new(&plain, &profile(), 11).unwrap(), "notes");
        let notes = per_parent(&data, "notes");
        assert_eq!(notes, plain);
        assert!(notes.values().all(|n| [2, 4].contains(n)) && notes.len() > 150);
        // Weights that add up to zero for a parent row are an error naming the table.
        let spec = load(&format!(
            "{SPEC}{}",
            r#"
[[tables]]
name = "tips"
per = "appointments"
counts = { 1 = "if(parent.vip, 0, 1)", 3 = 0 }
[tables.columns]
appointment_id = { gen = "parent", column = "id" }
"#
        ))
        .unwrap();
        let error = match Dataset::new(&spec, &profile(), 11) {
            Ok(data) => {
                let t = spec.table("tips").unwrap();
                data.for_each_row(t, 0..400, &mut |_| Ok(()))
                    .unwrap_err()
                    .to_string()
            }
            Err(e) => e.to_string(),
        };
        assert!(
            error.contains("table tips, column counts: counts: the weights add up to zero"),
            "{error}"
        );
    }

    #[test]
    fn a_count_beyond_its_bound_is_an_error_naming_the_table() {
        let spec = load(&SPEC.replace(
            "count = \"if(parent.bather_id != null, 2, 1)\"",
            "count = \"parent.bather_id * 10\"\nmax = 20",
        ))
        .unwrap();
        let error = match Dataset::new(&spec, &profile(), 11) {
            Ok(data) => {
                let t = spec.table("assignments").unwrap();
                let mut failed = None;
                let _ = data
                    .for_each_row(t, 0..400, &mut |_| Ok(()))
                    .map_err(|e| failed = Some(e));
                failed
                    .expect("a count of up to 90 is beyond 20")
                    .to_string()
            }
            Err(e) => e.to_string(),
        };
        assert!(
            error.contains("table assignments, column count: count:"),
            "{error}"
        );
        assert!(error.contains("outside 0..=20"), "{error}");
    }
}

#[cfg(test)]
mod previous_sibling {
    use super::*;
    use crate::spec::Spec;

    const SPEC: &str = r#"
version = 1
[[tables]]
name = "plans"
count = 50
[tables.columns]
id              = { gen = "serial" }
frequency_weeks = { gen = "int", min = 1, max = 4 }
first_at        = { gen = "timestamp", from = "-100d", to = "-50d" }

[[tables]]
name = "visits"
per = "plans"
min = 3
max = 12
[tables.columns]
plan_id    = { gen = "parent", column = "id" }
start_time = { expr = "coalesce(prev.start_time + weeks(parent.frequency_weeks), parent.first_at)" }
amount     = { gen = "int", min = -20, max = 50 }
balance    = { expr = "coalesce(prev.balance, 0) + amount" }
kind       = { gen = "choice", values = ["groom", "bath"] }
groom_no   = { expr = "coalesce(prev.groom_no, 0) + if(kind == 'groom', 1, 0)" }

[[tables]]
name = "plan_totals"
per = "plans"
[tables.columns]
plan_id = { gen = "parent", column = "id" }
"#;

    fn setup() -> (Spec, Profile) {
        (
            super::fixtures::spec(SPEC, &[]).unwrap(),
            super::fixtures::profile(9, &[]),
        )
    }

    #[test]
    fn prev_reads_the_previous_sibling_in_a_pass_and_in_a_row_made_alone() {
        let (spec, profile) = setup();
        let data = Dataset::new(&spec, &profile, 9).unwrap();
        let visits = spec.table("visits").unwrap();
        let plans = spec.table("plans").unwrap();
        let col = |t: usize, name: &str| {
            spec.tables[t]
                .columns
                .iter()
                .position(|c| c.name == name)
                .unwrap()
        };
        let names = [
            "plan_id",
            "start_time",
            "amount",
            "balance",
            "kind",
            "groom_no",
        ];
        let mut rows: Vec<Vec<Value>> = Vec::new();
        let mut keys = Vec::new();
        data.for_each_row_values(visits, 0..50, 0, &mut |v| {
            rows.push(
                names
                    .iter()
                    .map(|n| v.value(col(visits, n)))
                    .collect::<Result<_>>()?,
            );
            keys.push(v.row.clone());
            Ok(())
        })
        .unwrap();
        let mut checked = 0;
        for (i, row) in rows.iter().enumerate() {
            let plan = row[0].integer().unwrap();
            let mut parent = RowValues::new(&data, plans, RowId::counted(plan as u64 - 1));
            let weeks = parent
                .value(col(plans, "frequency_weeks"))
                .unwrap()
                .integer()
                .unwrap();
            let first = parent.value(col(plans, "first_at")).unwrap();
            let Value::Int(amount) = row[2] else { panic!() };
            let groom = i64::from(row[4] == Value::Text("groom".into()));
            if keys[i].ordinal == 0 {
                assert_eq!(row[1], first);
                assert_eq!(row[3], Value::Int(amount));
                assert_eq!(row[5], Value::Int(groom));
            } else {
                let before = &rows[i - 1];
                assert_eq!(before[0], row[0], "siblings");
                let Value::Timestamp(t) = before[1] else {
                    panic!()
                };
                assert_eq!(row[1], Value::Timestamp(t + weeks * 7 * 86_400));
                assert_eq!(
                    row[3],
                    expr::binary(BinOp::Add, before[3].clone(), Value::Int(amount)).unwrap()
                );
                assert_eq!(
                    row[5],
                    expr::binary(BinOp::Add, before[5].clone(), Value::Int(groom)).unwrap()
                );
                checked += 1;
            }
            // The same row made alone, from its key only.
            let mut alone = RowValues::new(&data, visits, keys[i].clone());
            for (n, name) in names.iter().enumerate() {
                assert_eq!(alone.value(col(visits, name)).unwrap(), row[n], "{name}");
            }
        }
        assert!(checked > 200, "{checked}");
    }
}
