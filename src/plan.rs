//! The plan: what a command will drop, migrate and seed (exact row counts), computed before the
//! database changes. `--dry-run` prints it; `profiles` prints the seed part without a database.

use std::ops::Range;

use crate::drop::Object;
use crate::spec::{Dataset, Source};

/// Rows per chunk of a counted table: a unit of parallel COPY.
const CHUNK_ROWS: u64 = 25_000;
/// Root rows per chunk of a per-parent table.
const CHUNK_ROOTS: u64 = 10_000;

/// One table's load: its rows in chunks that workers take in any order.
#[derive(Debug, Clone)]
pub struct TableLoad {
    pub table: String,
    pub rows: u64,
    pub index: usize,
    /// Tables of one level load together; every table's level is above its parents'.
    pub level: usize,
    pub chunks: Vec<Chunk>,
}

/// Rows descending from a range of root rows, starting at table position `first_index`.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub roots: Range<u64>,
    pub first_index: u64,
    pub rows: u64,
}

#[derive(Debug, Clone)]
pub struct SeedPlan {
    pub profile: String,
    pub seed: u64,
    pub tables: Vec<TableLoad>,
}

impl SeedPlan {
    pub fn new(data: &Dataset, profile: &str) -> Self {
        // Tables come in load order, so every dependency's level is known before its use.
        let mut levels: Vec<usize> = Vec::with_capacity(data.spec.tables.len());
        for table in &data.spec.tables {
            let level = table
                .dependencies()
                .map(|d| levels[d] + 1)
                .max()
                .unwrap_or(0);
            levels.push(level);
        }
        let tables = data
            .spec
            .tables
            .iter()
            .enumerate()
            .map(|(index, table)| {
                let roots = data.root_count(index);
                let step = match table.source {
                    Source::Counted => CHUNK_ROWS,
                    Source::PerParent { .. } => CHUNK_ROOTS,
                };
                let mut chunks = Vec::new();
                let mut first_index = 0;
                let mut start = 0;
                while start < roots {
                    // The last chunk's worth in halves down to an eighth: the server's work on
                    // the last chunk, after every row is generated, is the load's tail.
                    let left = roots - start;
                    let end = if left > step {
                        start + step
                    } else {
                        start + (left / 2).max(step / 8).clamp(1, left)
                    };
                    let rows = data.count_rows(index, start..end);
                    if rows > 0 {
                        chunks.push(Chunk {
                            roots: start..end,
                            first_index,
                            rows,
                        });
                    }
                    first_index += rows;
                    start = end;
                }
                TableLoad {
                    table: table.name.clone(),
                    rows: first_index,
                    index,
                    level: levels[index],
                    chunks,
                }
            })
            .collect();
        SeedPlan {
            profile: profile.to_string(),
            seed: data.seed,
            tables,
        }
    }

    pub fn total_rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }
}

/// What `--dry-run` prints.
#[derive(Debug, Default)]
pub struct Plan {
    pub database: String,
    pub schema: String,
    /// None: this command drops nothing.
    pub drop: Option<Vec<Object>>,
    /// The database's name when the drop would be a first reset of objects dbtool did not make.
    pub first_reset: Option<String>,
    /// The tool that wrote the migrations directory (`--migrations-format`'s name).
    pub migrations_format: String,
    pub migrations: Vec<String>,
    pub seed: Option<SeedPlan>,
    /// What the seed spec leaves to the database (columns a trigger fills, values it invents,
    /// tables left out), read from the schema as it is now.
    pub notes: Vec<String>,
}

impl Plan {
    pub fn render(&self) -> String {
        let mut out = format!(
            "plan for {} (schema {}), nothing changed:\n",
            self.database, self.schema
        );
        if let Some(objects) = &self.drop {
            out.push_str(&format!("drop: {} objects\n", objects.len()));
            for o in objects {
                out.push_str(&format!("  {}\n", o.describe()));
            }
            if let Some(database) = &self.first_reset {
                out.push_str(&format!(
                    "  no dbtool reset is recorded for this schema: a reset of these objects needs \
                     --adopt {database} as well as --yes\n"
                ));
            }
        }
        out.push_str(&format!("migrate: {} to apply", self.migrations.len()));
        if !self.migrations_format.is_empty() {
            out.push_str(&format!(" ({} migrations)", self.migrations_format));
        }
        out.push('\n');
        for m in &self.migrations {
            out.push_str(&format!("  {m}\n"));
        }
        if let Some(seed) = &self.seed {
            out.push_str(&format!(
                "seed: profile {}, seed {}, {} rows\n",
                seed.profile,
                seed.seed,
                seed.total_rows()
            ));
            for t in &seed.tables {
                out.push_str(&format!("  {:<24} {:>10}\n", t.table, t.rows));
            }
        }
        if !self.notes.is_empty() {
            out.push_str("notes (from the schema as it is now):\n");
            for note in &self.notes {
                out.push_str(&format!("  {note}\n"));
            }
        }
        out
    }
}
