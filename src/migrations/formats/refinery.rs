//! refinery's own layout, dbtool's native one: `V{n}__{name}.sql`, flat. refinery's history is
//! dbtool's own record, so there is no other history to keep.

use super::{Format, Listing, Source, Tool, Versioned};
use crate::error::{Error, Result};
use crate::files::ReadFiles;

pub struct Refinery;

impl Tool for Refinery {
    fn format(&self) -> Format {
        Format::Refinery
    }

    fn evidence(&self, listing: &Listing) -> Vec<String> {
        listing
            .sql
            .iter()
            .filter(|n| {
                n.strip_suffix(".sql")
                    .is_some_and(|s| check_name(s).is_ok())
            })
            .cloned()
            .collect()
    }

    fn read(&self, listing: &Listing, files: &mut ReadFiles) -> Result<Vec<Source>> {
        let mut sources = Versioned::<i32>::new(listing);
        for file in &listing.sql {
            let path = listing.path(file);
            let stem = file.trim_end_matches(".sql");
            check_name(stem).map_err(|why| Error::usage(format!("{}: {why}", path.display())))?;
            let (version, name) = stem[1..].split_once("__").expect("checked");
            let version: i32 = version.parse().expect("checked");
            sources.check_free(version, stem)?;
            let text = listing.read_file(files, &path)?;
            if let Some(tool) = [
                (super::goose::is_goose(&text), "goose (-- +goose Up / Down)"),
                (
                    super::dbmate::is_dbmate(&text),
                    "dbmate (-- migrate:up / down)",
                ),
            ]
            .iter()
            .find_map(|(is, tool)| is.then_some(tool))
            {
                return Err(Error::usage(format!(
                    "{}: a migration with up and down sections, as {tool} writes them: read as a \
                     refinery file it would run both, and the down section undoes the up. Keep \
                     the tool's own file names and read the folder with its --migrations-format",
                    path.display()
                )));
            }
            sources.push(
                version,
                Source::whole(
                    stem.to_string(),
                    Some(version.to_string()),
                    name.to_string(),
                    path,
                    text,
                ),
            );
        }
        Ok(sources.in_order())
    }
}

const NAMING: &str = "a migration file must be named V{version}__{name}.sql, with a whole-number \
                      version and a name of letters, digits and underscores (or written by one of \
                      the tools --migrations-format names)";

/// `V12__add_pets`: `V`, a whole number refinery can store (its history keeps an i32), two
/// underscores, a word.
///
/// `U{n}__*.sql` files are refused rather than applied: refinery reads `U` as "unversioned" and
/// would run the file as one more forward migration, while tools such as Flyway use `U` for undo
/// migrations, the opposite of what the file says. dbtool has no undo: a reset replaces the schema.
pub fn check_name(stem: &str) -> std::result::Result<(), String> {
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
             (refinery keeps them as a 32-bit integer; a tool with timestamp versions is read \
             with its own --migrations-format)",
            i32::MAX
        ));
    }
    if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return Err(NAMING.to_string());
    }
    Ok(())
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
}
