//! The project files a command reads (seed spec, data files, profiles, migrations, SQL seeds),
//! each remembered with a digest of the bytes that were read. The change digests that
//! `dbtool.meta` records (and `--skip-if-reset-within` compares) come from those bytes, never from
//! a second read: a file edited while a reset runs cannot be recorded as what the reset used.

use std::path::{Path, PathBuf};

use crate::config::fnv1a64;

/// Files in the order they were read, each with an FNV-1a digest of its bytes.
#[derive(Debug, Clone, Default)]
pub struct ReadFiles(Vec<(PathBuf, u64)>);

impl ReadFiles {
    /// Reads `path` as text and remembers what was read.
    pub fn read_to_string(&mut self, path: &Path) -> std::io::Result<String> {
        String::from_utf8(self.read(path)?)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    /// Reads `path` as bytes and remembers what was read.
    pub fn read(&mut self, path: &Path) -> std::io::Result<Vec<u8>> {
        let bytes = std::fs::read(path)?;
        self.0.push((path.to_path_buf(), fnv1a64(&bytes)));
        Ok(bytes)
    }

    /// Remembers text that was not read from a file (an inferred spec) under a name of its own.
    pub fn remember(&mut self, name: &Path, bytes: &[u8]) {
        self.0.push((name.to_path_buf(), fnv1a64(bytes)));
    }

    pub fn extend(&mut self, other: &ReadFiles) {
        self.0.extend(other.0.iter().cloned());
    }

    /// The files' names and contents, as one digest.
    pub fn digest(&self) -> u64 {
        let mut all = Vec::new();
        for (path, content) in &self.0 {
            all.extend_from_slice(path.to_string_lossy().as_bytes());
            all.push(0);
            all.extend_from_slice(&content.to_le_bytes());
        }
        fnv1a64(&all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_of_the_bytes_read_not_of_the_file_as_it_is_later() {
        let dir = std::env::temp_dir().join(format!("dbtool-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("V1__a.sql");
        std::fs::write(&path, "create table a (id int);").unwrap();
        let mut read = ReadFiles::default();
        read.read_to_string(&path).unwrap();
        let before = read.digest();
        std::fs::write(&path, "create table b (id int);").unwrap();
        assert_eq!(read.digest(), before, "the digest read the file again");
        let mut again = ReadFiles::default();
        again.read(&path).unwrap();
        assert_ne!(
            again.digest(),
            before,
            "a changed file must change the digest"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
