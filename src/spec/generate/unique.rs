//! Unique columns and column sets at any row count, with memory bounded by `UNIQUE_MEMORY`.
//!
//! The rule (DESIGN.md §5, unchanged since the first unique column): rows in table order; a row
//! whose value (or combination) an earlier row's final value took draws again from its own
//! stream (draw 1, 2, ...); only the rows that drew again are kept (row key -> draw).
//!
//! A table whose set of taken values fits the budget walks the rows with that set in memory.
//! A larger one spills each row's first value (its md5 and the row's position) to temporary
//! files partitioned by the digest, then works bucket by bucket:
//!
//! 1. In each bucket, sorted, the earliest row holding a digest is its *first holder*; every
//!    later row with the same first value must draw again (whatever happened to the earlier
//!    row, the value was taken by the time it came).
//! 2. A second walk resolves, in row order, the rows that draw again. A draw is taken when a
//!    row resolved before it took it, or when the draw's first holder comes earlier; when it is
//!    free and its first holder comes later, that row (whose first value is now taken) draws
//!    again too when the walk reaches it (a cascade, always forward). A draw's first holder is
//!    found with one read: the bucket's every `stride`-th digest stays in memory.
//!
//! Memory: one bucket at a time (half the budget while there are at most `MAX_BUCKETS`
//! buckets, which at 16 MB is 134M rows; past that the buckets grow), the writers' buffers (a
//! quarter), the sampled digests (an eighth), and the rows that draw again with their values
//! (in proportion to the collisions, like the result the data set keeps).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};

use md5::{Digest, Md5};

use super::{Dataset, RowId, RowValues, UNIQUE_ATTEMPTS};
use crate::error::{Error, Result};

/// The memory a unique column's set of taken values may use, whatever the row count.
pub(super) const UNIQUE_MEMORY: u64 = 16 << 20;
/// What one row costs in the in-memory set: a `HashSet<u128>` holds 16 bytes and a control
/// byte per slot, at up to half its slots free after growing.
const IN_MEMORY_BYTES_PER_ROW: u64 = 40;
/// A spilled row: its first value's md5 and its position.
const RECORD: usize = 24;
/// At most this many bucket files (open at once while spilling).
const MAX_BUCKETS: u64 = 512;

impl Dataset<'_> {
    /// Walks `table` in order: a row whose values of `columns` were taken draws `redraw` again.
    /// Returns the rows (by key) that drew again and the draw each took.
    pub(super) fn redraw_taken(
        &self,
        ti: usize,
        columns: &[usize],
        redraw: usize,
    ) -> Result<HashMap<u64, u32>> {
        self.redraw_taken_within(ti, columns, redraw, UNIQUE_MEMORY)
    }

    /// `redraw_taken` with `budget` bytes for the taken values.
    pub(super) fn redraw_taken_within(
        &self,
        ti: usize,
        columns: &[usize],
        redraw: usize,
        budget: u64,
    ) -> Result<HashMap<u64, u32>> {
        let rows = self.count_rows(ti, 0..self.root_count(ti));
        if rows.saturating_mul(IN_MEMORY_BYTES_PER_ROW) <= budget {
            self.redraw_in_memory(ti, columns, redraw, rows)
        } else {
            self.redraw_spilled(ti, columns, redraw, rows, budget)
        }
    }

    /// The md5 of a row's values of `columns` at draw `attempt` of `redraw`; `None` when one is
    /// NULL (a NULL makes the combination distinct, as in SQL).
    fn unique_digest(
        &self,
        ti: usize,
        row: RowId,
        columns: &[usize],
        redraw: usize,
        attempt: u32,
    ) -> Result<Option<u128>> {
        let mut values = RowValues::new(self, ti, row);
        values.attempt = Some((redraw, attempt));
        let digest = if let [only] = columns {
            let Some(text) = values.get(*only)? else {
                return Ok(None);
            };
            Md5::digest(text.as_bytes())
        } else {
            // Length-prefixed, so that ("ab", "c") and ("a", "bc") differ.
            let mut md5 = Md5::new();
            for &c in columns {
                let Some(text) = values.get(c)? else {
                    return Ok(None);
                };
                md5.update((text.len() as u64).to_le_bytes());
                md5.update(text.as_bytes());
            }
            md5.finalize()
        };
        Ok(Some(u128::from_be_bytes(digest.into())))
    }

    fn no_free_value(&self, ti: usize, columns: &[usize], redraw: usize, index: u64) -> Error {
        let table = &self.spec.tables[ti];
        let names: Vec<&str> = columns
            .iter()
            .map(|&c| table.columns[c].name.as_str())
            .collect();
        Error::usage(format!(
            "seed spec: table {}, column {}: unique{}, but row {index} found no free value in {UNIQUE_ATTEMPTS} draws \
             (the value needs a random part, such as {{int(1, 9999)}}, or a larger one)",
            table.name,
            table.columns[redraw].name,
            if names.len() > 1 {
                format!(" ({})", names.join(", "))
            } else {
                String::new()
            },
        ))
    }

    /// Each value taken, by its 128-bit md5 rather than its text: two distinct values of any
    /// one table never share a digest in practice (the odds are below 1 in 10^25 for a billion
    /// rows).
    fn redraw_in_memory(
        &self,
        ti: usize,
        columns: &[usize],
        redraw: usize,
        rows: u64,
    ) -> Result<HashMap<u64, u32>> {
        let mut seen: HashSet<u128> = HashSet::with_capacity(rows as usize);
        let mut redrawn = HashMap::new();
        let mut index = 0;
        self.for_each_row(ti, 0..self.root_count(ti), &mut |mut row| {
            row.index = Some(index);
            index += 1;
            let key = row.key;
            for attempt in 0..UNIQUE_ATTEMPTS {
                let Some(digest) = self.unique_digest(ti, row.clone(), columns, redraw, attempt)?
                else {
                    return Ok(());
                };
                if seen.insert(digest) {
                    if attempt > 0 {
                        redrawn.insert(key, attempt);
                    }
                    return Ok(());
                }
            }
            Err(self.no_free_value(ti, columns, redraw, index - 1))
        })?;
        Ok(redrawn)
    }

    /// The same result as `redraw_in_memory`, through buckets on disk (see the module's text).
    fn redraw_spilled(
        &self,
        ti: usize,
        columns: &[usize],
        redraw: usize,
        rows: u64,
        budget: u64,
    ) -> Result<HashMap<u64, u32>> {
        // A bucket read back takes `LOADED` bytes a record.
        const LOADED: u64 = std::mem::size_of::<(u128, u64)>() as u64;
        let half = (budget / 2).max(LOADED);
        let buckets = (rows.saturating_mul(LOADED) / half + 1).min(MAX_BUCKETS);
        let buffer = (budget / 4 / buckets).clamp(RECORD as u64 * 16, 64 << 10) as usize;
        let mut spill = Buckets::new(buckets as usize, buffer)?;

        // Every row's first value. An error stops the walk there: the rows before it are
        // resolved first (one of them may fail first, as it would in order), then it is
        // returned.
        let mut index = 0u64;
        let mut failed_at = None;
        let walked = self.for_each_row(ti, 0..self.root_count(ti), &mut |mut row| {
            let i = index;
            index += 1;
            row.index = Some(i);
            match self.unique_digest(ti, row, columns, redraw, 0) {
                Ok(Some(digest)) => spill.push(digest, i),
                Ok(None) => Ok(()),
                Err(e) => {
                    failed_at = Some(i);
                    Err(e)
                }
            }
        });
        let (limit, failure) = match walked {
            Ok(()) => (index, None),
            Err(e) => (failed_at.unwrap_or(index), Some(e)),
        };

        // Rows whose first value an earlier row's first value holds draw again; so does a
        // first holder whose value a row that drew again took (added as it happens, ahead).
        let stride = (rows.saturating_mul(16) / (budget / 8).max(16)).max(64) as usize;
        let (taken_first, mut holders) = spill.into_sorted(stride)?;
        let mut pending: BTreeSet<u64> = taken_first.into_iter().collect();
        let mut finals: HashSet<u128> = HashSet::new();
        let mut redrawn = HashMap::new();
        let mut index = 0u64;
        let mut done = false;
        let walked = self.for_each_row(ti, 0..self.root_count(ti), &mut |mut row| {
            let i = index;
            index += 1;
            if pending.first().is_none_or(|&first| first >= limit) {
                done = true;
                return Err(Error::usage("(the walk stops here)"));
            }
            if !pending.remove(&i) {
                return Ok(());
            }
            row.index = Some(i);
            let key = row.key;
            for attempt in 1..UNIQUE_ATTEMPTS {
                let Some(digest) = self.unique_digest(ti, row.clone(), columns, redraw, attempt)?
                else {
                    return Ok(());
                };
                if finals.contains(&digest) {
                    continue;
                }
                let first_holder = holders.find(digest)?;
                if first_holder.is_some_and(|h| h < i) {
                    continue;
                }
                finals.insert(digest);
                redrawn.insert(key, attempt);
                if let Some(h) = first_holder
                    && h > i
                {
                    pending.insert(h);
                }
                return Ok(());
            }
            Err(self.no_free_value(ti, columns, redraw, i))
        });
        match walked {
            Err(_) if done => {}
            other => other?,
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(redrawn),
        }
    }
}

/// Temporary files of (digest, row position) records, partitioned by the digest.
struct Buckets {
    writers: Vec<BufWriter<File>>,
}

impl Buckets {
    fn new(count: usize, buffer: usize) -> Result<Self> {
        let writers = (0..count)
            .map(|_| Ok(BufWriter::with_capacity(buffer, spill_file()?)))
            .collect::<Result<_>>()?;
        Ok(Buckets { writers })
    }

    fn push(&mut self, digest: u128, index: u64) -> Result<()> {
        let b = bucket(digest, self.writers.len());
        let w = &mut self.writers[b];
        w.write_all(&digest.to_le_bytes())
            .and_then(|()| w.write_all(&index.to_le_bytes()))
            .map_err(spill_error)
    }

    /// Sorts each bucket and keeps in it only each digest's first holder, with every
    /// `stride`-th digest in memory to find a record in one read; returns the other rows
    /// (whose first value was taken), and the sorted buckets.
    fn into_sorted(self, stride: usize) -> Result<(Vec<u64>, Holders)> {
        let mut taken = Vec::new();
        let mut files = Vec::with_capacity(self.writers.len());
        for w in self.writers {
            let mut file = w.into_inner().map_err(|e| spill_error(e.into_error()))?;
            let mut records = read_records(&mut file)?;
            records.sort_unstable();
            let mut kept = 0;
            for k in 0..records.len() {
                if kept > 0 && records[kept - 1].0 == records[k].0 {
                    taken.push(records[k].1);
                } else {
                    records[kept] = records[k];
                    kept += 1;
                }
            }
            records.truncate(kept);
            file.set_len(0).map_err(spill_error)?;
            file.seek(SeekFrom::Start(0)).map_err(spill_error)?;
            let mut out = BufWriter::with_capacity(64 << 10, &mut file);
            for (digest, index) in &records {
                out.write_all(&digest.to_le_bytes())
                    .and_then(|()| out.write_all(&index.to_le_bytes()))
                    .map_err(spill_error)?;
            }
            out.flush().map_err(spill_error)?;
            drop(out);
            let sparse = records.iter().step_by(stride).map(|r| r.0).collect();
            files.push((file, sparse, records.len()));
        }
        taken.sort_unstable();
        Ok((
            taken,
            Holders {
                files,
                stride,
                block: Vec::new(),
            },
        ))
    }
}

fn bucket(digest: u128, buckets: usize) -> usize {
    ((digest >> 64) as u64 % buckets as u64) as usize
}

/// The sorted buckets: each digest's first holder, found with one read.
struct Holders {
    /// Per bucket: its file, every `stride`-th digest of it, and its record count.
    files: Vec<(File, Vec<u128>, usize)>,
    stride: usize,
    block: Vec<u8>,
}

impl Holders {
    /// The earliest row whose first value has `digest`, if any.
    fn find(&mut self, digest: u128) -> Result<Option<u64>> {
        let b = bucket(digest, self.files.len());
        let (file, sparse, count) = &mut self.files[b];
        let j = sparse.partition_point(|&d| d <= digest);
        if j == 0 {
            return Ok(None);
        }
        let first = (j - 1) * self.stride;
        let n = self.stride.min(*count - first);
        self.block.resize(n * RECORD, 0);
        file.seek(SeekFrom::Start((first * RECORD) as u64))
            .and_then(|_| file.read_exact(&mut self.block))
            .map_err(spill_error)?;
        let record = |k: usize| {
            let r = &self.block[k * RECORD..(k + 1) * RECORD];
            (
                u128::from_le_bytes(r[..16].try_into().expect("16 bytes")),
                u64::from_le_bytes(r[16..].try_into().expect("8 bytes")),
            )
        };
        let (mut low, mut high) = (0, n);
        while low < high {
            let mid = (low + high) / 2;
            match record(mid).0.cmp(&digest) {
                std::cmp::Ordering::Less => low = mid + 1,
                std::cmp::Ordering::Greater => high = mid,
                std::cmp::Ordering::Equal => return Ok(Some(record(mid).1)),
            }
        }
        Ok(None)
    }
}

fn read_records(file: &mut File) -> Result<Vec<(u128, u64)>> {
    let len = file.seek(SeekFrom::End(0)).map_err(spill_error)?;
    file.seek(SeekFrom::Start(0)).map_err(spill_error)?;
    let mut records = Vec::with_capacity(len as usize / RECORD);
    let mut reader = BufReader::with_capacity(64 << 10, &mut *file);
    let mut record = [0u8; RECORD];
    for _ in 0..len as usize / RECORD {
        reader.read_exact(&mut record).map_err(spill_error)?;
        let (digest, index) = record.split_at(16);
        records.push((
            u128::from_le_bytes(digest.try_into().expect("16 bytes")),
            u64::from_le_bytes(index.try_into().expect("8 bytes")),
        ));
    }
    drop(reader);
    file.seek(SeekFrom::End(0)).map_err(spill_error)?;
    Ok(records)
}

/// An unnamed temporary file (removed by the system when closed, even if the process dies).
fn spill_file() -> Result<File> {
    tempfile::tempfile().map_err(spill_error)
}

fn spill_error(e: std::io::Error) -> Error {
    Error::Internal(anyhow::anyhow!(
        "unique column: writing the taken values to a temporary file: {e}"
    ))
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use super::*;

    const SPEC: &str = r#"
version = 1
[[tables]]
name = "codes"
count = 3000
[tables.columns]
id   = { gen = "serial" }
code = { expr = "'c{int(1, 3400)}'", unique = true }

[[tables]]
name = "pairs"
per = "codes"
counts = { 0 = 1, 1 = 2, 3 = 2 }
unique = [["a", "b"]]
[tables.columns]
a = { gen = "int", min = 1, max = 3 }
b = { gen = "int", min = 1, max = 2400 }
"#;

    fn column(data: &Dataset, table: usize, name: &str) -> usize {
        data.spec.tables[table]
            .columns
            .iter()
            .position(|c| c.name == name)
            .unwrap()
    }

    /// Rows whose first value no earlier first value holds, yet which drew again: a redrawn
    /// row's value took it first.
    fn cascades(data: &Dataset, ti: usize, columns: &[usize], redraw: usize) -> usize {
        let redrawn = data
            .redraw_taken_within(ti, columns, redraw, u64::MAX)
            .unwrap();
        let mut firsts = HashSet::new();
        let mut cascaded = 0;
        let mut index = 0;
        data.for_each_row(ti, 0..data.root_count(ti), &mut |mut row| {
            row.index = Some(index);
            index += 1;
            let key = row.key;
            if let Some(d) = data.unique_digest(ti, row, columns, redraw, 0)?
                && firsts.insert(d)
                && redrawn.contains_key(&key)
            {
                cascaded += 1;
            }
            Ok(())
        })
        .unwrap();
        cascaded
    }

    #[test]
    fn spilled_buckets_redraw_the_rows_the_in_memory_set_redraws() {
        let spec = fixtures::spec(SPEC, &[]).unwrap();
        let data = Dataset::new(&spec, &fixtures::profile(11, &[]), 11).unwrap();
        let codes = spec.table("codes").unwrap();
        let pairs = spec.table("pairs").unwrap();
        let code = column(&data, codes, "code");
        let (a, b) = (column(&data, pairs, "a"), column(&data, pairs, "b"));
        for (ti, columns, redraw) in [(codes, vec![code], code), (pairs, vec![a, b], b)] {
            let in_memory = data
                .redraw_taken_within(ti, &columns, redraw, u64::MAX)
                .unwrap();
            assert!(
                in_memory.len() > 300,
                "many collisions: {}",
                in_memory.len()
            );
            assert!(cascades(&data, ti, &columns, redraw) > 5, "cascades");
            // 1 KB: dozens of buckets, each read many times.
            for budget in [1 << 10, 64 << 10] {
                let spilled = data
                    .redraw_taken_within(ti, &columns, redraw, budget)
                    .unwrap();
                assert_eq!(spilled, in_memory, "budget {budget}");
            }
        }
        // What the data set keeps is the in-memory result (the tables are below the budget).
        assert_eq!(
            data.retries[&(codes, code)],
            data.redraw_taken_within(codes, &[code], code, 1 << 10)
                .unwrap()
        );
    }

    #[test]
    fn spilled_buckets_fail_on_the_row_the_in_memory_set_fails_on() {
        let spec = fixtures::spec(&SPEC.replace("int(1, 3400)", "int(1, 3000)"), &[]).unwrap();
        let error = Dataset::new(&spec, &fixtures::profile(11, &[]), 11)
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("found no free value in 64 draws"), "{error}");
        let fine = fixtures::spec(SPEC, &[]).unwrap();
        let data = Dataset::new(&fine, &fixtures::profile(11, &[]), 11).unwrap();
        // The same data set with the narrower column: both ways fail on the same row.
        let narrow = Dataset {
            spec: &spec,
            streams: spec
                .tables
                .iter()
                .map(|t| super::super::TableStreams::new(11, t))
                .collect(),
            ..data
        };
        let codes = spec.table("codes").unwrap();
        let code = column(&narrow, codes, "code");
        let in_memory = narrow
            .redraw_taken_within(codes, &[code], code, u64::MAX)
            .err()
            .unwrap()
            .to_string();
        let spilled = narrow
            .redraw_taken_within(codes, &[code], code, 1 << 10)
            .err()
            .unwrap()
            .to_string();
        assert_eq!(spilled, in_memory);
        assert_eq!(in_memory, error);
    }
}
