//! dbtool's integration tests: the real binary against a real PostgreSQL
//! (TEST_DATABASE_URL; scripts/test.sh starts a throwaway server). Every test gets its own
//! database, so the tests run in parallel.

mod connect;
mod digest;
mod faults;
mod lock;
mod migrate;
mod operator;
mod reset;
mod seed_contract;
mod support;
