//! What dbtool records and reports about a database: `dbtool.meta`, fingerprints, status.

pub mod fingerprint;
pub mod meta;
pub mod status;
pub mod warm;
