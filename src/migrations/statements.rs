//! A migration file's statements as PostgreSQL's lexical rules see them (sqlparser's PostgreSQL
//! tokenizer: dollar quotes, E'' strings, nested comments), so that a reset can tell, before
//! anything changes, whether a file can run inside its one transaction.
//!
//! A file runs in the reset's transaction unless its first line is `-- no-transaction` (sqlx's
//! convention). A leading `BEGIN;` and trailing `COMMIT;` wrapping the whole file are redundant
//! there and are blanked out (offsets kept, so the server's error positions still point at the
//! right line). A statement that ends the transaction or cannot run inside one is refused with
//! its line. psql's `\restrict` / `\unrestrict` lines (pg_dump >= 15.14 writes them) only
//! protect psql's own restore and are blanked; any other psql meta-command is refused.

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

/// The first-line marker of a migration that must run outside the reset's transaction.
pub const NO_TRANSACTION: &str = "-- no-transaction";

const IF_NOT_EXISTS: &str = " IF NOT EXISTS";

const FROM_STDIN: &str = "reads its rows from psql (COPY ... FROM stdin, as in a pg_dump with \
     data), which dbtool does not send; load data with INSERT statements or the seed spec";

/// One statement of a file: where it starts and the words that say what it is.
#[derive(Debug, Clone)]
pub struct Statement {
    /// 1-based line of its first token.
    pub line: u64,
    /// Byte range in the file, from its first token to its terminating `;` (included) or the end.
    pub start: usize,
    pub end: usize,
    /// Its leading unquoted words, upper-cased (enough to classify it).
    pub words: Vec<String>,
    /// Its leading words and identifiers as PostgreSQL resolves them (unquoted folded to lower
    /// case, quoted as written).
    pub names: Vec<String>,
    /// A psql meta-command (`\restrict ...`): its text.
    pub meta_command: Option<String>,
    /// `COPY ... FROM STDIN`: its rows would follow it in the file, for psql to send.
    pub from_stdin: bool,
    /// `CREATE EXTENSION ...`: the byte offset just after the word EXTENSION.
    extension_end: Option<usize>,
}

impl Statement {
    fn starts_with(&self, words: &[&str]) -> bool {
        self.words.len() >= words.len() && self.words.iter().zip(words).all(|(a, b)| a == b)
    }

    /// `CREATE [OR REPLACE] FUNCTION|PROCEDURE`
    fn is_routine(&self) -> bool {
        ["FUNCTION", "PROCEDURE"].iter().any(|kind| {
            self.starts_with(&["CREATE", kind])
                || self.starts_with(&["CREATE", "OR", "REPLACE", kind])
        })
    }

    /// `CREATE EXTENSION name` without `IF NOT EXISTS`: the byte offset just after the word
    /// EXTENSION, where dbtool adds `IF NOT EXISTS`. A reset keeps extensions (their objects are
    /// not the application's), so the migration that created one finds it there every time after.
    fn creates_extension_at(&self) -> Option<usize> {
        self.extension_end
            .filter(|_| !self.starts_with(&["CREATE", "EXTENSION", "IF"]))
    }

    fn has(&self, word: &str) -> bool {
        self.words.iter().any(|w| w == word)
    }

    /// `BEGIN`, `START TRANSACTION`
    fn opens_transaction(&self) -> bool {
        self.starts_with(&["BEGIN"]) || self.starts_with(&["START", "TRANSACTION"])
    }

    /// `COMMIT`, `END` (not `COMMIT PREPARED`)
    fn commits(&self) -> bool {
        (self.starts_with(&["COMMIT"]) && !self.starts_with(&["COMMIT", "PREPARED"]))
            || self.starts_with(&["END"])
    }

    /// Why this statement cannot run as dbtool runs a file (inside a transaction or not), if it
    /// cannot.
    fn unrunnable(&self, schema: &str) -> Option<&'static str> {
        if self.starts_with(&["DROP", "SCHEMA"])
            && self
                .names
                .iter()
                .skip(2)
                .take_while(|n| !matches!(n.as_str(), "cascade" | "restrict"))
                .any(|n| n == schema)
        {
            return Some(
                "drops the schema that dbtool resets, and the migration history table in it; a \
                 reset already empties that schema, so leave the statement out",
            );
        }
        if self.from_stdin {
            return Some(FROM_STDIN);
        }
        None
    }

    /// `CREATE|DROP INDEX`, `REINDEX` or `ALTER TABLE ... DETACH PARTITION` with CONCURRENTLY,
    /// which PostgreSQL runs outside a transaction only. (`REFRESH MATERIALIZED VIEW
    /// CONCURRENTLY` runs inside one.)
    fn concurrent(&self) -> bool {
        let w = |words: &[&str]| self.starts_with(words);
        self.has("CONCURRENTLY")
            && (w(&["CREATE", "INDEX"])
                || w(&["CREATE", "UNIQUE", "INDEX"])
                || w(&["DROP", "INDEX"])
                || w(&["REINDEX"])
                || (w(&["ALTER", "TABLE"]) && self.has("DETACH")))
    }

    /// Why this statement cannot run inside the reset's transaction, if it cannot.
    fn outside_only(&self) -> Option<&'static str> {
        let w = |words: &[&str]| self.starts_with(words);
        if self.opens_transaction() {
            return Some("opens a transaction inside the reset's transaction");
        }
        if self.commits()
            || w(&["ROLLBACK"]) && !self.has("TO")
            || w(&["ABORT"])
            || w(&["COMMIT", "PREPARED"])
            || w(&["ROLLBACK", "PREPARED"])
            || w(&["PREPARE", "TRANSACTION"])
        {
            return Some("ends the transaction that the reset runs in");
        }
        if self.concurrent() {
            return Some("cannot run inside a transaction block (CONCURRENTLY)");
        }
        if w(&["VACUUM"])
            || w(&["CREATE", "DATABASE"])
            || w(&["DROP", "DATABASE"])
            || w(&["CREATE", "TABLESPACE"])
            || w(&["DROP", "TABLESPACE"])
            || w(&["ALTER", "SYSTEM"])
            || w(&["REINDEX", "DATABASE"])
            || w(&["REINDEX", "SYSTEM"])
            || w(&["CREATE", "SUBSCRIPTION"])
            || w(&["DROP", "SUBSCRIPTION"])
            || w(&["DISCARD", "ALL"])
            || (w(&["CLUSTER"]) && self.words.len() == 1)
        {
            return Some("cannot run inside a transaction block");
        }
        None
    }
}

/// How a migration file will run.
#[derive(Debug, Clone)]
pub enum Plan {
    /// Inside the reset's transaction, one statement per query.
    InTransaction(Batch),
    /// Outside any transaction (`-- no-transaction`): each statement on its own.
    Outside(Vec<String>),
}

/// A file as it runs inside the transaction: its text, with a wrapping BEGIN/COMMIT and psql
/// restrict lines blanked out (same length) and `IF NOT EXISTS` added to each CREATE EXTENSION.
/// No newline is added or removed, so every line is where it was in the file.
///
/// Its statements are sent one per query: a server that forwards a query's text (a Citus
/// coordinator passes a DDL statement's whole query string on to its workers) must not see the
/// rest of the file with it, and an error belongs to exactly one statement.
#[derive(Debug, Clone)]
pub struct Batch {
    pub sql: String,
    /// Where `IF NOT EXISTS` was added: character offsets in the file, ascending.
    added: Vec<usize>,
    /// Each statement's byte range in `sql`.
    pieces: Vec<(usize, usize)>,
}

impl Batch {
    /// The statements to send, each with the character offset in `sql` where it starts.
    pub fn statements(&self) -> impl Iterator<Item = (usize, &str)> {
        self.pieces
            .iter()
            .map(|&(start, end)| (self.sql[..start].chars().count(), &self.sql[start..end]))
    }

    /// The character offset in the file of character `offset` of `sql` (both 0-based), so that
    /// a server error position points into the file as written.
    pub fn file_offset(&self, offset: usize) -> usize {
        let n = IF_NOT_EXISTS.len();
        let mut shift = 0;
        for &at in &self.added {
            if offset < at + shift {
                break;
            }
            if offset < at + shift + n {
                return at;
            }
            shift += n;
        }
        offset - shift
    }
}

/// A statement that cannot run where the file asks it to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub line: u64,
    pub statement: String,
    pub why: String,
}

/// Whether the file asks to run outside the transaction (its first line is `-- no-transaction`).
pub fn runs_outside(sql: &str) -> bool {
    // A byte-order mark before the marker is not part of the line (`plan` reads it so too).
    let sql = sql.strip_prefix('\u{feff}').unwrap_or(sql);
    sql.lines().next().unwrap_or("").trim() == NO_TRANSACTION
}

/// Whether `sql` builds or drops an index CONCURRENTLY (and holds nothing else that could not
/// run inside a transaction): Flyway, golang-migrate and Prisma run such a file outside one.
pub fn builds_concurrently(sql: &str) -> bool {
    split(sql).is_ok_and(|statements| {
        statements.iter().any(Statement::concurrent)
            && statements
                .iter()
                .all(|s| s.concurrent() || s.outside_only().is_none())
    })
}

/// Whether `sql` adds a label to an enum type (`ALTER TYPE ... ADD VALUE`).
pub fn adds_enum_label(sql: &str) -> bool {
    split(sql).is_ok_and(|statements| {
        statements.iter().any(|s| {
            s.starts_with(&["ALTER", "TYPE"]) && s.words.windows(2).any(|w| w == ["ADD", "VALUE"])
        })
    })
}

/// Splits `sql` into statements.
pub fn split(sql: &str) -> Result<Vec<Statement>, Refusal> {
    // A psql meta-command runs to the end of its line, and its arguments are not SQL:
    // `\restrict` takes a random key, which can begin like a hexadecimal number (`0xq...`), and
    // a quote in one would swallow the statements after it. Each meta-command line is blanked
    // for the lexer (same length: every offset holds), kept as a statement of its own, and the
    // file lexed again.
    let dialect = PostgreSqlDialect {};
    let mut lexed = std::borrow::Cow::Borrowed(sql);
    let mut meta_commands: Vec<Statement> = Vec::new();
    loop {
        let (line, start) = match Tokenizer::new(&dialect, &lexed).tokenize_with_location() {
            Ok(tokens) => match statements_of(sql, &tokens) {
                Ok(mut statements) => {
                    if !meta_commands.is_empty() {
                        statements.extend(meta_commands);
                        statements.sort_by_key(|s| s.start);
                    }
                    return Ok(statements);
                }
                Err(MetaCommandAt { line, start }) => (line, start),
            },
            // The lexer stopped on a meta-command's arguments, or at the end of the file for a
            // quote one opened: the first meta-command line up to where it stopped.
            Err(e) => match meta_command_line(&lexed, e.location.line) {
                Some(found) => found,
                None => {
                    return Err(Refusal {
                        line: e.location.line,
                        statement: String::new(),
                        why: format!("the SQL lexer cannot read it: {}", e.message),
                    });
                }
            },
        };
        let end = sql[start..].find('\n').map_or(sql.len(), |i| start + i);
        meta_commands.push(Statement {
            line,
            start,
            end,
            words: Vec::new(),
            names: Vec::new(),
            meta_command: Some(sql[start..end].trim_end().to_string()),
            from_stdin: false,
            extension_end: None,
        });
        lexed
            .to_mut()
            .replace_range(start..end, &" ".repeat(end - start));
    }
}

/// A psql meta-command starts here (its line, the byte offset of its backslash): `split`
/// blanks it to the end of its line and lexes again.
struct MetaCommandAt {
    line: u64,
    start: usize,
}

/// The statements of `sql`'s tokens, or the line of the first meta-command among them.
fn statements_of(sql: &str, tokens: &[TokenWithSpan]) -> Result<Vec<Statement>, MetaCommandAt> {
    let offsets = LineOffsets::new(sql);
    let mut statements = Vec::new();
    let mut current: Option<Statement> = None;
    // Inside a SQL-standard routine body (CREATE [OR REPLACE] FUNCTION/PROCEDURE ... BEGIN
    // ATOMIC ... END) semicolons do not end the statement; CASE ... END nests inside it. Only
    // BEGIN directly followed by ATOMIC, outside parentheses, opens one: `begin` is also a legal
    // column name, and a body opened by mistake would hide every later statement (a COMMIT
    // among them) from the checks below.
    let mut body_depth = 0usize;
    let mut paren_depth = 0usize;
    let mut after_begin = false;
    let mut after_from = false;
    for TokenWithSpan { token, span } in tokens {
        if matches!(token, Token::Whitespace(_) | Token::EOF) {
            continue;
        }
        let start = offsets.byte(sql, span.start);
        let end = offsets.byte(sql, span.end);
        if current.is_none() && matches!(token, Token::Backslash) {
            return Err(MetaCommandAt {
                line: span.start.line,
                start,
            });
        }
        let statement = current.get_or_insert_with(|| Statement {
            line: span.start.line,
            start,
            end,
            words: Vec::new(),
            names: Vec::new(),
            meta_command: None,
            from_stdin: false,
            extension_end: None,
        });
        statement.end = end;
        let follows_begin = std::mem::take(&mut after_begin);
        let follows_from = std::mem::take(&mut after_from);
        match token {
            Token::SemiColon if body_depth == 0 => {
                paren_depth = 0;
                statements.push(current.take().expect("a statement is open"));
            }
            Token::LParen => paren_depth += 1,
            Token::RParen => paren_depth = paren_depth.saturating_sub(1),
            Token::Word(word) if word.quote_style.is_some() && statement.names.len() < 8 => {
                statement.names.push(word.value.clone());
            }
            Token::Word(word) if word.quote_style.is_some() => {}
            Token::Word(word) => {
                if statement.names.len() < 8 {
                    statement.names.push(word.value.to_lowercase());
                }
                let upper = word.value.to_ascii_uppercase();
                if statement.starts_with(&["COPY"]) {
                    after_from = upper == "FROM";
                    statement.from_stdin |= follows_from && upper == "STDIN";
                }
                if body_depth > 0 {
                    match upper.as_str() {
                        "CASE" => body_depth += 1,
                        "END" => body_depth -= 1,
                        _ => {}
                    }
                } else if statement.is_routine() && paren_depth == 0 {
                    match upper.as_str() {
                        "BEGIN" => after_begin = true,
                        "ATOMIC" if follows_begin => body_depth = 1,
                        _ => {}
                    }
                }
                if upper == "EXTENSION" && statement.words == ["CREATE"] {
                    statement.extension_end = Some(end);
                }
                if statement.words.len() < 8 {
                    statement.words.push(upper);
                }
            }
            _ => {}
        }
    }
    statements.extend(current);
    Ok(statements)
}

/// The first line of `sql` up to line `last` (1-based) that is a psql meta-command (its first
/// character after white space is a backslash): its number and the byte offset of its backslash.
fn meta_command_line(sql: &str, last: u64) -> Option<(u64, usize)> {
    let mut line_start = 0;
    for (number, text) in (1..=last).zip(sql.split_inclusive('\n')) {
        let indent = text.len() - text.trim_start().len();
        if text.trim_start().starts_with('\\') {
            return Some((number, line_start + indent));
        }
        line_start += text.len();
    }
    None
}

/// Decides how a migration file runs, or why it cannot run as written. `schema` is the schema
/// the reset empties but keeps: a `CREATE SCHEMA` of it (pg_dump writes one) is blanked out. A
/// `CREATE EXTENSION` runs as `CREATE EXTENSION IF NOT EXISTS`, since a reset keeps extensions.
/// `BEGIN; ... COMMIT;` blocks (Prisma writes one around an enum change, with more statements
/// after it) run as part of the transaction, their two statements blanked.
pub fn plan(sql: &str, schema: &str) -> Result<Plan, Refusal> {
    // A UTF-8 byte-order mark (some Windows editors write one) is not SQL: one space keeps every
    // character position.
    let unmarked;
    let sql = match sql.strip_prefix('\u{feff}') {
        Some(rest) => {
            unmarked = format!(" {rest}");
            unmarked.as_str()
        }
        None => sql,
    };
    let statements = split(sql).map_err(|r| rows_for_psql(sql, r.line).unwrap_or(r))?;
    let text_of = |s: &Statement| sql[s.start..s.end].trim().to_string();
    let refusal = |s: &Statement, why: &str| Refusal {
        line: s.line,
        statement: text_of(s),
        why: why.to_string(),
    };
    if runs_outside(sql) {
        for s in &statements {
            if s.meta_command.is_some() && !is_restrict(s) {
                return Err(meta_refusal(s));
            }
            if let Some(why) = s.unrunnable(schema) {
                return Err(refusal(s, why));
            }
        }
        return Ok(Plan::Outside(
            statements
                .iter()
                .filter(|s| !is_restrict(s))
                .map(|s| {
                    let mut text = sql[s.start..s.end].to_string();
                    if let Some(at) = s.creates_extension_at() {
                        text.insert_str(at - s.start, IF_NOT_EXISTS);
                    }
                    text.trim().to_string()
                })
                .collect(),
        ));
    }
    let mut blank: Vec<(usize, usize)> = Vec::new();
    let mut body: Vec<&Statement> = Vec::new();
    for s in &statements {
        if s.from_stdin {
            return Err(refusal(s, FROM_STDIN));
        }
        if is_restrict(s) || creates_schema(s, schema) {
            blank.push((s.start, s.end));
        } else if s.meta_command.is_some() {
            return Err(meta_refusal(s));
        } else {
            body.push(s);
        }
    }
    // BEGIN ... COMMIT blocks, the whole file or a part of it.
    let mut open: Option<usize> = None;
    let mut paired: Vec<usize> = Vec::new();
    for (i, s) in body.iter().enumerate() {
        if s.opens_transaction() {
            open = Some(i);
        } else if s.commits() {
            paired.extend(open.take().map(|o| [o, i]).into_iter().flatten());
        } else if s.outside_only().is_some() {
            open = None;
        }
    }
    for &i in &paired {
        blank.push((body[i].start, body[i].end));
    }
    let body: Vec<&Statement> = body
        .iter()
        .enumerate()
        .filter(|(i, _)| !paired.contains(i))
        .map(|(_, s)| *s)
        .collect();
    if let Some((s, why)) = body.iter().find_map(|s| {
        s.outside_only()
            .or_else(|| s.unrunnable(schema))
            .map(|w| (s, w))
    }) {
        return Err(refusal(s, why));
    }
    let mut text = sql.to_string();
    for (start, end) in blank {
        // Same length, so every later byte keeps its position; newlines keep line numbers.
        let spaces: String = text[start..end]
            .chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' })
            .collect();
        text.replace_range(start..end, &spaces);
    }
    let at: Vec<usize> = body
        .iter()
        .filter_map(|s| s.creates_extension_at())
        .collect();
    // From the end, so that each byte offset still holds.
    for &at in at.iter().rev() {
        text.insert_str(at, IF_NOT_EXISTS);
    }
    let added = at.iter().map(|&at| sql[..at].chars().count()).collect();
    // A byte offset of the file in `text`: shifted by each IF NOT EXISTS inserted before it.
    let shifted =
        |offset: usize| offset + at.iter().filter(|&&a| a < offset).count() * IF_NOT_EXISTS.len();
    let pieces = body
        .iter()
        .map(|s| (shifted(s.start), shifted(s.end)))
        .filter(|&(start, end)| {
            !text[start..end]
                .trim()
                .trim_end_matches(';')
                .trim()
                .is_empty()
        })
        .collect();
    Ok(Plan::InTransaction(Batch {
        sql: text,
        added,
        pieces,
    }))
}

/// The rows of a `COPY ... FROM stdin` (tab-separated, `\.` at the end) are no SQL, and the
/// lexer may stop in them: the COPY line at or before `line` is then what to name.
fn rows_for_psql(sql: &str, line: u64) -> Option<Refusal> {
    sql.lines()
        .take(line as usize)
        .enumerate()
        .find(|(_, l)| {
            let upper = l.trim().to_ascii_uppercase();
            upper.starts_with("COPY ") && upper.contains(" FROM STDIN")
        })
        .map(|(i, l)| Refusal {
            line: i as u64 + 1,
            statement: l.trim().to_string(),
            why: FROM_STDIN.into(),
        })
}

/// `CREATE SCHEMA name [AUTHORIZATION role]`, nothing more.
fn creates_schema(s: &Statement, schema: &str) -> bool {
    s.starts_with(&["CREATE", "SCHEMA"])
        && s.names.get(2).is_some_and(|n| n == schema)
        && (s.names.len() == 3 || (s.names.len() == 5 && s.names[3] == "authorization"))
}

fn is_restrict(s: &Statement) -> bool {
    s.meta_command.as_deref().is_some_and(|m| {
        let command = m.split_whitespace().next().unwrap_or("");
        command == "\\restrict" || command == "\\unrestrict"
    })
}

fn meta_refusal(s: &Statement) -> Refusal {
    Refusal {
        line: s.line,
        statement: s.meta_command.clone().unwrap_or_default(),
        why: "is a psql meta-command, which only psql understands".into(),
    }
}

/// Byte offsets of line starts, to turn the tokenizer's (line, column) into byte positions.
struct LineOffsets(Vec<usize>);

impl LineOffsets {
    fn new(sql: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(sql.match_indices('\n').map(|(i, _)| i + 1));
        LineOffsets(starts)
    }

    /// The byte position of a 1-based (line, column-in-characters) location.
    fn byte(&self, sql: &str, at: Location) -> usize {
        let Some(&line_start) = self.0.get((at.line.max(1) - 1) as usize) else {
            return sql.len();
        };
        sql[line_start..]
            .char_indices()
            .nth((at.column.max(1) - 1) as usize)
            .map_or(sql.len(), |(i, _)| line_start + i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_byte_order_mark_before_the_marker_still_marks_the_file() {
        let sql = "\u{feff}-- no-transaction\nCREATE INDEX CONCURRENTLY i ON t (c);\n";
        assert!(runs_outside(sql));
        assert!(matches!(plan(sql, "public"), Ok(Plan::Outside(_))));
    }

    fn in_tx(sql: &str) -> String {
        match plan(sql, "public").unwrap() {
            Plan::InTransaction(batch) => batch.sql,
            Plan::Outside(_) => panic!("expected in-transaction"),
        }
    }

    #[test]
    fn a_file_wrapped_in_begin_commit_runs_without_the_wrapper_and_keeps_positions() {
        let sql = "BEGIN;\nCREATE TABLE a (id int);\nCOMMIT;\n";
        let text = in_tx(sql);
        assert_eq!(text.len(), sql.len());
        assert!(!text.contains("BEGIN") && !text.contains("COMMIT"));
        assert_eq!(text.lines().nth(1), Some("CREATE TABLE a (id int);"));
        let sql = "-- generated\nSTART TRANSACTION;\nCREATE TABLE a (id int);\nEND;";
        assert!(!in_tx(sql).contains("START"));
    }

    #[test]
    fn adding_an_enum_label_is_seen_however_the_type_is_named() {
        assert!(adds_enum_label(
            "CREATE TABLE t (id int);\nALTER TYPE \"public\".\"source\" ADD VALUE 'github';"
        ));
        assert!(adds_enum_label(
            "alter type public.source add value if not exists 'x' before 'y';"
        ));
        assert!(!adds_enum_label(
            "ALTER TYPE source RENAME VALUE 'a' TO 'b';\nALTER TYPE s ADD ATTRIBUTE value int;"
        ));
        assert!(!adds_enum_label("SELECT 'ALTER TYPE s ADD VALUE x';"));
    }

    #[test]
    fn begin_commit_blocks_inside_a_file_run_in_the_transaction() {
        // As `prisma migrate dev` writes an enum change, with more statements after it.
        let sql = "-- AlterEnum\nBEGIN;\nCREATE TYPE s_new AS ENUM ('a');\nDROP TYPE s;\nCOMMIT;\n\
                   -- AlterTable\nALTER TABLE t ADD COLUMN x text;\nBEGIN;\nSELECT 2;\nCOMMIT;\n";
        let text = in_tx(sql);
        assert_eq!(text.len(), sql.len());
        assert!(
            !text.contains("BEGIN") && !text.contains("COMMIT"),
            "{text}"
        );
        assert_eq!(
            text.lines().nth(6),
            Some("ALTER TABLE t ADD COLUMN x text;")
        );
    }

    #[test]
    fn an_index_built_concurrently_is_found_and_refused_in_the_transaction() {
        let sql = "CREATE TABLE a (id int);\nCREATE INDEX CONCURRENTLY a_id ON a (id);\n\
                   DROP INDEX CONCURRENTLY IF EXISTS b;\nREFRESH MATERIALIZED VIEW CONCURRENTLY m;\n";
        assert!(builds_concurrently(sql));
        let r = plan(sql, "public").unwrap_err();
        assert_eq!(r.line, 2);
        assert!(r.why.contains("CONCURRENTLY"), "{}", r.why);
        // A REFRESH ... CONCURRENTLY alone runs inside; VACUUM is no index build.
        assert!(!builds_concurrently(
            "REFRESH MATERIALIZED VIEW CONCURRENTLY m;"
        ));
        assert!(matches!(
            plan("REFRESH MATERIALIZED VIEW CONCURRENTLY m;", "public"),
            Ok(Plan::InTransaction(_))
        ));
        assert!(!builds_concurrently(
            "CREATE INDEX CONCURRENTLY i ON a (id);\nVACUUM a;"
        ));
    }

    #[test]
    fn begin_inside_bodies_and_strings_is_not_a_transaction() {
        let sql = "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN COMMIT; RETURN 1; END $$;\n\
                   DO $x$ BEGIN ROLLBACK; END $x$;\n\
                   INSERT INTO t VALUES ('BEGIN; COMMIT;'), (E'it\\'s; COMMIT');\n\
                   /* COMMIT; /* nested */ COMMIT; */ SELECT 1;\n\
                   CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN true THEN 1 END; SELECT 2; END;\n\
                   CREATE TABLE \"commit\" (\"end\" int);";
        assert_eq!(in_tx(sql), sql);
        assert_eq!(split(sql).unwrap().len(), 6);
    }

    #[test]
    fn a_column_named_begin_opens_no_body_that_could_hide_a_commit() {
        let refused = |sql: &str| plan(sql, "public").unwrap_err();
        let r = refused(
            "CREATE TABLE period (id int, begin date);\n\
             CREATE OR REPLACE VIEW v_period AS SELECT id, begin FROM period;\n\
             COMMIT;\nSELECT 1/0;",
        );
        assert_eq!((r.line, r.statement.as_str()), (3, "COMMIT;"));
        let r = refused(
            "CREATE FUNCTION f(begin int) RETURNS int LANGUAGE sql AS 'SELECT 1';\n\
             CREATE OR REPLACE FUNCTION g() RETURNS TABLE (begin int) LANGUAGE sql AS 'SELECT 1';\n\
             CREATE INDEX CONCURRENTLY a_id ON a (id);",
        );
        assert_eq!(r.line, 3);
        // A body's CASE ... END nests; the body's own END closes it.
        let sql = "CREATE OR REPLACE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC\n\
                   INSERT INTO t SELECT CASE WHEN (SELECT CASE WHEN true THEN 1 END) = 1 THEN 1 END;\n\
                   END;\nCOMMIT;";
        assert_eq!(split(sql).unwrap().len(), 2);
        assert_eq!(refused(sql).line, 4);
    }

    #[test]
    fn statements_that_end_or_cannot_run_in_a_transaction_are_refused_with_their_line() {
        let refused = |sql: &str| plan(sql, "public").unwrap_err();
        let r = refused("CREATE TABLE a (id int);\n\nCREATE INDEX CONCURRENTLY a_id ON a (id);");
        assert_eq!(r.line, 3);
        assert!(r.statement.starts_with("CREATE INDEX CONCURRENTLY"));
        assert_eq!(
            refused("CREATE TABLE a (id int);\nCOMMIT;\nSELECT 1;").line,
            2
        );
        assert_eq!(refused("SELECT 1;\nVACUUM a;").line, 2);
        assert_eq!(refused("ALTER SYSTEM SET work_mem = '1MB';").line, 1);
        assert_eq!(
            refused("BEGIN;\nSELECT 1;\nBEGIN;\nSELECT 2;\nCOMMIT;").line,
            1
        );
        assert_eq!(refused("SELECT 1;\nCOMMIT;\nBEGIN;\nSELECT 2;").line, 2);
        assert_eq!(refused("BEGIN;\nSELECT 1;\nROLLBACK;\nCOMMIT;").line, 1);
        assert_eq!(refused("\\connect other\nSELECT 1;").line, 1);
        // SAVEPOINT and ROLLBACK TO stay inside the transaction.
        in_tx("SAVEPOINT s; SELECT 1; ROLLBACK TO SAVEPOINT s; RELEASE s;");
    }

    #[test]
    fn no_transaction_files_run_statement_by_statement() {
        let sql = "-- no-transaction\nCREATE INDEX CONCURRENTLY a_id ON a (id);\nVACUUM a;";
        match plan(sql, "public").unwrap() {
            Plan::Outside(statements) => assert_eq!(
                statements,
                ["CREATE INDEX CONCURRENTLY a_id ON a (id);", "VACUUM a;"]
            ),
            Plan::InTransaction(_) => panic!("expected outside"),
        }
    }

    #[test]
    fn a_batch_is_sent_one_statement_per_query() {
        let sql = "BEGIN;\nCREATE TABLE a (id int);\n-- a comment; with a semicolon\n\
                   CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;\n\
                   CREATE EXTENSION citext; ;\nINSERT INTO a VALUES (1);\nCOMMIT;";
        let Plan::InTransaction(batch) = plan(sql, "public").unwrap() else {
            panic!("expected in-transaction");
        };
        let statements: Vec<(usize, &str)> = batch.statements().collect();
        assert_eq!(
            statements.iter().map(|s| s.1).collect::<Vec<_>>(),
            [
                "CREATE TABLE a (id int);",
                "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;",
                "CREATE EXTENSION IF NOT EXISTS citext;",
                "INSERT INTO a VALUES (1);",
            ]
        );
        // Each starts where the file has it, so that error positions point into the file.
        for (at, text) in &statements {
            let first = &text[..text.find(' ').unwrap()];
            let line = text.lines().next().unwrap();
            let in_file = sql
                .find(&line[..line.len().min(16)])
                .unwrap_or_else(|| sql.find(first).unwrap());
            assert_eq!(
                batch.file_offset(*at),
                sql[..in_file].chars().count(),
                "{text}"
            );
        }
    }

    #[test]
    fn create_extension_runs_as_if_not_exists_and_positions_still_point_into_the_file() {
        let sql = "CREATE EXTENSION pgcrypto; SELECT nope;\n\
                   create /* extension */ extension \"uuid-ossp\" with schema public;\n\
                   CREATE EXTENSION IF NOT EXISTS citext;\nSELECT also_nope;";
        let Plan::InTransaction(batch) = plan(sql, "public").unwrap() else {
            panic!("expected in-transaction");
        };
        assert_eq!(
            batch.sql.lines().collect::<Vec<_>>(),
            [
                "CREATE EXTENSION IF NOT EXISTS pgcrypto; SELECT nope;",
                "create /* extension */ extension IF NOT EXISTS \"uuid-ossp\" with schema public;",
                "CREATE EXTENSION IF NOT EXISTS citext;",
                "SELECT also_nope;",
            ]
        );
        let char_at = |text: &str, word: &str| text[..text.find(word).unwrap()].chars().count();
        for word in ["nope", "also_nope", "pgcrypto", "citext"] {
            assert_eq!(
                batch.file_offset(char_at(&batch.sql, word)),
                char_at(sql, word),
                "{word}"
            );
        }
        // Inside an added IF NOT EXISTS: where it was added.
        assert_eq!(batch.file_offset(char_at(&batch.sql, "NOT")), 16);
        match plan("-- no-transaction\nCREATE EXTENSION vector;", "public").unwrap() {
            Plan::Outside(statements) => {
                assert_eq!(statements, ["CREATE EXTENSION IF NOT EXISTS vector;"])
            }
            Plan::InTransaction(_) => panic!("expected outside"),
        }
    }

    #[test]
    fn creating_the_kept_schema_is_blanked_and_other_schemas_are_not() {
        let text = in_tx(
            "CREATE SCHEMA public;\nCREATE SCHEMA \"public\" AUTHORIZATION app;\nCREATE SCHEMA audit;",
        );
        assert_eq!(text.trim(), "CREATE SCHEMA audit;");
        assert!(in_tx("CREATE SCHEMA \"Public\";").contains("CREATE SCHEMA"));
    }

    #[test]
    fn a_byte_order_mark_is_a_space_and_the_wrapper_behind_it_is_still_seen() {
        let text = in_tx("\u{feff}BEGIN;\nCREATE TABLE a (id int);\nCOMMIT;\n");
        assert_eq!(text.lines().next().map(str::trim), Some(""));
        assert!(text.starts_with(' ') && !text.contains('\u{feff}') && !text.contains("BEGIN"));
    }

    #[test]
    fn dropping_the_reset_schema_or_reading_rows_from_psql_is_refused_with_its_line() {
        let refused = |sql: &str| plan(sql, "public").unwrap_err();
        let r = refused("SELECT 1;\nDROP SCHEMA IF EXISTS public CASCADE;\nCREATE SCHEMA public;");
        assert_eq!(r.line, 2);
        assert!(r.why.contains("history table"), "{}", r.why);
        assert_eq!(
            refused("-- no-transaction\nDROP SCHEMA \"public\";").line,
            2
        );
        in_tx("DROP SCHEMA IF EXISTS audit CASCADE;\nDROP SCHEMA cascade_test RESTRICT;");
        // pg_dump with data: the rows follow the COPY, and may not even lex as SQL.
        let dump = "CREATE TABLE public.t (a int, b text, c text, d text, e text, f text, g text);\n\
                    COPY public.t (a, b, c, d, e, f, g) FROM stdin;\n\
                    1\tO'Brien\t\\N\tx\ty\tz\tw\n\\.\n";
        let r = refused(dump);
        assert_eq!(r.line, 2);
        assert!(r.why.contains("psql"), "{}", r.why);
        assert_eq!(refused(&dump.replace("O'Brien", "Obrien")).line, 2);
        in_tx("COPY t FROM '/tmp/rows.csv';\nCOPY t TO STDOUT;");
    }

    #[test]
    fn pg_dump_restrict_lines_are_blanked() {
        let sql = "\\restrict AbC123\nSET statement_timeout = 0;\nCREATE TABLE public.a (id int);\n\\unrestrict AbC123\n";
        let text = in_tx(sql);
        assert!(!text.contains("restrict"));
        assert!(text.contains("CREATE TABLE public.a"));
    }

    #[test]
    fn a_restrict_key_the_sql_lexer_cannot_read_is_still_a_restrict_line() {
        // pg_dump's key is random: one that begins `0x` and a non-hex digit stops the lexer.
        for key in ["0xq9ZPf", "0x", "'unclosed", "$$", "AbC123"] {
            let sql = format!(
                "\\restrict {key}\nSET statement_timeout = 0;\nCREATE TABLE public.a (id int);\n\\unrestrict {key}\n"
            );
            let text = in_tx(&sql);
            assert!(!text.contains("restrict"), "{key}: {text}");
            assert!(text.contains("CREATE TABLE public.a"), "{key}");
            assert_eq!(text.len(), sql.len(), "{key}: offsets kept");
        }
        // Any other meta-command is still refused, with its own line.
        let r = plan("CREATE TABLE a (id int);\n\\set x 0xq\n", "public").unwrap_err();
        assert_eq!(r.line, 2);
        assert!(r.statement.contains("\\set"), "{r:?}");
    }
}
