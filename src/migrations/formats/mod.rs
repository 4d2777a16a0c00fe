//! Migration folders as each tool writes them. One reader per tool, each in its own file behind
//! [`Tool`]: which files are its own (for `--migrations-format auto`), its migrations in the order
//! it runs them (up sections only, its transaction directive mapped onto `-- no-transaction`),
//! and its own history table, written as the tool itself writes it. The rest of dbtool sees one
//! list of [`Source`]s.

mod dbmate;
mod drizzle;
mod flyway;
mod golang_migrate;
mod goose;
mod prisma;
mod refinery;
mod sqlx;

use std::path::{Path, PathBuf};
use std::time::Duration;

use postgres::Client;

pub use crate::cli::MigrationsFormat as Format;
use crate::connection::quote_ident;
use crate::error::{Error, Result};
use crate::files::ReadFiles;
use crate::migrations::statements::{self, NO_TRANSACTION};

/// One migration as its tool names and runs it.
#[derive(Debug, Clone)]
pub struct Source {
    /// The name the tool lists it by (`0000_init`, `20240101120000_init`, `V1_1__add_pets`).
    pub id: String,
    /// The tool's own version (`20240101120000`, `1.1`); None for a Flyway repeatable.
    pub version: Option<String>,
    /// The tool's description (`add pets`), where it keeps one.
    pub description: String,
    pub path: PathBuf,
    /// The file as read: what the tool's checksum covers.
    pub text: String,
    /// What runs: the up section, first line `-- no-transaction` when the tool's directive says
    /// so. Line numbers are those of the file unless a marker had to be added above it.
    pub up: String,
    /// drizzle: the journal's `when`.
    pub created: Option<i64>,
}

impl Source {
    /// A migration whose whole file runs (no sections, no directive to map).
    pub(crate) fn whole(
        id: String,
        version: Option<String>,
        description: String,
        path: PathBuf,
        text: String,
    ) -> Self {
        Source {
            id,
            version,
            description,
            path,
            up: text.clone(),
            text,
            created: None,
        }
    }

    /// Flyway, golang-migrate and Prisma run a file that builds an index CONCURRENTLY outside a
    /// transaction (Flyway detects the statement; the other two send a file as one query, which
    /// such a statement survives alone): for dbtool the file is `-- no-transaction` too.
    pub(crate) fn outside_when_concurrent(mut self) -> Self {
        if statements::builds_concurrently(&self.up) && !statements::runs_outside(&self.up) {
            self.up = up_section(&self.up, |_| false, |_| false, true);
        }
        self
    }

    /// The version as the whole number goose, golang-migrate and sqlx store.
    pub(crate) fn version_number(&self) -> Option<i64> {
        self.version.as_deref().and_then(|v| v.parse().ok())
    }
}

/// The ids of the `sources` a tool's history says are applied, in run order.
pub(crate) fn ids_where(sources: &[Source], applied: impl Fn(&Source) -> bool) -> Vec<String> {
    sources
        .iter()
        .filter(|s| applied(s))
        .map(|s| s.id.clone())
        .collect()
}

/// A file in the folder that the tool would never run, named as the tool names its files.
pub(crate) fn misnamed(path: &Path, tool: &str, names: &str) -> Error {
    Error::usage(format!(
        "{}: {tool} reads {names} files, so it would never run this one; rename it or move it out",
        path.display()
    ))
}

/// A migrations folder's top level, as the readers look at it.
pub struct Listing {
    pub dir: PathBuf,
    /// Names of the `.sql` files directly in it, sorted.
    pub sql: Vec<String>,
    /// Names of its sub-folders, sorted.
    pub folders: Vec<String>,
    /// Names of its other files, sorted.
    pub others: Vec<String>,
}

impl Listing {
    pub fn read(dir: &Path) -> Result<Self> {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            Error::usage(format!(
                "cannot read the migrations directory {}: {e}",
                dir.display()
            ))
        })?;
        let mut listing = Listing {
            dir: dir.to_path_buf(),
            sql: Vec::new(),
            folders: Vec::new(),
            others: Vec::new(),
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if path.is_dir() {
                listing.folders.push(name);
            } else if name.ends_with(".sql") {
                listing.sql.push(name);
            } else {
                listing.others.push(name);
            }
        }
        listing.sql.sort();
        listing.folders.sort();
        listing.others.sort();
        Ok(listing)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A file's text for recognising it (not remembered: the readers read what runs).
    pub fn peek(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    /// The `.sql` files whose text carries a tool's own annotations.
    pub fn sql_marked(&self, is_tools: fn(&str) -> bool) -> Vec<String> {
        self.sql
            .iter()
            .filter(|f| is_tools(&self.peek(f)))
            .cloned()
            .collect()
    }

    /// Reads a file that will run (remembered in `files`).
    pub fn read_file(&self, files: &mut ReadFiles, path: &Path) -> Result<String> {
        files
            .read_to_string(path)
            .map_err(|e| Error::usage(format!("cannot read {}: {e}", path.display())))
    }
}

/// A tool's migrations folder and history. A new format is one new file implementing this.
pub trait Tool: Sync {
    fn format(&self) -> Format;

    /// What in `listing` only this tool writes (empty: not this tool's folder).
    fn evidence(&self, listing: &Listing) -> Vec<String>;

    /// The migrations, in the order the tool runs them. A file the tool would not read as a
    /// migration is an error naming it.
    fn read(&self, listing: &Listing, files: &mut ReadFiles) -> Result<Vec<Source>>;

    /// The tool's history table, qualified; None for refinery (dbtool's own record).
    fn history_table(&self, _schema: &str) -> Option<String> {
        None
    }

    /// The ids of `sources` the tool's history says are applied (empty without a history).
    fn tool_applied(
        &self,
        _client: &mut Client,
        _schema: &str,
        _sources: &[Source],
    ) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// Creates the history table as the tool creates it, if missing.
    fn create_history(&self, _client: &mut Client, _schema: &str) -> Result<(), postgres::Error> {
        Ok(())
    }

    /// Writes the rows the tool writes once `source` (the `rank`th of all, 1-based) applied.
    fn record(
        &self,
        _client: &mut Client,
        _schema: &str,
        _source: &Source,
        _rank: usize,
        _took: Duration,
    ) -> Result<(), postgres::Error> {
        Ok(())
    }
}

const TOOLS: [&dyn Tool; 8] = [
    &refinery::Refinery,
    &drizzle::Drizzle,
    &prisma::Prisma,
    &golang_migrate::GolangMigrate,
    &goose::Goose,
    &dbmate::Dbmate,
    &sqlx::Sqlx,
    &flyway::Flyway,
];

pub fn tool(format: Format) -> &'static dyn Tool {
    TOOLS
        .iter()
        .copied()
        .find(|t| t.format() == format)
        .unwrap_or(&refinery::Refinery)
}

/// The flag's spelling of a format.
pub fn name(format: Format) -> &'static str {
    match format {
        Format::Auto => "auto",
        Format::Refinery => "refinery",
        Format::Drizzle => "drizzle",
        Format::Prisma => "prisma",
        Format::GolangMigrate => "golang-migrate",
        Format::Goose => "goose",
        Format::Dbmate => "dbmate",
        Format::Sqlx => "sqlx",
        Format::Flyway => "flyway",
    }
}

const FLAG: &str =
    "--migrations-format refinery|drizzle|prisma|golang-migrate|goose|dbmate|sqlx|flyway";

/// `--migrations-format auto`: the one tool whose files the folder holds.
pub fn detect(listing: &Listing) -> Result<Format> {
    let mut found: Vec<(Format, Vec<String>)> = TOOLS
        .iter()
        .map(|t| (t.format(), t.evidence(listing)))
        .filter(|(_, evidence)| !evidence.is_empty())
        .collect();
    // Flyway reads refinery's V{n}__ files too: with Flyway's own files beside them, it is Flyway.
    if found.iter().any(|(f, _)| *f == Format::Flyway) {
        found.retain(|(f, _)| *f != Format::Refinery);
    }
    let shown = |evidence: &[String]| {
        let mut text = evidence
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if evidence.len() > 3 {
            text.push_str(&format!(" and {} more", evidence.len() - 3));
        }
        text
    };
    match found.as_slice() {
        [(format, _)] => Ok(*format),
        [] => {
            let mut what: Vec<String> = listing
                .sql
                .iter()
                .chain(&listing.folders)
                .chain(&listing.others)
                .cloned()
                .collect();
            what.truncate(5);
            Err(Error::usage(format!(
                "{}: {}, which no migration tool's layout fits; point --migrations-dir at the \
                 folder your tool writes, or name the tool with {FLAG}",
                listing.dir.display(),
                if what.is_empty() {
                    "the folder is empty".to_string()
                } else {
                    format!("found {}", what.join(", "))
                }
            )))
        }
        several => Err(Error::usage(format!(
            "{} mixes the layouts of {}; keep one tool's migrations per folder, or name the tool \
             with {FLAG}",
            listing.dir.display(),
            several
                .iter()
                .map(|(f, e)| format!("{} ({})", name(*f), shown(e)))
                .collect::<Vec<_>>()
                .join(" and ")
        ))),
    }
}

/// `{digits}_{rest}`: the version and the rest of a name, as golang-migrate, goose, dbmate and
/// sqlx write them.
pub(crate) fn numbered(name: &str) -> Option<(&str, &str)> {
    let (version, rest) = name.split_once('_')?;
    (!version.is_empty() && version.bytes().all(|b| b.is_ascii_digit())).then_some((version, rest))
}

/// The text that runs for a file with up and down sections: every line of a down section
/// blanked (so line numbers stay), and the `-- no-transaction` marker first when `outside`.
pub(crate) fn up_section(
    text: &str,
    is_up: impl Fn(&str) -> bool,
    is_down: impl Fn(&str) -> bool,
    outside: bool,
) -> String {
    let mut up = true;
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let trimmed = line.trim();
        if is_down(trimmed) {
            up = false;
        } else if is_up(trimmed) {
            up = true;
        }
        if i == 0 && outside {
            // The directive is a comment on the first line: the marker takes its place.
            if trimmed.starts_with("--") {
                out.push_str(NO_TRANSACTION);
                out.push('\n');
                continue;
            }
            out.push_str(NO_TRANSACTION);
            out.push('\n');
        }
        if up {
            out.push_str(line);
        } else if line.ends_with('\n') {
            out.push('\n');
        }
    }
    if text.is_empty() && outside {
        out.push_str(NO_TRANSACTION);
    }
    out
}

/// `schema.table`, quoted.
pub(crate) fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(table))
}

/// Migrations keyed by a whole-number version (refinery, golang-migrate, goose, sqlx): each tool
/// runs them in version order and refuses a version used twice.
pub(crate) struct Versioned<'a, V> {
    dir: &'a Path,
    sources: Vec<(V, Source)>,
}

impl<'a, V: Copy + Ord + std::fmt::Display + std::str::FromStr> Versioned<'a, V> {
    pub fn new(listing: &'a Listing) -> Self {
        Versioned {
            dir: &listing.dir,
            sources: Vec::with_capacity(listing.sql.len()),
        }
    }

    /// `version` as a number, refused where it does not fit (a 20-digit timestamp).
    pub fn number(path: &Path, version: &str) -> Result<V> {
        version.parse().map_err(|_| {
            Error::usage(format!(
                "{}: version {version} is too large",
                path.display()
            ))
        })
    }

    /// Refuses `version` for `file` when another file has it already.
    pub fn check_free(&self, version: V, file: &str) -> Result<()> {
        match self.sources.iter().find(|(v, _)| *v == version) {
            Some((_, twin)) => Err(Error::usage(format!(
                "{}: version {version} is used twice ({} and {file})",
                self.dir.display(),
                twin.id
            ))),
            None => Ok(()),
        }
    }

    pub fn push(&mut self, version: V, source: Source) {
        self.sources.push((version, source));
    }

    pub fn in_order(mut self) -> Vec<Source> {
        self.sources.sort_by_key(|(v, _)| *v);
        self.sources.into_iter().map(|(_, s)| s).collect()
    }
}

/// Whether `table` exists.
pub(crate) fn exists(client: &mut Client, table: &str) -> Result<bool, postgres::Error> {
    Ok(client
        .query_one("SELECT pg_catalog.to_regclass($1) IS NOT NULL", &[&table])?
        .get(0))
}

/// The rows `query` reads from a tool's history table `table`: none where the table does not
/// exist (the tool never ran here).
pub(crate) fn history_rows(
    client: &mut Client,
    table: &str,
    query: &str,
) -> Result<Vec<postgres::Row>> {
    let read = |client: &mut Client| {
        if !exists(client, table)? {
            return Ok(Vec::new());
        }
        client.query(query, &[])
    };
    read(client).map_err(|e| history_error(table, e))
}

fn history_error(table: &str, e: postgres::Error) -> Error {
    Error::Migration(format!(
        "reading {table} failed: {}",
        crate::connection::describe_sql_error(&e, None)
    ))
}

/// The names of the tools' history tables that sit in the application's schema: never seeded,
/// never fingerprinted.
pub const HISTORY_TABLES: [&str; 6] = [
    "refinery_schema_history",
    "_prisma_migrations",
    "schema_migrations",
    "goose_db_version",
    "_sqlx_migrations",
    "flyway_schema_history",
];

/// A lowercase hex string of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    fn detected(files: &[(&str, &str)]) -> std::result::Result<Format, String> {
        let dir = folder(files);
        detect(&Listing::read(dir.path()).unwrap()).map_err(|e| e.to_string())
    }

    #[test]
    fn each_layout_is_recognised_from_its_files() {
        let goose = "-- +goose Up\nSELECT 1;\n-- +goose Down\nSELECT 2;\n";
        let dbmate = "-- migrate:up\nSELECT 1;\n-- migrate:down\nSELECT 2;\n";
        let journal = r#"{"entries":[{"idx":0,"when":1,"tag":"0000_a"}]}"#;
        let cases: [(&[(&str, &str)], Format); 11] = [
            (&[("V1__a.sql", "")], Format::Refinery),
            (&[("V1__a.sql", ""), ("V1.1__b.sql", "")], Format::Flyway),
            (&[("V1__a.sql", ""), ("R__v.sql", "")], Format::Flyway),
            (&[("V1__a.sql", ""), ("V2__add-b.sql", "")], Format::Flyway),
            (&[("V20240101120000__a.sql", "")], Format::Flyway),
            (
                &[("0000_a.sql", ""), ("meta/_journal.json", journal)],
                Format::Drizzle,
            ),
            (&[("20240101000000_a/migration.sql", "")], Format::Prisma),
            (
                &[("1_a.up.sql", ""), ("1_a.down.sql", "")],
                Format::GolangMigrate,
            ),
            (&[("20240101000000_a.sql", goose)], Format::Goose),
            (&[("20240101000000_a.sql", dbmate)], Format::Dbmate),
            (&[("20240101000000_a.sql", "SELECT 1;")], Format::Sqlx),
        ];
        for (files, format) in cases {
            assert_eq!(detected(files), Ok(format), "{files:?}");
        }
    }

    #[test]
    fn a_folder_of_none_or_several_layouts_names_what_it_found() {
        let why = detected(&[]).unwrap_err();
        assert!(why.contains("the folder is empty"), "{why}");
        let why = detected(&[("notes.sql", "")]).unwrap_err();
        assert!(why.contains("found notes.sql"), "{why}");
        let why = detected(&[("V1__a.sql", ""), ("1_b.up.sql", "")]).unwrap_err();
        assert!(
            why.contains("refinery (V1__a.sql)") && why.contains("golang-migrate (1_b.up.sql)"),
            "{why}"
        );
    }

    #[test]
    fn goose_runs_up_sections_only_in_version_order_not_name_order() {
        let dir = folder(&[
            (
                "10_b.sql",
                "-- +goose NO TRANSACTION\n-- +goose Up\nSELECT 10;\n-- +goose Down\nDROP TABLE x;\n",
            ),
            ("9_a.sql", "-- +goose Up\nSELECT 9;\n"),
        ]);
        let listing = Listing::read(dir.path()).unwrap();
        let read = tool(Format::Goose)
            .read(&listing, &mut ReadFiles::default())
            .unwrap();
        let ids: Vec<&str> = read.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["9_a", "10_b"]);
        assert!(read[1].up.starts_with(NO_TRANSACTION));
        assert!(!read[1].up.contains("DROP"));
        assert_eq!(read[1].up.lines().count(), read[1].text.lines().count());
    }

    #[test]
    fn down_sections_are_blanked_keeping_lines() {
        let text = "-- migrate:up\ncreate table a (id int);\n-- migrate:down\ndrop table a;\n";
        let up = up_section(
            text,
            |l| l.starts_with("-- migrate:up"),
            |l| l.starts_with("-- migrate:down"),
            false,
        );
        assert_eq!(up, "-- migrate:up\ncreate table a (id int);\n\n\n");
        let outside = up_section(
            text,
            |l| l.starts_with("-- migrate:up"),
            |l| l.starts_with("-- migrate:down"),
            true,
        );
        assert!(outside.starts_with("-- no-transaction\ncreate table a"));
        assert!(!outside.contains("drop"));
    }
}
