//! Profiles: `profiles/NAME.toml` -> a resolved `Profile` (with `extends` applied).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::files::ReadFiles;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    description: Option<String>,
    seed: Option<u64>,
    epoch: Option<Epoch>,
    extends: Option<String>,
    #[serde(default)]
    counts: BTreeMap<String, u64>,
    #[serde(default)]
    per: BTreeMap<String, RawPer>,
    seed_command: Option<String>,
}

/// `epoch = "2025-01-01"` (a string) or `epoch = 2025-01-01T00:00:00Z` (a bare TOML datetime).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Epoch {
    Text(String),
    Datetime(toml::value::Datetime),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawPer {
    /// `[min, max]`; a Vec, as serde would take the first two of three numbers for a `[u64; 2]`.
    Range(Vec<u64>),
    Weights(BTreeMap<String, u64>),
    /// Anything else (a profile key written after `[per]` lands here): named in the error.
    Other(toml::Value),
}

/// Children per parent row, overriding the spec's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PerCounts {
    /// Uniform in [min, max].
    Range(u64, u64),
    /// (count, cumulative weight), ascending by count.
    Weights(Vec<(u64, u64)>),
}

impl PerCounts {
    pub fn bounds(&self) -> (u64, u64) {
        match self {
            PerCounts::Range(min, max) => (*min, *max),
            PerCounts::Weights(w) => (w[0].0, w[w.len() - 1].0),
        }
    }
}

/// `{ "1" = 50, "2" = 35 }` -> [(1, 50), (2, 85)]: counts ascending with cumulative weights.
pub fn weighted_counts(
    weights: &BTreeMap<String, u64>,
) -> std::result::Result<Vec<(u64, u64)>, String> {
    let mut counts: Vec<(u64, u64)> = weights
        .iter()
        .map(|(k, w)| {
            k.trim()
                .parse::<u64>()
                .map(|n| (n, *w))
                .map_err(|_| format!("{k:?} is not a number of children"))
        })
        .collect::<std::result::Result<_, _>>()?;
    counts.sort();
    let mut sum = 0;
    for (_, w) in &mut counts {
        sum += *w;
        *w = sum;
    }
    if sum == 0 {
        return Err("the weights add up to zero".into());
    }
    Ok(counts)
}

/// A profile with its `extends` chain merged: the child's values win.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub description: String,
    pub seed: u64,
    /// The profile's "now", in seconds since 1970-01-01 UTC: time-based values derive from it.
    pub epoch: i64,
    pub counts: BTreeMap<String, u64>,
    /// Children per parent row, overriding the spec's.
    pub per: BTreeMap<String, PerCounts>,
    /// The files read, for the change digest of `--skip-if-reset-within`.
    pub files: ReadFiles,
    /// A team's own seed program, run under the lock after the generated rows.
    pub seed_command: Option<String>,
}

impl Profile {
    pub fn load(dir: &Path, name: &str) -> Result<Self> {
        let mut chain: Vec<(String, RawProfile)> = Vec::new();
        let mut files = ReadFiles::default();
        let mut next = Some(name.to_string());
        while let Some(current) = next {
            if chain.iter().any(|(n, _)| *n == current) {
                return Err(Error::usage(format!(
                    "profile {name}: `extends` loops back to {current}"
                )));
            }
            let raw = match chain.last() {
                None => read_raw(dir, &current, &mut files)?,
                Some((child, _)) if !profile_path(dir, &current).exists() => {
                    let known = names(dir).map(|n| n.join(", ")).unwrap_or_default();
                    return Err(Error::usage(format!(
                        "{}: extends = {current:?}, but there is no {} (profiles: {known})",
                        profile_path(dir, child).display(),
                        profile_path(dir, &current).display()
                    )));
                }
                Some(_) => read_raw(dir, &current, &mut files)?,
            };
            next = raw.extends.clone();
            chain.push((current, raw));
        }
        let mut profile = Profile {
            name: name.to_string(),
            description: String::new(),
            seed: 0,
            epoch: 0,
            counts: BTreeMap::new(),
            per: BTreeMap::new(),
            files,
            seed_command: None,
        };
        let (mut seed, mut epoch, mut description) = (None, None, None);
        // Apply the root first so that every child overrides its parent.
        for (current, raw) in chain.into_iter().rev() {
            let file = profile_path(dir, &current);
            seed = raw.seed.or(seed);
            description = raw.description.or(description);
            profile.seed_command = raw.seed_command.or(profile.seed_command.take());
            match raw.epoch {
                None => {}
                Some(Epoch::Text(text)) => {
                    epoch = Some(parse_epoch(&text).map_err(|e| {
                        Error::usage(format!("{}: epoch {text:?}: {e}", file.display()))
                    })?);
                }
                Some(Epoch::Datetime(datetime)) => {
                    epoch = Some(datetime_epoch(&datetime).map_err(|e| {
                        Error::usage(format!("{}: epoch {datetime}: {e}", file.display()))
                    })?);
                }
            }
            profile.counts.extend(raw.counts);
            for (table, per) in raw.per {
                let per = match per {
                    RawPer::Range(range) => {
                        let [min, max] = range[..] else {
                            return Err(Error::usage(format!(
                                "{}: per.{table} = {range:?}: give two numbers, [min, max] children per parent",
                                file.display()
                            )));
                        };
                        if min > max {
                            return Err(Error::usage(format!(
                                "{}: per.{table} = [{min}, {max}]: min is larger than max",
                                file.display()
                            )));
                        }
                        PerCounts::Range(min, max)
                    }
                    RawPer::Weights(w) => PerCounts::Weights(weighted_counts(&w).map_err(|e| {
                        Error::usage(format!("{}: per.{table}: {e}", file.display()))
                    })?),
                    RawPer::Other(value) => {
                        let top = ["description", "seed", "epoch", "extends", "seed_command"];
                        return Err(Error::usage(format!(
                            "{}: per.{table} = {value}: give [min, max] children per parent, or \
                             weights {{ \"0\" = 1, \"2\" = 3 }}{}",
                            file.display(),
                            if top.contains(&table.as_str()) {
                                format!(
                                    "; `{table}` is a profile key: every key after [per] belongs \
                                     to [per], so move it above the [counts] and [per] tables"
                                )
                            } else {
                                String::new()
                            }
                        )));
                    }
                };
                profile.per.insert(table, per);
            }
        }
        let file = profile_path(dir, name);
        profile.seed = seed
            .ok_or_else(|| Error::usage(format!("{}: no `seed` (an integer)", file.display())))?;
        profile.epoch = epoch.ok_or_else(|| {
            Error::usage(format!(
                "{}: no `epoch` (a date such as \"2025-01-01\" or \"2025-01-01T00:00:00Z\")",
                file.display()
            ))
        })?;
        profile.description = description.unwrap_or_default();
        Ok(profile)
    }

    /// Every profile in `dir`, sorted by name, each loaded on its own: one broken profile does
    /// not hide the others.
    pub fn load_each(dir: &Path) -> Result<Vec<(String, Result<Self>)>> {
        Ok(names(dir)?
            .into_iter()
            .map(|n| {
                let loaded = Profile::load(dir, &n);
                (n, loaded)
            })
            .collect())
    }
}

/// The names of the profiles in `dir`.
pub fn names(dir: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Error::usage(format!(
            "cannot read the profiles directory {}: {e}",
            dir.display()
        ))
    })?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let path = e.path();
            (path.extension()? == "toml").then(|| path.file_stem()?.to_str().map(String::from))?
        })
        .collect();
    names.sort();
    Ok(names)
}

fn profile_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.toml"))
}

fn read_raw(dir: &Path, name: &str, files: &mut ReadFiles) -> Result<RawProfile> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let path = profile_path(dir, name);
    if valid && path.is_dir() {
        return Err(Error::usage(format!(
            "{} is a directory, not a profile file: profile {name:?} must be a TOML file",
            path.display()
        )));
    }
    if !valid || !path.is_file() {
        let known = names(dir).map(|n| n.join(", ")).unwrap_or_default();
        return Err(Error::usage(format!(
            "unknown profile {name:?}: there is no {} (profiles: {known})",
            path.display()
        )));
    }
    let text = files
        .read_to_string(&path)
        .map_err(|e| Error::usage(format!("cannot read {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| crate::error::toml_error(&path, &text, &e))
}

/// A bare TOML datetime as seconds since 1970-01-01 UTC; a local datetime (no offset) is UTC,
/// as the string forms are.
fn datetime_epoch(datetime: &toml::value::Datetime) -> std::result::Result<i64, String> {
    let Some(date) = datetime.date else {
        return Err("a time of day without a date; write a date such as 2025-01-01".to_string());
    };
    let mut seconds = crate::spec::calendar::days_from_civil(
        i64::from(date.year),
        u32::from(date.month),
        u32::from(date.day),
    ) * 86_400;
    if let Some(time) = datetime.time {
        seconds +=
            i64::from(time.hour) * 3600 + i64::from(time.minute) * 60 + i64::from(time.second);
    }
    if let Some(toml::value::Offset::Custom { minutes }) = datetime.offset {
        seconds -= i64::from(minutes) * 60;
    }
    Ok(seconds)
}

/// `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SSZ`, as seconds since 1970-01-01 UTC.
pub fn parse_epoch(text: &str) -> std::result::Result<i64, String> {
    let text = text.trim();
    let (date, time) = match text.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t.trim_end_matches('Z'))),
        None => (text, None),
    };
    let bad = || "expected \"YYYY-MM-DD\" or \"YYYY-MM-DDTHH:MM:SSZ\"".to_string();
    let parts: Vec<&str> = date.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return Err(bad());
    };
    let (y, m, d): (i64, u32, u32) = (
        y.parse().map_err(|_| bad())?,
        m.parse().map_err(|_| bad())?,
        d.parse().map_err(|_| bad())?,
    );
    let days = crate::spec::calendar::days_from_civil(y, m, d);
    // 2025-02-31 would silently become 2025-03-03: a date must name a day of its month.
    if !(1..=12).contains(&m) || crate::spec::calendar::civil_from_days(days) != (y, m, d) {
        return Err(format!("{date} is not a date of the calendar; {}", bad()));
    }
    let mut seconds = days * 86_400;
    if let Some(time) = time {
        let hms: Vec<i64> = time
            .split(':')
            .map(|p| p.parse::<i64>().map_err(|_| bad()))
            .collect::<std::result::Result<_, _>>()?;
        let [h, mi, s] = hms.as_slice() else {
            return Err(bad());
        };
        if !(0..24).contains(h) || !(0..60).contains(mi) || !(0..=60).contains(s) {
            return Err(format!("{time} is not a time of day; {}", bad()));
        }
        seconds += h * 3600 + mi * 60 + s;
    }
    Ok(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_toml_datetimes_are_epochs() {
        let raw: RawProfile = toml::from_str("seed = 1\nepoch = 2025-01-01T00:00:00Z").unwrap();
        let Some(Epoch::Datetime(d)) = raw.epoch else {
            panic!("a datetime")
        };
        assert_eq!(datetime_epoch(&d), Ok(1_735_689_600));
        let raw: RawProfile = toml::from_str("epoch = 2025-01-01").unwrap();
        let Some(Epoch::Datetime(d)) = raw.epoch else {
            panic!("a date")
        };
        assert_eq!(datetime_epoch(&d), Ok(1_735_689_600));
        let raw: RawProfile = toml::from_str("epoch = 2025-01-01T02:00:00+02:00").unwrap();
        let Some(Epoch::Datetime(d)) = raw.epoch else {
            panic!("a datetime")
        };
        assert_eq!(datetime_epoch(&d), Ok(1_735_689_600));
        let raw: RawProfile = toml::from_str("epoch = 07:00:00").unwrap();
        let Some(Epoch::Datetime(d)) = raw.epoch else {
            panic!("a time")
        };
        assert!(datetime_epoch(&d).is_err());
    }

    #[test]
    fn a_profile_key_under_per_is_named_not_an_untagged_enum() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("x.toml"),
            "epoch = \"2025-01-01\"\n[per]\npets = [1, 3]\nseed = 5\n",
        )
        .unwrap();
        let e = Profile::load(dir.path(), "x").unwrap_err().to_string();
        assert!(!e.contains("untagged"), "{e}");
        assert!(
            e.contains("per.seed = 5") && e.contains("profile key"),
            "{e}"
        );
    }

    #[test]
    fn epochs_parse_as_utc_seconds() {
        assert_eq!(parse_epoch("1970-01-01"), Ok(0));
        assert_eq!(parse_epoch("2025-01-01"), Ok(1_735_689_600));
        assert_eq!(
            parse_epoch("2025-01-01T01:02:03Z"),
            Ok(1_735_689_600 + 3723)
        );
        assert!(parse_epoch("2025-13-01").is_err());
        assert!(parse_epoch("2025-02-31").is_err());
        assert!(parse_epoch("2024-02-29").is_ok());
        assert!(parse_epoch("2025-01-01T25:00:00Z").is_err());
        assert!(parse_epoch("2025-01-01T23:59:60Z").is_ok());
        assert!(parse_epoch("yesterday").is_err());
    }
}
