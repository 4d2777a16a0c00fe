//! Names the commit dbtool was built from, for `dbtool --version`: `DBTOOL_COMMIT` when the
//! builder sets it (CI, a container build without .git), else git, else the sha1 that
//! `cargo package` wrote into `.cargo_vcs_info.json` (a crates.io install), else `unknown`.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=DBTOOL_COMMIT");
    println!("cargo:rerun-if-changed=.cargo_vcs_info.json");
    let commit = std::env::var("DBTOOL_COMMIT")
        .ok()
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .map(|c| c.chars().take(12).collect::<String>())
        .or_else(from_git)
        .or_else(from_vcs_info)
        .unwrap_or_else(|| "unknown".to_string());
    let version = std::env::var("CARGO_PKG_VERSION").expect("cargo sets it");
    println!("cargo:rustc-env=DBTOOL_COMMIT={commit}");
    println!("cargo:rustc-env=DBTOOL_LONG_VERSION={version} (commit {commit})");
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn from_git() -> Option<String> {
    // Only this project's own repository: a crate unpacked inside another checkout must not
    // take that checkout's commit.
    let top = git(&["rev-parse", "--show-toplevel"])?;
    let here = std::env::var("CARGO_MANIFEST_DIR").ok()?;
    if Path::new(&top).canonicalize().ok()? != Path::new(&here).canonicalize().ok()? {
        return None;
    }
    // Rebuild when HEAD moves: HEAD itself, the branch it points at, and packed refs.
    if let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]) {
        println!("cargo:rerun-if-changed={head}");
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"])
        && let Some(path) = git(&["rev-parse", "--git-path", &branch])
    {
        println!("cargo:rerun-if-changed={path}");
    }
    if let Some(packed) = git(&["rev-parse", "--git-path", "packed-refs"]) {
        println!("cargo:rerun-if-changed={packed}");
    }
    git(&["rev-parse", "--short=12", "HEAD"])
}

fn from_vcs_info() -> Option<String> {
    let text = std::fs::read_to_string(".cargo_vcs_info.json").ok()?;
    let at = text.find("\"sha1\"")?;
    let rest = &text[at + 6..];
    let start = rest.find('"')? + 1;
    let sha: String = rest[start..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .take(12)
        .collect();
    (!sha.is_empty()).then_some(sha)
}
