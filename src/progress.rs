//! Everything dbtool says on stderr: progress bars on a terminal, timestamped text lines
//! otherwise, or one JSON object a line with `--log-format json`. Results go to stdout elsewhere.

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

use crate::config::{Output, Verbosity};
use crate::lock::holder::Holder;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// The reporter shared by every stage and worker thread.
pub struct Reporter {
    output: Output,
    verbosity: Verbosity,
    bars: Option<MultiProgress>,
    spinner: Mutex<Option<ProgressBar>>,
}

impl Reporter {
    pub fn new(output: Output, verbosity: Verbosity) -> Self {
        let bars = (output == Output::Bars)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10)));
        Reporter {
            output,
            verbosity,
            bars,
            spinner: Mutex::new(None),
        }
    }

    fn emit(&self, level: Level, event: &str, message: String, fields: Value) {
        let shown = match level {
            Level::Debug => self.verbosity >= Verbosity::Verbose,
            Level::Info => self.verbosity >= Verbosity::Normal,
            Level::Warn | Level::Error => true,
        };
        if !shown {
            return;
        }
        let ts = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let line = match self.output {
            Output::Json => {
                let mut object = json!({ "ts": ts, "level": level.as_str(), "event": event });
                if let (Value::Object(o), Value::Object(extra)) = (&mut object, fields) {
                    o.extend(extra);
                }
                object["message"] = Value::String(message);
                object.to_string()
            }
            Output::Text => format!("{ts} {:<5} {message}", level.as_str()),
            Output::Bars => match level {
                Level::Warn => format!("warning: {message}"),
                Level::Error => format!("error: {message}"),
                _ => message,
            },
        };
        match &self.bars {
            Some(multi) => {
                let _ = multi.println(line);
            }
            None => {
                let mut stderr = std::io::stderr().lock();
                let _ = writeln!(stderr, "{line}");
            }
        }
    }

    pub fn info(&self, event: &str, message: impl Into<String>, fields: Value) {
        self.emit(Level::Info, event, message.into(), fields);
    }

    pub fn debug(&self, message: impl Into<String>) {
        self.emit(Level::Debug, "debug", message.into(), json!({}));
    }

    pub fn warn(&self, event: &str, message: impl Into<String>, fields: Value) {
        self.emit(Level::Warn, event, message.into(), fields);
    }

    pub fn lock_waiting(&self, holder: Option<&Holder>, waited: Duration) {
        let who = holder.map_or_else(|| "another session".into(), Holder::describe);
        let message = format!(
            "waiting for the lock, held by {who}; waited {}s",
            waited.as_secs()
        );
        if let Some(multi) = &self.bars {
            let mut spinner = self.spinner.lock().unwrap_or_else(|e| e.into_inner());
            let bar = spinner.get_or_insert_with(|| {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            });
            bar.set_message(message);
            return;
        }
        self.info(
            "lock-waiting",
            message,
            json!({
                "holder": holder,
                "holder_pid": holder.map(|h| h.pid),
                "waited_ms": waited.as_millis() as u64,
            }),
        );
    }

    fn clear_spinner(&self) {
        if let Some(bar) = self
            .spinner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            bar.finish_and_clear();
        }
    }

    pub fn lock_acquired(&self, key: i64, waited: Duration) {
        self.clear_spinner();
        self.info(
            "lock-acquired",
            format!("lock {key} acquired after {:.1}s", waited.as_secs_f64()),
            json!({ "key": key, "waited_ms": waited.as_millis() as u64 }),
        );
    }

    pub fn lock_busy(&self, holder: Option<&Holder>, message: &str) {
        self.clear_spinner();
        self.warn(
            "lock-busy",
            message,
            json!({ "holder": holder, "holder_pid": holder.map(|h| h.pid) }),
        );
    }

    pub fn lock_released(&self, key: i64) {
        self.info(
            "lock-released",
            format!("lock {key} released"),
            json!({ "key": key }),
        );
    }

    pub fn lock_lost(&self, message: &str) {
        self.emit(Level::Error, "lock-lost", message.to_string(), json!({}));
    }

    pub fn phase_started(&self, phase: &str) {
        self.info(
            "phase-started",
            format!("{phase}: started"),
            json!({ "phase": phase }),
        );
    }

    pub fn phase_finished(&self, phase: &str, elapsed: Duration, detail: &str) {
        let detail = if detail.is_empty() {
            String::new()
        } else {
            format!(" ({detail})")
        };
        self.info(
            "phase-finished",
            format!("{phase}: finished in {:.2}s{detail}", elapsed.as_secs_f64()),
            json!({ "phase": phase, "ms": elapsed.as_millis() as u64 }),
        );
    }

    /// A progress handle for one table; a bar on a terminal, nothing otherwise.
    pub fn table(&self, table: &str, rows: u64) -> TableProgress {
        let bar = self.bars.as_ref().map(|multi| {
            let bar = multi.add(ProgressBar::new(rows));
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:>20} [{bar:30}] {pos}/{len} rows {rate} {elapsed}",
                )
                .expect("the template is valid")
                .with_key(
                    "rate",
                    |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{:.0} rows/s", state.per_sec());
                    },
                )
                .progress_chars("=> "),
            );
            bar.set_prefix(table.to_string());
            bar
        });
        TableProgress { bar }
    }

    pub fn table_seeded(&self, table: &str, rows: u64, elapsed: Duration) {
        let rate = rows as f64 / elapsed.as_secs_f64().max(1e-6);
        self.info(
            "table-seeded",
            format!(
                "seeded {table}: {rows} rows in {:.2}s ({rate:.0} rows/s)",
                elapsed.as_secs_f64()
            ),
            json!({ "table": table, "rows": rows, "ms": elapsed.as_millis() as u64 }),
        );
    }

    pub fn done(&self, message: &str, elapsed: Duration, fields: Value) {
        let mut fields = fields;
        fields["ms"] = json!(elapsed.as_millis() as u64);
        self.info(
            "done",
            format!("{message} in {:.2}s", elapsed.as_secs_f64()),
            fields,
        );
    }

    /// One line, whatever the error: a parser's snippet (the lines after the first) is shown
    /// only with `-v`, and in JSON it goes to a `detail` field of the same object.
    pub fn error(&self, message: &str, code: i32) {
        self.clear_spinner();
        let (first, detail) = crate::error::headline(message);
        let fields = match detail {
            Some(detail) if self.output == Output::Json => {
                json!({ "exit_code": code, "detail": detail })
            }
            _ => json!({ "exit_code": code }),
        };
        self.emit(Level::Error, "error", first.to_string(), fields);
        if let Some(detail) = detail
            && self.output != Output::Json
            && self.verbosity >= Verbosity::Verbose
        {
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "{detail}");
        }
    }
}

/// Rows written for one table, shown as a bar on a terminal.
pub struct TableProgress {
    bar: Option<ProgressBar>,
}

impl TableProgress {
    pub fn inc(&self, rows: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(rows);
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}
