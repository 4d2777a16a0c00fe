//! Migrations: `V{n}__{name}.sql` files read at run time and applied by refinery, history in
//! refinery's default `refinery_schema_history` table of the application's schema.

pub mod statements;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use postgres::error::SqlState;
use postgres::{Client, GenericClient};
use refinery::Migration;
use refinery::error::Kind;

use crate::connection::{describe_sql_error, describe_sql_error_in, execute_each, quote_ident};
use crate::error::{Error, Result};
use crate::files::ReadFiles;
use crate::spec::{SchemaColumn, group_columns};
use crate::unit::Unit;
use statements::{NO_TRANSACTION, Plan, Refusal};

pub const HISTORY_TABLE: &str = "refinery_schema_history";

/// The migration files of a directory, in version order.
pub struct Migrations {
    pub list: Vec<Migration>,
    /// Every file read, in name order (what the migrations digest covers).
    pub files: ReadFiles,
    /// The file of each migration of `list`.
    paths: Vec<PathBuf>,
    /// The text of each migration of `list`.
    sql: Vec<String>,
}

impl Migrations {
    /// Reads every `.sql` file of `dir`. A `.sql` file whose name refinery would not accept is
    /// an error, never silently skipped.
    pub fn load(dir: &Path) -> Result<Self> {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            Error::usage(format!(
                "cannot read the migrations directory {}: {e}",
                dir.display()
            ))
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "sql"))
            .collect();
        paths.sort();
        let mut files = ReadFiles::default();
        let mut loaded: Vec<(Migration, PathBuf, String)> = Vec::with_capacity(paths.len());
        for file in &paths {
            let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            check_name(stem).map_err(|why| Error::usage(format!("{}: {why}", file.display())))?;
            let sql = files
                .read_to_string(file)
                .map_err(|e| Error::usage(format!("cannot read {}: {e}", file.display())))?;
            let migration = Migration::unapplied(stem, &sql)
                .map_err(|e| Error::usage(format!("{}: {e}", file.display())))?;
            if let Some((twin, _, _)) = loaded
                .iter()
                .find(|(m, _, _)| m.version() == migration.version())
            {
                return Err(Error::usage(format!(
                    "{}: version {} is used twice ({} and {})",
                    dir.display(),
                    migration.version(),
                    twin,
                    migration
                )));
            }
            loaded.push((migration, file.clone(), sql));
        }
        loaded.sort_by_key(|(m, _, _)| m.version());
        let mut migrations = Migrations {
            list: Vec::with_capacity(loaded.len()),
            files,
            paths: Vec::with_capacity(loaded.len()),
            sql: Vec::with_capacity(loaded.len()),
        };
        for (migration, path, sql) in loaded {
            migrations.list.push(migration);
            migrations.paths.push(path);
            migrations.sql.push(sql);
        }
        Ok(migrations)
    }

    /// How the `i`th migration runs; a statement it cannot run as written is exit 6, naming the
    /// file, line and statement, and saying how to proceed.
    fn plan(&self, i: usize, schema: &str) -> Result<Plan> {
        statements::plan(&self.sql[i], schema).map_err(|r: Refusal| {
            let statement = r.statement.lines().next().unwrap_or("");
            let shown = if statement.is_empty() {
                String::new()
            } else {
                format!(" `{statement}`")
            };
            Error::Migration(format!(
                "{}:{}: statement{shown} {}; nothing was changed. A reset runs every migration \
                 inside one transaction: remove it, or put it in a file of its own whose first line \
                 is `{NO_TRANSACTION}` (that file then runs outside the transaction, and the \
                 reset is no longer all or nothing)",
                self.paths[i].display(),
                r.line,
                r.why
            ))
        })
    }

    /// Refuses, before anything changes, a file that cannot run as written (all of them: a
    /// reset runs every migration).
    pub fn check_all(&self, schema: &str) -> Result<()> {
        (0..self.list.len()).try_for_each(|i| self.plan(i, schema).map(|_| ()))
    }

    /// The migrations marked `-- no-transaction`: a reset that runs one is not atomic.
    pub fn outside_transaction(&self) -> Vec<String> {
        self.list
            .iter()
            .zip(&self.sql)
            .filter(|(_, sql)| statements::runs_outside(sql))
            .map(|(m, _)| m.to_string())
            .collect()
    }

    /// The file of a migration version.
    fn path_of(&self, version: i32) -> Option<&Path> {
        self.list
            .iter()
            .position(|m| m.version() == version)
            .map(|i| self.paths[i].as_path())
    }

    pub fn names(&self) -> Vec<String> {
        self.list.iter().map(ToString::to_string).collect()
    }
}

const NAMING: &str = "a migration file must be named V{version}__{name}.sql, with a whole-number \
                      version and a name of letters, digits and underscores";

/// `V12__add_pets`: `V`, a whole number refinery can store (its history keeps an i32), two
/// underscores, a word.
///
/// `U{n}__*.sql` files are refused rather than applied: refinery reads `U` as "unversioned" and
/// would run the file as one more forward migration, while tools such as Flyway use `U` for undo
/// migrations, the opposite of what the file says. dbtool has no undo: a reset replaces the schema.
fn check_name(stem: &str) -> std::result::Result<(), String> {
    if let Some(rest) = stem.strip_prefix('U')
        && rest.starts_with(|c: char| c.is_ascii_digit())
    {
        return Err(format!(
            "U{{n}}__ files are not applied: dbtool has no undo migrations (a reset rebuilds the \
             schema from the V files), and refinery would run this one as a forward migration. \
             Move it out of the migrations directory, or rename it V{{n}}__ if it is a forward \
             migration; {NAMING}"
        ));
    }
    let Some(rest) = stem.strip_prefix('V') else {
        return Err(NAMING.to_string());
    };
    let Some((version, name)) = rest.split_once("__") else {
        return Err(NAMING.to_string());
    };
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NAMING.to_string());
    }
    if version.parse::<i32>().is_err() {
        return Err(format!(
            "version {version} is out of range: versions are whole numbers from 0 to {} \
             (refinery keeps them as a 32-bit integer)",
            i32::MAX
        ));
    }
    if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return Err(NAMING.to_string());
    }
    Ok(())
}

/// A new migration whose version is lower than one already applied: refinery applies versions
/// in order, so it would never run (or be taken for a missing file). Names the first such file.
pub fn out_of_order(migrations: &Migrations, applied: &[Applied]) -> Option<String> {
    let latest = applied.iter().max_by_key(|a| a.version)?;
    let late = migrations
        .list
        .iter()
        .filter(|m| m.version() < latest.version)
        .filter(|m| !applied.iter().any(|a| a.version == m.version()))
        .map(ToString::to_string)
        .collect::<Vec<_>>();
    let first = late.first()?;
    Some(format!(
        "out-of-order new migration: {first} has not been applied, but its version is lower than \
         V{}__{}, which already is{}; migrations apply in version order, so give it a version \
         above {} (rename the file), or reset the database to apply every file in order",
        latest.version,
        latest.name,
        if late.len() > 1 {
            format!(" (so are {})", late[1..].join(", "))
        } else {
            String::new()
        },
        latest.version
    ))
}

/// A migration recorded in the history table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Applied {
    pub version: i32,
    pub name: String,
    pub applied_on: String,
    #[serde(skip)]
    pub checksum: String,
}

/// The history, read-only: empty when the history table does not exist yet.
pub fn applied(client: &mut Client, schema: &str) -> Result<Vec<Applied>, postgres::Error> {
    let table = format!("{}.{HISTORY_TABLE}", quote_ident(schema));
    let exists: bool = client
        .query_one("SELECT pg_catalog.to_regclass($1) IS NOT NULL", &[&table])?
        .get(0);
    if !exists {
        return Ok(Vec::new());
    }
    let rows = client.query(
        &format!(
            "SELECT version, coalesce(name, ''), coalesce(applied_on, ''), coalesce(checksum, '') \
             FROM {table} ORDER BY version"
        ),
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|r| Applied {
            version: r.get(0),
            name: r.get(1),
            applied_on: r.get(2),
            checksum: r.get(3),
        })
        .collect())
}

/// What the files would do against this history.
#[derive(Debug, Default, serde::Serialize)]
pub struct Comparison {
    pub pending: Vec<String>,
    /// Applied, but the file changed since.
    pub divergent: Vec<String>,
    /// Applied, but the file is gone.
    pub missing: Vec<String>,
}

pub fn compare(migrations: &Migrations, applied: &[Applied]) -> Comparison {
    let mut comparison = Comparison::default();
    for m in &migrations.list {
        match applied.iter().find(|a| a.version == m.version()) {
            None => comparison.pending.push(m.to_string()),
            Some(a) if a.checksum != m.checksum().to_string() || a.name != m.name() => {
                comparison.divergent.push(m.to_string())
            }
            Some(_) => {}
        }
    }
    for a in applied {
        if !migrations.list.iter().any(|m| m.version() == a.version) {
            comparison
                .missing
                .push(format!("V{}__{}", a.version, a.name));
        }
    }
    comparison
}

/// Refinery's sync traits over the unit's connection, so that every migration and its history
/// row run inside the unit's transaction (refinery's own Postgres driver would open and commit
/// a transaction per migration). After each file the session settings come back, so a file's
/// `SET search_path` cannot redirect the history insert or the load.
struct InUnit<'a> {
    unit: &'a mut Unit,
    plans: HashMap<&'a str, &'a Plan>,
    session: &'a [String],
    history: String,
}

/// Why a migration failed inside the unit.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error(transparent)]
    Sql(#[from] postgres::Error),
    /// A statement of a file that runs in the transaction failed; `at` is where it starts (a
    /// character offset in the batch's text), since the server's error position is in it.
    #[error("{error}")]
    Statement { error: postgres::Error, at: usize },
    #[error(
        "it dropped the migration history table {0} (does it drop and recreate its own schema?); \
         a reset empties the schema itself, so leave that out"
    )]
    HistoryDropped(String),
    #[error(
        "it ended the transaction it runs in (a COMMIT or ROLLBACK that dbtool did not recognise \
         before running it), so what ran before that point, and part of the file, may be \
         committed: the database is not as it was{}. Remove that statement and run the command \
         again", .0.as_ref().map_or_else(String::new, |e| format!("; after it: {e}"))
    )]
    TransactionEnded(Option<String>),
}

impl InUnit<'_> {
    /// After a file failed: whether the unit's transaction is still the one open (failed, it
    /// refuses this query), not ended by the file with its later statements run on their own.
    fn in_transaction(&mut self) -> bool {
        match self
            .unit
            .client()
            .simple_query("SELECT pg_catalog.now() < pg_catalog.statement_timestamp()")
        {
            Err(_) => true,
            Ok(messages) => last_row_says(&messages, 0),
        }
    }

    /// After a migration: the session settings back, the history table still there and, for a
    /// file that ran inside the transaction, the transaction still open (in it, `now()` is the
    /// time of its BEGIN; outside one, the time of this very query).
    fn after_migration(&mut self) -> Result<(), StepError> {
        execute_each(self.unit.client(), self.session)?;
        let messages = self.unit.client().simple_query(&format!(
            "SELECT pg_catalog.to_regclass('{}') IS NOT NULL, pg_catalog.now() < pg_catalog.statement_timestamp()",
            self.history.replace('\'', "''")
        ))?;
        if self.unit.is_open() && !last_row_says(&messages, 1) {
            return Err(StepError::TransactionEnded(None));
        }
        if !last_row_says(&messages, 0) {
            return Err(StepError::HistoryDropped(self.history.clone()));
        }
        Ok(())
    }
}

/// Whether column `column` of the last row of a simple query's answer is `true`.
fn last_row_says(messages: &[postgres::SimpleQueryMessage], column: usize) -> bool {
    let row = messages.iter().rev().find_map(|m| match m {
        postgres::SimpleQueryMessage::Row(row) => Some(row),
        _ => None,
    });
    row.and_then(|r| r.try_get(column).ok().flatten()) == Some("t")
}

impl refinery_core::traits::sync::Transaction for InUnit<'_> {
    type Error = StepError;

    fn execute<'a, T: Iterator<Item = &'a str>>(&mut self, queries: T) -> Result<usize, StepError> {
        let mut count = 0;
        for query in queries {
            match self.plans.get(query) {
                Some(Plan::InTransaction(batch)) => {
                    for (at, statement) in batch.statements() {
                        if let Err(e) = self.unit.client().batch_execute(statement) {
                            return Err(match self.in_transaction() {
                                true => StepError::Statement { error: e, at },
                                false => StepError::TransactionEnded(Some(describe_sql_error_in(
                                    &e,
                                    Some(query),
                                    |o| batch.file_offset(at + o),
                                ))),
                            });
                        }
                    }
                    self.after_migration()?;
                }
                Some(Plan::Outside(statements)) => {
                    self.unit.outside(statements)?;
                    self.after_migration()?;
                }
                // refinery's own statements: the history table and its rows. The row of a
                // -- no-transaction migration commits on its own, as the migration did; the
                // transaction reopens after it.
                None => {
                    self.unit.client().batch_execute(query)?;
                    if !self.unit.is_open() {
                        self.unit.reopen()?;
                    }
                }
            }
            count += 1;
        }
        Ok(count)
    }
}

impl refinery_core::traits::sync::Query<Vec<Migration>> for InUnit<'_> {
    fn query(&mut self, query: &str) -> Result<Vec<Migration>, StepError> {
        let rows = self.unit.client().query(query, &[])?;
        Ok(rows
            .iter()
            .map(|row| {
                let applied_on: String = row.get(2);
                let checksum: String = row.get(3);
                Migration::applied(
                    row.get(0),
                    row.get(1),
                    time::OffsetDateTime::parse(
                        &applied_on,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
                    // A checksum that is not a number never matches: reported as divergent.
                    checksum.parse().unwrap_or(0),
                )
            })
            .collect())
    }
}

impl refinery::Migrate for InUnit<'_> {}

/// Applies the pending migrations with refinery inside the unit's transaction, aborting on
/// divergent or missing ones and refusing, before anything runs, a pending file that cannot run
/// as written. Returns the names of the migrations applied.
pub fn run(
    unit: &mut Unit,
    migrations: &Migrations,
    schema: &str,
    session: &[String],
) -> Result<Vec<String>> {
    let sql_error = |e: postgres::Error| Error::Migration(describe_sql_error(&e, None));
    unit.client()
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            quote_ident(schema)
        ))
        .map_err(|e| {
            Error::Migration(format!(
                "cannot create schema {schema}: {}",
                describe_sql_error(&e, None)
            ))
        })?;
    let before = applied(unit.client(), schema).map_err(sql_error)?;
    if let Some(why) = out_of_order(migrations, &before) {
        return Err(Error::Migration(why));
    }
    let pending: Vec<usize> = (0..migrations.list.len())
        .filter(|&i| {
            !before
                .iter()
                .any(|a| a.version == migrations.list[i].version())
        })
        .collect();
    let planned: Vec<(usize, Plan)> = pending
        .iter()
        .map(|&i| Ok((i, migrations.plan(i, schema)?)))
        .collect::<Result<_>>()?;
    let plans = planned
        .iter()
        .map(|(i, plan)| (migrations.list[*i].sql().unwrap_or_default(), plan))
        .collect();
    let mut runner = refinery::Runner::new(&migrations.list)
        .set_abort_divergent(true)
        .set_abort_missing(true);
    runner.set_migration_table_name(history_table(schema));
    let mut connection = InUnit {
        unit,
        plans,
        session,
        history: history_table(schema),
    };
    match runner.run(&mut connection) {
        Ok(report) => Ok(report
            .applied_migrations()
            .iter()
            .map(ToString::to_string)
            .collect()),
        Err(e) => {
            let done = e.report().map_or(0, |r| r.applied_migrations().len());
            let step_error = match e.kind() {
                Kind::Connection(_, source) => source.downcast_ref::<StepError>(),
                _ => None,
            };
            let message = match e.kind() {
                Kind::DivergentVersion(applied, file) => format!(
                    "migration {file} differs from the one applied on {}: applied migrations must not change; \
                     add a new migration instead (or reset the database)",
                    applied
                        .applied_on()
                        .map_or_else(|| "an earlier run".to_string(), |t| t.to_string())
                ),
                Kind::MissingVersion(applied) => format!(
                    "migration {applied} was applied but its file is missing from {}",
                    migrations_dir_hint(migrations)
                ),
                Kind::Connection(_, source) => {
                    let failing = pending.get(done).map(|&i| &migrations.list[i]);
                    let sql = failing.and_then(|m| m.sql());
                    let what = match source.downcast_ref::<StepError>() {
                        Some(StepError::Statement { error: pg, at }) => {
                            // The server's position is in the statement it ran; the file's is named.
                            let described = match planned.get(done) {
                                Some((_, Plan::InTransaction(batch))) => {
                                    let mut text = describe_sql_error_in(pg, sql, |o| {
                                        batch.file_offset(at + o)
                                    });
                                    // Without a position, the statement's own line.
                                    if let (None, Some(sql)) =
                                        (pg.as_db_error().and_then(|d| d.position()), sql)
                                    {
                                        let line = 1 + sql
                                            .chars()
                                            .take(batch.file_offset(*at))
                                            .filter(|&c| c == '\n')
                                            .count();
                                        text.push_str(&format!(
                                            " (in the statement at line {line})"
                                        ));
                                    }
                                    text
                                }
                                _ => describe_sql_error(pg, sql),
                            };
                            described + &kept_across_resets(pg, schema)
                        }
                        Some(StepError::Sql(pg)) => {
                            describe_sql_error(pg, sql) + &kept_across_resets(pg, schema)
                        }
                        _ => source.to_string(),
                    };
                    match failing {
                        Some(m) => format!(
                            "migration {m} ({}) failed: {what}",
                            migrations
                                .path_of(m.version())
                                .map_or_else(String::new, |p| p.display().to_string())
                        ),
                        None => format!("migration failed: {what}"),
                    }
                }
                other => other.to_string(),
            };
            if matches!(step_error, Some(StepError::TransactionEnded(_))) {
                return Err(Error::TransactionEnded(message));
            }
            // A -- no-transaction migration committed itself and everything before it.
            let last_outside = (0..done.min(planned.len()))
                .rev()
                .find(|&k| matches!(planned[k].1, Plan::Outside(_)));
            Err(Error::Migration(match last_outside {
                None => message,
                Some(k) => {
                    let name = |k: usize| migrations.list[planned[k].0].to_string();
                    let committed = match k {
                        0..=3 => (0..=k).map(name).collect::<Vec<_>>().join(", "),
                        _ => format!("{} migrations, {} to {}", k + 1, name(0), name(k)),
                    };
                    format!(
                        "{}. Committed before it: {committed} ({} runs outside the transaction, \
                         -- no-transaction, and commits what came before it)",
                        message.trim_end_matches('.'),
                        name(k)
                    )
                }
            }))
        }
    }
}

/// A reset empties only its own schema: another schema that a migration creates is still there
/// the next time, with what earlier runs put in it, and the error says so.
fn kept_across_resets(e: &postgres::Error, schema: &str) -> String {
    match e.as_db_error() {
        Some(db) if *db.code() == SqlState::DUPLICATE_SCHEMA => format!(
            ". A reset empties only schema {schema}: other schemas, and what earlier runs created \
             in them, stay. Drop that schema (DROP SCHEMA ... CASCADE) before the reset, or keep \
             the application's objects in {schema}"
        ),
        _ => String::new(),
    }
}

/// refinery's history table, qualified with the application's schema.
fn history_table(schema: &str) -> String {
    format!("{}.{HISTORY_TABLE}", quote_ident(schema))
}

fn migrations_dir_hint(migrations: &Migrations) -> String {
    migrations
        .paths
        .first()
        .and_then(|f| f.parent())
        .map_or_else(
            || "the migrations directory".to_string(),
            |d| d.display().to_string(),
        )
}

/// The columns of every table in `schema`, for checking a seed spec.
pub const COLUMNS_SQL: &str = "
    SELECT c.relname::text, a.attname::text,
           a.attnotnull AND NOT a.atthasdef AND a.attidentity = '' AND a.attgenerated = '',
           pg_catalog.format_type(a.atttypid, a.atttypmod),
           bt.typname::text,
           CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END,
           coalesce((SELECT pg_catalog.array_agg(e.enumlabel::text ORDER BY e.enumsortorder)
                       FROM pg_enum e WHERE e.enumtypid = bt.oid), '{}'),
           a.attgenerated <> ''
      FROM pg_attribute a
      JOIN pg_class c ON c.oid = a.attrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_type t ON t.oid = a.atttypid
      JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
     WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
     ORDER BY c.relname, a.attnum";

pub fn schema_columns(
    client: &mut impl GenericClient,
    schema: &str,
) -> Result<HashMap<String, Vec<SchemaColumn>>, postgres::Error> {
    let rows = client.query(COLUMNS_SQL, &[&schema])?;
    Ok(group_columns(
        rows.iter()
            .map(|r| {
                (
                    r.get(0),
                    SchemaColumn {
                        name: r.get(1),
                        required: r.get(2),
                        type_name: r.get(3),
                        base_type: r.get(4),
                        typmod: r.get(5),
                        enum_labels: r.get(6),
                        generated: r.get(7),
                    },
                )
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid_name(stem: &str) -> bool {
        check_name(stem).is_ok()
    }

    #[test]
    fn names_follow_refinery() {
        assert!(valid_name("V1__init"));
        assert!(valid_name("V2147483647__last"));
        assert!(!valid_name("V1_init"));
        assert!(!valid_name("1__init"));
        assert!(!valid_name("Vx__init"));
        assert!(!valid_name("V1__"));
        assert!(!valid_name("V1__bad-name"));
        assert!(!valid_name("init"));
        assert!(!valid_name("V-1__neg"));
    }

    #[test]
    fn versions_past_i32_say_the_range() {
        let why = check_name("V2147483648__x").unwrap_err();
        assert!(why.contains("0 to 2147483647"), "{why}");
        let why = check_name("V99999999999999999999__x").unwrap_err();
        assert!(why.contains("out of range"), "{why}");
    }

    #[test]
    fn undo_files_are_refused_with_what_dbtool_does() {
        let why = check_name("U20__add_pets").unwrap_err();
        assert!(why.contains("no undo migrations"), "{why}");
    }

    fn migrations(names: &[&str]) -> Migrations {
        Migrations {
            list: names
                .iter()
                .map(|n| Migration::unapplied(n, "SELECT 1").unwrap())
                .collect(),
            files: ReadFiles::default(),
            paths: names.iter().map(|n| format!("{n}.sql").into()).collect(),
            sql: names.iter().map(|_| "SELECT 1".to_string()).collect(),
        }
    }

    fn applied(version: i32, name: &str) -> Applied {
        Applied {
            version,
            name: name.to_string(),
            applied_on: String::new(),
            checksum: String::new(),
        }
    }

    #[test]
    fn a_new_lower_version_is_out_of_order() {
        let files = migrations(&["V1__a", "V2__late", "V3__c"]);
        let done = [applied(1, "a"), applied(3, "c")];
        let why = out_of_order(&files, &done).unwrap();
        assert!(
            why.starts_with("out-of-order new migration: V2__late"),
            "{why}"
        );
        assert!(why.contains("V3__c"), "{why}");
        assert!(out_of_order(&files, &[applied(1, "a")]).is_none());
        assert!(out_of_order(&files, &[]).is_none());
    }
}
