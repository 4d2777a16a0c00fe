//! Migrations: a folder as the tool that wrote it lays it out (formats/), applied by refinery
//! inside the unit's transaction. refinery's history is dbtool's own record, kept in schema
//! `dbtool` (one table per application schema); the tool's own history is kept beside it, as the
//! tool itself would have written it.

pub mod formats;
pub mod statements;

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use postgres::error::SqlState;
use postgres::{Client, GenericClient};
use refinery::Migration;
use refinery::error::Kind;

use crate::connection::{describe_sql_error, describe_sql_error_in, execute_each, quote_ident};
use crate::error::{Error, Result};
use crate::files::ReadFiles;
use crate::spec::{SchemaColumn, group_columns};
use crate::unit::Unit;
use formats::{Format, Listing, Source, Tool};
use statements::{NO_TRANSACTION, Plan, Refusal};

/// refinery's history table's name before it moved to schema `dbtool`.
pub const LEGACY_HISTORY_TABLE: &str = "refinery_schema_history";

/// The migrations of a directory, in the order their tool runs them.
pub struct Migrations {
    /// Who wrote the directory (detected, or `--migrations-format`).
    pub format: Format,
    /// refinery's migrations, one per versioned source.
    pub list: Vec<Migration>,
    /// Every file read, in name order (what the migrations digest covers).
    pub files: ReadFiles,
    /// The migration of each of `list`, as its tool names it.
    sources: Vec<Source>,
    /// Flyway's repeatable migrations: after the versioned ones, again when they change.
    repeatables: Vec<Source>,
}

impl Migrations {
    /// Reads the directory as `format` lays it out (`auto`: as the one tool whose files it
    /// holds). A file that tool would not run is an error, never silently skipped.
    pub fn load(dir: &Path, format: Format) -> Result<Self> {
        let listing = Listing::read(dir)?;
        let format = match format {
            Format::Auto => formats::detect(&listing)?,
            given => given,
        };
        let mut files = ReadFiles::default();
        let read = formats::tool(format).read(&listing, &mut files)?;
        let (sources, repeatables): (Vec<Source>, Vec<Source>) =
            read.into_iter().partition(|s| s.version.is_some());
        let list = sources
            .iter()
            .enumerate()
            .map(|(i, s)| {
                // refinery keeps an i32 version: the tool's own version and name stay in the
                // name; the version is the file's position.
                let name = match format {
                    Format::Refinery => s.id.clone(),
                    _ => format!("V{}__{}", i + 1, refinery_name(&s.id)),
                };
                Migration::unapplied(&name, &s.up)
                    .map_err(|e| Error::usage(format!("{}: {e}", s.path.display())))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Migrations {
            format,
            list,
            files,
            sources,
            repeatables,
        })
    }

    /// The format's name, as `--migrations-format` spells it.
    pub fn format_name(&self) -> &'static str {
        formats::name(self.format)
    }

    fn tool(&self) -> &'static dyn Tool {
        formats::tool(self.format)
    }

    /// Every migration, versioned then repeatable.
    fn all(&self) -> impl Iterator<Item = &Source> {
        self.sources.iter().chain(&self.repeatables)
    }

    /// How a migration runs; a statement it cannot run as written is exit 6, naming the file,
    /// line and statement, and saying how to proceed.
    fn plan(source: &Source, schema: &str) -> Result<Plan> {
        statements::plan(&source.up, schema).map_err(|r: Refusal| {
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
                source.path.display(),
                r.line,
                r.why
            ))
        })
    }

    /// Refuses, before anything changes, a file that cannot run as written (all of them: a
    /// reset runs every migration, in a schema it has just emptied).
    pub fn check_all(&self, schema: &str) -> Result<()> {
        self.all()
            .try_for_each(|s| Self::plan(s, schema).map(|_| ()))
    }

    /// The migrations that run outside the transaction (`-- no-transaction`, or the tool's own
    /// directive): a reset that runs one is not atomic.
    pub fn outside_transaction(&self) -> Vec<String> {
        self.all()
            .filter(|s| statements::runs_outside(&s.up))
            .map(|s| s.id.clone())
            .collect()
    }

    /// The migrations that add a label to an enum type (`ALTER TYPE ... ADD VALUE`): PostgreSQL
    /// before 17 refuses to use such a label in the transaction that added it.
    pub fn adding_enum_labels(&self) -> Vec<String> {
        self.all()
            .filter(|s| statements::adds_enum_label(&s.up))
            .map(|s| s.id.clone())
            .collect()
    }

    /// The repeatable migrations' names.
    pub fn repeatable_ids(&self) -> impl Iterator<Item = &str> {
        self.repeatables.iter().map(|s| s.id.as_str())
    }

    /// The migrations as their tool names them, in the order they run.
    pub fn names(&self) -> Vec<String> {
        self.all().map(|s| s.id.clone()).collect()
    }

    /// The source of a refinery migration.
    fn source_of(&self, m: &Migration) -> Option<&Source> {
        self.list
            .iter()
            .position(|l| l.version() == m.version())
            .map(|i| &self.sources[i])
    }

    fn dir(&self) -> String {
        self.all().next().and_then(|s| s.path.parent()).map_or_else(
            || "the migrations directory".to_string(),
            |d| d.display().to_string(),
        )
    }
}

impl Migrations {
    /// The schemas, other than `schema`, where the tool keeps its history (drizzle's).
    pub fn history_schemas_outside(&self, schema: &str) -> Vec<String> {
        self.tool()
            .history_table(schema)
            .filter(|t| !t.starts_with(&format!("{}.", quote_ident(schema))))
            .and_then(|t| {
                t.split("\".\"")
                    .next()
                    .map(|s| s.trim_matches('"').to_string())
            })
            .into_iter()
            .collect()
    }
}

/// A tool's migration name as a refinery name (letters, digits, underscores).
fn refinery_name(id: &str) -> String {
    id.chars()
        .map(|c| if c.is_alphanumeric() { c } else { '_' })
        .collect()
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

/// refinery's history table for an application schema: in schema `dbtool`, out of the
/// application's sight (`prisma db pull`, `drizzle-kit introspect`, `\dt`), one per schema that
/// dbtool resets. The schema's name is in the table's; a name too long for PostgreSQL's 63 bytes
/// is replaced by its digest.
pub fn history_table(schema: &str) -> String {
    let mut name = format!("{LEGACY_HISTORY_TABLE}_{schema}");
    if name.len() > 63 {
        name = format!(
            "{LEGACY_HISTORY_TABLE}_{:016x}",
            crate::config::fnv1a64(schema.as_bytes())
        );
    }
    format!("dbtool.{}", quote_ident(&name))
}

/// Where refinery's history was before it moved to schema `dbtool`.
fn legacy_history_table(schema: &str) -> String {
    format!("{}.{LEGACY_HISTORY_TABLE}", quote_ident(schema))
}

/// The history, read-only: empty when the history table does not exist yet (read where it was
/// before it moved, until the next reset or migrate moves it).
pub fn applied(client: &mut Client, schema: &str) -> Result<Vec<Applied>, postgres::Error> {
    let mut table = history_table(schema);
    if !formats::exists(client, &table)? {
        table = legacy_history_table(schema);
        if !formats::exists(client, &table)? {
            return Ok(Vec::new());
        }
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

/// Moves refinery's history from the application's schema into schema `dbtool`, where dbtool
/// keeps it now, and creates it there if there is none (as refinery creates it).
fn settle_history(client: &mut Client, schema: &str) -> Result<(), postgres::Error> {
    let table = history_table(schema);
    client.batch_execute("CREATE SCHEMA IF NOT EXISTS dbtool")?;
    let legacy = legacy_history_table(schema);
    if !formats::exists(client, &table)? && formats::exists(client, &legacy)? {
        let name = table.trim_start_matches("dbtool.");
        client.batch_execute(&format!(
            "ALTER TABLE {legacy} RENAME TO {name};
             ALTER TABLE {}.{name} SET SCHEMA dbtool",
            quote_ident(schema)
        ))?;
    }
    client.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {table} (
            version INT4 PRIMARY KEY,
            name VARCHAR(255),
            applied_on VARCHAR(255),
            checksum VARCHAR(255))"
    ))
}

/// A reset forgets what was applied: refinery's history in schema `dbtool`, and the tool's own
/// history where it sits outside the application's schema (drizzle's schema `drizzle`); the drop
/// took the rest.
pub fn forget_history(client: &mut Client, migrations: &Migrations, schema: &str) -> Result<()> {
    let mut tables = vec![history_table(schema)];
    tables.extend(
        migrations
            .tool()
            .history_table(schema)
            .filter(|t| !t.starts_with(&format!("{}.", quote_ident(schema)))),
    );
    for table in tables {
        client
            .batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
            .map_err(|e| {
                Error::Work(format!(
                    "dropping the migration history {table} failed: {}",
                    describe_sql_error(&e, None)
                ))
            })?;
    }
    Ok(())
}

/// What the files would do against this history.
#[derive(Debug, Default, serde::Serialize)]
pub struct Comparison {
    /// The tool that wrote the migrations directory.
    pub format: String,
    pub pending: Vec<String>,
    /// Applied, but the file changed since (edited, renamed, or moved in the order).
    pub divergent: Vec<String>,
    /// Applied, but the file is gone.
    pub missing: Vec<String>,
    /// Repeatable migrations (Flyway's `R__`) the tool's history holds as they are now: dbtool's
    /// own history keeps versioned migrations only.
    pub repeatables_applied: usize,
}

/// refinery's format compares by version, as refinery does; the others by the tool's name (the
/// version is a position), so that a file removed or renamed is named, not the one after it.
pub fn compare(migrations: &Migrations, applied: &[Applied]) -> Comparison {
    let by_version = migrations.format == Format::Refinery;
    let same = |a: &Applied, m: &Migration| match by_version {
        true => a.version == m.version(),
        false => a.name == m.name(),
    };
    let mut comparison = Comparison {
        format: migrations.format_name().to_string(),
        ..Comparison::default()
    };
    for (m, source) in migrations.list.iter().zip(&migrations.sources) {
        match applied.iter().find(|a| same(a, m)) {
            None => comparison.pending.push(source.id.clone()),
            Some(a)
                if a.checksum != m.checksum().to_string()
                    || a.name != m.name()
                    || a.version != m.version() =>
            {
                comparison.divergent.push(source.id.clone())
            }
            Some(_) => {}
        }
    }
    for a in applied {
        if !migrations.list.iter().any(|m| same(a, m)) {
            comparison.missing.push(match by_version {
                true => format!("V{}__{}", a.version, a.name),
                false => a.name.clone(),
            });
        }
    }
    comparison
}

/// What `migrate` would apply, read-only: neither in dbtool's record nor in the tool's own history.
pub fn pending(client: &mut Client, migrations: &Migrations, schema: &str) -> Result<Vec<String>> {
    let read_failed = |e: postgres::Error| {
        Error::Unreachable(format!(
            "reading the database failed: {}",
            describe_sql_error(&e, None)
        ))
    };
    let done = applied(client, schema).map_err(read_failed)?;
    let by_tool = migrations.tool().tool_applied(
        client,
        schema,
        &migrations.all().cloned().collect::<Vec<_>>(),
    )?;
    let mut pending = compare(migrations, &done).pending;
    pending.retain(|id| !by_tool.contains(id));
    pending.extend(
        migrations
            .repeatables
            .iter()
            .filter(|r| !by_tool.contains(&r.id))
            .map(|r| r.id.clone()),
    );
    Ok(pending)
}

/// A divergent or missing migration of a tool's folder, before anything runs: exit 6 naming it.
fn refuse_divergent(migrations: &Migrations, applied: &[Applied]) -> Result<()> {
    let comparison = compare(migrations, applied);
    // A removed or renamed file first: the files after it only moved because of it.
    if let Some(name) = comparison.missing.first() {
        return Err(Error::Migration(format!(
            "migration {name} was applied but its file is missing from {} (removed or renamed); \
             restore it, or reset the database",
            migrations.dir()
        )));
    }
    if let Some(id) = comparison.divergent.first() {
        let path = migrations
            .all()
            .find(|s| &s.id == id)
            .map_or_else(String::new, |s| format!(" ({})", s.path.display()));
        return Err(Error::Migration(format!(
            "migration {id}{path} differs from the one applied: it was edited, or a file before \
             it was added, removed or renamed since. Applied migrations must not change; add a new \
             migration instead (or reset the database)"
        )));
    }
    Ok(())
}

/// `dbtool migrate` on a database the team's tool migrated: what that tool applied and dbtool's
/// record does not hold yet is recorded as applied, so that only the rest runs.
fn adopt_tool_history(
    client: &mut Client,
    migrations: &Migrations,
    schema: &str,
    before: &[Applied],
) -> Result<bool> {
    let tool_applied = migrations.tool().tool_applied(
        client,
        schema,
        &migrations.all().cloned().collect::<Vec<_>>(),
    )?;
    let mut adopted = false;
    for (m, source) in migrations.list.iter().zip(&migrations.sources) {
        if !tool_applied.contains(&source.id) || before.iter().any(|a| a.name == m.name()) {
            continue;
        }
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        client
            .execute(
                &format!(
                    "INSERT INTO {} (version, name, applied_on, checksum) VALUES ($1, $2, $3, $4)",
                    history_table(schema)
                ),
                &[&m.version(), &m.name(), &now, &m.checksum().to_string()],
            )
            .map_err(|e| Error::Migration(describe_sql_error(&e, None)))?;
        adopted = true;
    }
    Ok(adopted)
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
    /// The tool whose own history is written beside refinery's, and the migrations in the order
    /// they run (refinery runs them in that order, so the next one run is the next of these).
    tool: &'a dyn Tool,
    schema: &'a str,
    /// The schema's oid before the migrations: a file that drops and recreates it changes it.
    schema_oid: String,
    running: Vec<(usize, &'a Source)>,
    next: usize,
}

/// Why a migration failed inside the unit.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error(transparent)]
    Sql(#[from] postgres::Error),
    /// Statement `index` of a `-- no-transaction` file failed; the ones before it committed.
    #[error("{error}")]
    Outside {
        index: usize,
        error: postgres::Error,
    },
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
        "it dropped schema {0}, the schema dbtool resets, and with it what the migrations before \
         it made (does it drop and recreate its own schema?); a reset already empties that \
         schema, so leave that out"
    )]
    SchemaDropped(String),
    #[error(
        "it ended the transaction it runs in (a COMMIT or ROLLBACK that dbtool did not recognise \
         before running it), so what ran before that point, and part of the file, may be \
         committed: the database is not as it was{}. Remove that statement and run the command \
         again", .0.as_ref().map_or_else(String::new, |e| format!("; after it: {e}"))
    )]
    TransactionEnded(Option<String>),
}

impl InUnit<'_> {
    /// Runs one migration's statements as planned, then checks what it left.
    fn run_plan(&mut self, plan: &Plan, query: &str) -> Result<(), StepError> {
        match plan {
            Plan::InTransaction(batch) => {
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
            }
            Plan::Outside(statements) => {
                self.unit
                    .outside(statements)
                    .map_err(|(index, error)| match index {
                        Some(index) => StepError::Outside { index, error },
                        None => StepError::Sql(error),
                    })?
            }
        }
        self.after_migration()
    }

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
        // One query for all three checks.
        let messages = self.unit.client().simple_query(&format!(
            "SELECT pg_catalog.to_regclass('{}') IS NOT NULL, \
             pg_catalog.now() < pg_catalog.statement_timestamp(), \
             coalesce((SELECT oid::text FROM pg_catalog.pg_namespace WHERE nspname = '{}'), '') = '{}'",
            self.history.replace('\'', "''"),
            self.schema.replace('\'', "''"),
            self.schema_oid
        ))?;
        if self.unit.is_open() && !last_row_says(&messages, 1) {
            return Err(StepError::TransactionEnded(None));
        }
        if !last_row_says(&messages, 0) {
            return Err(StepError::HistoryDropped(self.history.clone()));
        }
        if !last_row_says(&messages, 2) {
            return Err(StepError::SchemaDropped(self.schema.to_string()));
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
                Some(plan) => {
                    let started = Instant::now();
                    self.run_plan(plan, query)?;
                    if let Some((rank, source)) = self.running.get(self.next).copied() {
                        self.tool.record(
                            self.unit.client(),
                            self.schema,
                            source,
                            rank,
                            started.elapsed(),
                        )?;
                    }
                    self.next += 1;
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
    settle_history(unit.client(), schema).map_err(sql_error)?;
    let tool = migrations.tool();
    tool.create_history(unit.client(), schema)
        .map_err(sql_error)?;
    let mut before = applied(unit.client(), schema).map_err(sql_error)?;
    if migrations.format != Format::Refinery {
        refuse_divergent(migrations, &before)?;
        if adopt_tool_history(unit.client(), migrations, schema, &before)? {
            before = applied(unit.client(), schema).map_err(sql_error)?;
        }
    }
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
        .map(|&i| Ok((i, Migrations::plan(&migrations.sources[i], schema)?)))
        .collect::<Result<_>>()?;
    let plans = planned
        .iter()
        .map(|(i, plan)| (migrations.list[*i].sql().unwrap_or_default(), plan))
        .collect();
    let mut runner = refinery::Runner::new(&migrations.list)
        .set_abort_divergent(true)
        .set_abort_missing(true);
    runner.set_migration_table_name(history_table(schema));
    let schema_oid: String = unit
        .client()
        .query_one(
            "SELECT oid::text FROM pg_catalog.pg_namespace WHERE nspname = $1",
            &[&schema],
        )
        .map_err(sql_error)?
        .get(0);
    let mut connection = InUnit {
        schema_oid,
        unit,
        plans,
        session,
        history: history_table(schema),
        tool,
        schema,
        running: pending
            .iter()
            .map(|&i| (i + 1, &migrations.sources[i]))
            .collect(),
        next: 0,
    };
    let result = runner.run(&mut connection).map(|report| {
        report
            .applied_migrations()
            .iter()
            .filter_map(|m| migrations.source_of(m).map(|s| s.id.clone()))
            .collect::<Vec<_>>()
    });
    match result {
        Ok(mut applied) => {
            applied.extend(run_repeatables(&mut connection, migrations)?);
            Ok(applied)
        }
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
                    migrations.dir()
                ),
                Kind::Connection(_, source) => {
                    let failing = pending.get(done).map(|&i| &migrations.sources[i]);
                    let sql = failing.map(|s| s.up.as_str());
                    let what = match source.downcast_ref::<StepError>() {
                        Some(StepError::Outside { index, error }) => {
                            let statements = match planned.get(done) {
                                Some((_, Plan::Outside(statements))) => statements.as_slice(),
                                _ => &[],
                            };
                            outside_failure(sql.unwrap_or_default(), statements, *index, error)
                                + &kept_across_resets(error, schema)
                        }
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
                        Some(s) => {
                            format!("migration {} ({}) failed: {what}", s.id, s.path.display())
                        }
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
                    let name = |k: usize| migrations.sources[planned[k].0].id.clone();
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

/// A `-- no-transaction` file whose statement `index` failed: its line, and which statements
/// before it committed (the file is not recorded as applied, so the next run starts it over).
fn outside_failure(
    file: &str,
    statements: &[String],
    index: usize,
    error: &postgres::Error,
) -> String {
    // The statements are the file's text, trimmed (a CREATE EXTENSION with IF NOT EXISTS added
    // is not found, and goes without a line).
    let mut from = 0;
    let lines: Vec<Option<usize>> = statements
        .iter()
        .map(|s| {
            let at = from + file[from..].find(s.as_str())?;
            from = at + s.len();
            Some(file[..at].matches('\n').count() + 1)
        })
        .collect();
    let line = |i: usize| lines.get(i).copied().flatten();
    let at = line(index).map_or_else(String::new, |l| format!(" at line {l}"));
    let committed = match index {
        0 => "none of its statements had run, so nothing of it is committed".to_string(),
        _ => format!(
            "it runs outside any transaction (-- no-transaction), so its {} statement(s) before \
             it are committed ({}); the file is not recorded as applied, so the next run starts it \
             over: undo those statements (or make them idempotent, IF NOT EXISTS) first, or run \
             `dbtool reset`",
            index,
            (0..index)
                .map(|i| line(i)
                    .map_or_else(|| format!("statement {}", i + 1), |l| format!("line {l}")))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    format!(
        "statement {} of {}{at}: {}; {committed}",
        index + 1,
        statements.len(),
        describe_sql_error(error, None)
    )
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

/// Flyway's repeatable migrations, after the versioned ones: each whose checksum the tool's
/// history does not hold for it (new, or changed since it last ran).
fn run_repeatables(connection: &mut InUnit, migrations: &Migrations) -> Result<Vec<String>> {
    if migrations.repeatables.is_empty() {
        return Ok(Vec::new());
    }
    let schema = connection.schema;
    let all: Vec<Source> = migrations.all().cloned().collect();
    let current = connection
        .tool
        .tool_applied(connection.unit.client(), schema, &all)?;
    let mut applied = Vec::new();
    for source in &migrations.repeatables {
        if current.contains(&source.id) {
            continue;
        }
        let plan = Migrations::plan(source, schema)?;
        let started = Instant::now();
        let ran = connection.run_plan(&plan, &source.up).and_then(|()| {
            connection.tool.record(
                connection.unit.client(),
                schema,
                source,
                0,
                started.elapsed(),
            )?;
            if !connection.unit.is_open() {
                connection.unit.reopen()?;
            }
            Ok(())
        });
        if let Err(e) = ran {
            let what = match &e {
                StepError::Sql(pg) => describe_sql_error(pg, Some(&source.up)),
                other => other.to_string(),
            };
            let message = format!(
                "migration {} ({}) failed: {what}",
                source.id,
                source.path.display()
            );
            return Err(match e {
                StepError::TransactionEnded(_) => Error::TransactionEnded(message),
                _ => Error::Migration(message),
            });
        }
        applied.push(source.id.clone());
    }
    Ok(applied)
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

    fn migrations(names: &[&str]) -> Migrations {
        let sources: Vec<Source> = names
            .iter()
            .map(|n| Source {
                id: n.to_string(),
                version: Some(String::new()),
                description: String::new(),
                path: format!("{n}.sql").into(),
                text: "SELECT 1".to_string(),
                up: "SELECT 1".to_string(),
                created: None,
            })
            .collect();
        Migrations {
            format: Format::Refinery,
            list: names
                .iter()
                .map(|n| Migration::unapplied(n, "SELECT 1").unwrap())
                .collect(),
            files: ReadFiles::default(),
            sources,
            repeatables: Vec::new(),
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

    #[test]
    fn history_tables_sit_in_schema_dbtool_one_per_schema() {
        assert_eq!(
            history_table("public"),
            "dbtool.\"refinery_schema_history_public\""
        );
        assert_ne!(history_table("a"), history_table("b"));
        let long = "s".repeat(60);
        assert!(history_table(&long).len() < 63 + "dbtool.".len() + 2);
    }
}
