//! Generation alone, no database: every row of a profile through `RowValues` and the COPY
//! encoding into a buffer that is thrown away, as `seed::copy_chunk` would send it. For
//! `scripts/bench.sh` ("generation alone"):
//!
//!     cargo run --release --example generate -- --profile bench [--project DIR]
//!
//! prints `<profile>: <rows> rows, <bytes> bytes of COPY text in <s> s: <n> rows/s`.

use std::path::PathBuf;
use std::time::Instant;

use dbtool::copy::RowEncoder;
use dbtool::profile::Profile;
use dbtool::spec::{Dataset, RowValues, Spec};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut profile_name = "bench".to_string();
    let mut project = PathBuf::from(".");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--profile" => profile_name = args.next().ok_or("--profile needs a name")?,
            "--project" => project = args.next().ok_or("--project needs a directory")?.into(),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let spec = Spec::load(&project.join("seeds"))?;
    let profile = Profile::load(&project.join("profiles"), &profile_name)?;
    let data = Dataset::new(&spec, &profile, profile.seed)?;
    let started = Instant::now();
    let (mut rows, mut bytes) = (0u64, 0u64);
    let mut buffer = Vec::with_capacity(1 << 16);
    for table in 0..spec.tables.len() {
        let encoder = RowEncoder::text(spec.tables[table].columns.len());
        let mut index = 0;
        data.for_each_row(table, 0..data.root_count(table), &mut |mut row| {
            row.index = Some(index);
            index += 1;
            let mut values = RowValues::new(&data, table, row);
            encoder.row(&mut values, &mut buffer)?;
            rows += 1;
            if buffer.len() > 1 << 16 {
                bytes += buffer.len() as u64;
                buffer.clear();
            }
            Ok(())
        })?;
    }
    bytes += buffer.len() as u64;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{profile_name}: {rows} rows, {bytes} bytes of COPY text in {seconds:.3} s: {:.0} rows/s",
        rows as f64 / seconds
    );
    Ok(())
}
