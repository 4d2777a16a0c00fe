//! dbtool's integration tests: the real binary against a real PostgreSQL
//! (TEST_DATABASE_URL; scripts/test.sh starts a throwaway server). Every test gets its own
//! database, so the tests run in parallel.

mod atomic;
mod citus;
mod connect;
mod digest;
mod faults;
mod first_reset;
mod formats;
mod init;
mod load_keys;
mod lock;
mod migrate;
mod mistakes;
mod operator;
mod quickstart;
mod real_migrations;
mod reset;
mod roles;
mod schemas;
mod seed_code;
mod seed_contract;
mod seed_language;
mod servers;
mod support;
mod tls;
mod warm;
