//! The model -> the text of seeds/seed.toml and profiles/dev.toml and ci.toml, with a comment
//! on every choice so that a team edits the spec rather than rewrites it.

use std::fmt::Write;

use super::INFERENCE_VERSION;
use super::model::{ColumnPlan, Model, Source, TablePlan};
use super::values::Gen;

/// The profiles' epoch: every date and time is relative to it.
pub const EPOCH: &str = "2025-01-01T00:00:00Z";

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn key(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        s.to_string()
    } else {
        quote(s)
    }
}

fn list(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| quote(v)).collect();
    format!("[{}]", quoted.join(", "))
}

fn generator(c: &ColumnPlan) -> String {
    let body = match &c.generator {
        Gen::Serial => "gen = \"serial\"".to_string(),
        Gen::Uuid => "gen = \"uuid\"".to_string(),
        Gen::Ordinal => "gen = \"ordinal\"".to_string(),
        Gen::Int { min, max } => format!("gen = \"int\", min = {min}, max = {max}"),
        Gen::Decimal { min, max, scale } => {
            format!("gen = \"decimal\", min = {min}, max = {max}, scale = {scale}")
        }
        Gen::Bool { p } => format!("gen = \"bool\", p = {p}"),
        Gen::Choice { values } => format!("gen = \"choice\", values = {}", list(values)),
        Gen::Date { from, to } => {
            format!("gen = \"date\", from = {}, to = {}", quote(from), quote(to))
        }
        Gen::Timestamp { from, to } => {
            format!(
                "gen = \"timestamp\", from = {}, to = {}",
                quote(from),
                quote(to)
            )
        }
        Gen::Ref {
            table,
            column,
            distinct,
        } => format!(
            "gen = \"ref\", table = {}, column = {}{}",
            quote(table),
            quote(column),
            if *distinct { ", distinct = true" } else { "" }
        ),
        Gen::Parent { column } => format!("gen = \"parent\", column = {}", quote(column)),
        Gen::Expr(e) => format!("expr = {}", quote(e)),
        Gen::Null => "expr = \"null\"".to_string(),
    };
    let mut extra = String::new();
    if c.null > 0.0 {
        let _ = write!(extra, ", null = {}", c.null);
    }
    if c.unique {
        extra.push_str(", unique = true");
    }
    format!("{{ {body}{extra} }}")
}

fn source_comment(t: &TablePlan) -> String {
    match &t.source {
        Source::Counted { .. } => "counted: the profiles' [counts] say how many rows".to_string(),
        Source::PerParent { why, .. } => format!("{why}; the profiles' [per] say how many"),
    }
}

pub fn seed_toml(model: &Model, origin: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# seeds/seed.toml, written by `dbtool init` (inference version {INFERENCE_VERSION}) from {origin}, schema {}.",
        model.schema
    );
    out.push_str(
        "# Edit it: this is a seed spec like any other (README, \"Seed spec\"). Every table says why it is\n\
         # counted or generated per parent row, every column why it has its generator, and the columns\n\
         # left out are the ones the database fills. Row counts are in profiles/dev.toml and ci.toml.\n\
         # Dates and times are relative to the profiles' epoch; names, cities and words are inline.\n",
    );
    for (name, why) in &model.skipped {
        let _ = writeln!(out, "# Not seeded: {name} ({why}).");
    }
    out.push_str("version = 1\n");
    for t in &model.tables {
        out.push('\n');
        let _ = writeln!(out, "# {}: {}.", t.name, source_comment(t));
        for note in &t.notes {
            let _ = writeln!(out, "# {note}.");
        }
        out.push_str("[[tables]]\n");
        let _ = writeln!(out, "name = {}", quote(&t.name));
        if let Source::PerParent { parent, dev, .. } = &t.source {
            let _ = writeln!(out, "per = {}", quote(parent));
            let _ = writeln!(out, "min = {}\nmax = {}", dev.0, dev.1);
        }
        if t.disable_triggers {
            out.push_str("disable_triggers = true\n");
        }
        if !t.unique_sets.is_empty() {
            let sets: Vec<String> = t.unique_sets.iter().map(|s| list(s)).collect();
            let _ = writeln!(
                out,
                "unique = [{}]   # unique together, and no single column makes the rows distinct",
                sets.join(", ")
            );
        }
        out.push_str("[tables.columns]\n");
        for c in &t.columns {
            let _ = writeln!(out, "{} = {}", key(&c.name), generator(c));
            let _ = writeln!(out, "  # {}", c.why);
        }
        for (name, why) in &t.left_out {
            let _ = writeln!(out, "# left out: {name}: {why}");
        }
    }
    out
}

pub fn dev_toml(model: &Model) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Written by `dbtool init` (inference version {INFERENCE_VERSION}): tens of rows per table for local development."
    );
    out.push_str(
        "description = \"Local development: a small data set inferred from the schema\"\n",
    );
    out.push_str("seed = 42\n");
    let _ = writeln!(out, "epoch = {}", quote(EPOCH));
    counts(&mut out, model, |s| match s {
        Source::Counted { dev, .. } => Count::Rows(*dev),
        Source::PerParent { dev, .. } => Count::Per(*dev),
    });
    out
}

pub fn ci_toml(model: &Model) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Written by `dbtool init` (inference version {INFERENCE_VERSION}): the smallest data that still fills every table."
    );
    out.push_str("description = \"CI setup steps: dev's spec with fewer rows\"\n");
    out.push_str("extends = \"dev\"\nseed = 7\n");
    counts(&mut out, model, |s| match s {
        Source::Counted { ci, .. } => Count::Rows(*ci),
        Source::PerParent { ci, .. } => Count::Per(*ci),
    });
    out
}

enum Count {
    Rows(u64),
    Per((u64, u64)),
}

fn counts(out: &mut String, model: &Model, of: impl Fn(&Source) -> Count) {
    out.push_str("\n[counts]\n");
    for t in &model.tables {
        if let Count::Rows(n) = of(&t.source) {
            let _ = writeln!(out, "{} = {n}", key(&t.name));
        }
    }
    out.push_str("\n[per]\n");
    for t in &model.tables {
        if let Count::Per((a, b)) = of(&t.source) {
            let _ = writeln!(out, "{} = [{a}, {b}]", key(&t.name));
        }
    }
}
