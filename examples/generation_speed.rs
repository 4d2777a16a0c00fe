//! Generation speed without a database: every cell of a profile's rows as COPY text, on one
//! thread. `cargo run --release --example generation_speed -- [profile] [project dir]`
//! prints rows, seconds and rows/s (the figure issue 11 compares before and after).

use std::path::PathBuf;
use std::time::Instant;

use dbtool::profile::Profile;
use dbtool::spec::{Dataset, RowValues, Spec};

fn main() {
    let mut args = std::env::args().skip(1);
    let profile = args.next().unwrap_or_else(|| "bench".into());
    let dir = PathBuf::from(args.next().unwrap_or_else(|| ".".into()));
    let spec = Spec::load(&dir.join("seeds")).expect("the spec loads");
    let profile = Profile::load(&dir.join("profiles"), &profile).expect("the profile loads");
    let started = Instant::now();
    let data = Dataset::new(&spec, &profile, profile.seed).expect("the data set resolves");
    let setup = started.elapsed().as_secs_f64();
    let mut rows = 0u64;
    let mut bytes = 0usize;
    let verbose = std::env::var_os("VERBOSE").is_some();
    for table in 0..spec.tables.len() {
        let table_started = Instant::now();
        let rows_before = rows;
        let columns = spec.tables[table].columns.len();
        let mut index = 0;
        data.for_each_row(table, 0..data.root_count(table), &mut |mut row| {
            row.index = Some(index);
            index += 1;
            let mut values = RowValues::new(&data, table, row);
            for c in 0..columns {
                bytes += values.get(c)?.map_or(0, str::len);
            }
            rows += 1;
            Ok(())
        })
        .expect("generation");
        if verbose {
            println!(
                "  {:<20} {:>8} rows {:>6.2}s",
                spec.tables[table].name,
                rows - rows_before,
                table_started.elapsed().as_secs_f64()
            );
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}: {rows} rows, {bytes} bytes of text in {seconds:.2}s (setup {setup:.2}s): {:.0} rows/s",
        profile.name,
        rows as f64 / seconds
    );
}
