//! Generation alone, no database: every row of a profile through `RowValues` and the COPY
//! encoding into a buffer that is thrown away, as `seed::copy_chunk` would send it. For
//! `scripts/bench.sh` ("generation alone"):
//!
//!     cargo run --release --example generate -- --profile bench [--project DIR]
//!         [--types-from DATABASE_URL [--binary] [--digest]] [--by-table] [--table NAME]
//!         [--threads N]
//!
//! prints `<profile>: <rows> rows, <bytes> bytes of COPY in <s> s: <n> rows/s`. With
//! `--threads N` the rows are generated as an atomic reset generates them (chunk by chunk, each
//! chunk's parts on N threads, written in key order) and the line ends with the md5 of every
//! byte of COPY and the tables' digests: equal on any N when threads do not change the data. With
//! `--types-from` (a database the project's migrations ran in) it reads the columns' types
//! from there, once, to measure binary COPY encoding (`--binary`) and the client's digest
//! (`--digest`) too. `--by-table` prints each table's rows and seconds to stderr; `--table` generates one table only.

use std::path::PathBuf;
use std::time::Instant;

use dbtool::load::catalog::table_columns;
use dbtool::load::copy::{RowEncoder, spec_column_types};
use dbtool::load::digest::{Digester, Fields, RowText, Sum};
use dbtool::load::generate_in_order;
use dbtool::plan::SeedPlan;
use dbtool::spec::RowValues;
use dbtool::spec::profile::Profile;
use dbtool::spec::{Dataset, Spec};
use md5::{Digest, Md5};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut profile_name = "bench".to_string();
    let mut project = PathBuf::from(".");
    let (mut types_from, mut binary, mut digest, mut by_table) = (None, false, false, false);
    let mut only: Option<String> = None;
    let mut threads: Option<usize> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--profile" => profile_name = args.next().ok_or("--profile needs a name")?,
            "--project" => project = args.next().ok_or("--project needs a directory")?.into(),
            "--types-from" => types_from = Some(args.next().ok_or("--types-from needs a URL")?),
            "--binary" => binary = true,
            "--digest" => digest = true,
            "--by-table" => by_table = true,
            "--table" => only = Some(args.next().ok_or("--table needs a name")?),
            "--threads" => {
                let n = args.next().ok_or("--threads needs a number")?;
                threads = Some(n.parse().map_err(|_| "--threads needs a number")?);
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let spec = Spec::load(&project.join("seeds"))?;
    let profile = Profile::load(&project.join("profiles"), &profile_name)?;
    let data = Dataset::new(&spec, &profile, profile.seed)?;
    let mut catalog = vec![Vec::new(); spec.tables.len()];
    if let Some(url) = &types_from {
        let mut client = postgres::Client::connect(url, postgres::NoTls)?;
        for (table, columns) in spec.tables.iter().zip(&mut catalog) {
            *columns = table_columns(&mut client, "public", &table.name)?;
        }
    } else if binary || digest {
        return Err("--binary and --digest need --types-from".into());
    }
    if let Some(threads) = threads {
        return in_order(&data, &profile_name, &catalog, binary, digest, threads);
    }
    let started = Instant::now();
    let (mut rows, mut bytes) = (0u64, 0u64);
    let mut buffer = Vec::with_capacity(1 << 16);
    let mut text = Vec::new();
    for (table, columns) in catalog.iter().enumerate() {
        if only
            .as_ref()
            .is_some_and(|name| *name != spec.tables[table].name)
        {
            continue;
        }
        let encoder = if binary {
            let types = spec_column_types(&data, table, columns);
            RowEncoder::for_table(&data, table, types, "public", false)
        } else {
            RowEncoder::text(spec.tables[table].columns.len())
        };
        let row_text = if digest {
            // A table the client cannot digest is digested by the server, as in a reset.
            RowText::new(&data, table, columns)
        } else {
            None
        };
        let mut digester = Digester::default();
        let mut index = 0;
        let table_started = Instant::now();
        encoder.begin(&mut buffer);
        let mut fields = Fields::new(spec.tables[table].columns.len());
        data.for_each_row_values(table, 0..data.root_count(table), 0, &mut |values| {
            index += 1;
            let digest = row_text
                .as_ref()
                .map(|rt| (rt, &mut fields, &mut text, &mut digester));
            send_row(&encoder, digest, values, &mut buffer)?;
            rows += 1;
            if buffer.len() > 1 << 16 {
                bytes += buffer.len() as u64;
                buffer.clear();
            }
            Ok(())
        })?;
        encoder.end(&mut buffer);
        // The rows still waiting to be hashed in lanes count in the time.
        digester.finish();
        if by_table {
            eprintln!(
                "  {}: {index} rows in {:.3} s",
                spec.tables[table].name,
                table_started.elapsed().as_secs_f64()
            );
        }
    }
    bytes += buffer.len() as u64;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{profile_name}: {rows} rows, {bytes} bytes of COPY in {seconds:.3} s: {:.0} rows/s",
        rows as f64 / seconds
    );
    Ok(())
}

/// `--threads`: every table's chunks as an atomic reset makes them, each generated on `threads`
/// threads into buffers written in key order; the bytes go into one md5.
fn in_order(
    data: &Dataset,
    profile_name: &str,
    catalog: &[Vec<(String, dbtool::load::copy::ColumnType)>],
    binary: bool,
    digest: bool,
    threads: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let plan = SeedPlan::new(data, profile_name);
    let started = Instant::now();
    let (mut rows, mut bytes) = (0u64, 0u64);
    let mut stream = Md5::new();
    let mut digests = Md5::new();
    for load in &plan.tables {
        let table = load.index;
        let encoder = if binary {
            let types = spec_column_types(data, table, &catalog[table]);
            RowEncoder::for_table(data, table, types, "public", false)
        } else {
            RowEncoder::text(data.spec.tables[table].columns.len())
        };
        let row_text = if digest {
            RowText::new(data, table, &catalog[table])
        } else {
            None
        };
        let mut table_sum = Sum::default();
        for chunk in &load.chunks {
            let (written, produced) = generate_in_order(
                data,
                table,
                chunk,
                threads,
                |roots, first_index, (first, last), full| {
                    let (mut digester, mut text) = (Digester::default(), Vec::new());
                    let mut fields = Fields::new(data.spec.tables[table].columns.len());
                    let mut buffer = Vec::with_capacity(1 << 16);
                    if first {
                        encoder.begin(&mut buffer);
                    }
                    data.for_each_row_values(table, roots, first_index, &mut |values| {
                        let digest = row_text
                            .as_ref()
                            .map(|rt| (rt, &mut fields, &mut text, &mut digester));
                        send_row(&encoder, digest, values, &mut buffer)?;
                        if buffer.len() >= 1 << 16 {
                            let next = Vec::with_capacity(1 << 16);
                            let _ = full.send(std::mem::replace(&mut buffer, next));
                        }
                        Ok(())
                    })?;
                    if last {
                        encoder.end(&mut buffer);
                    }
                    let _ = full.send(buffer);
                    Ok(digester.finish())
                },
                |buffer| {
                    bytes += buffer.len() as u64;
                    stream.update(&buffer);
                    Ok(())
                },
            );
            written?;
            for sum in produced {
                table_sum.merge(sum?);
            }
            rows += chunk.rows;
        }
        digests.update(format!(
            "{} {} {}\n",
            load.table,
            table_sum.rows,
            table_sum.hex()
        ));
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{profile_name}: {rows} rows, {bytes} bytes of COPY in {seconds:.3} s: {:.0} rows/s on {threads} threads; COPY md5 {}, digests md5 {}",
        rows as f64 / seconds,
        hex(&stream.finalize()),
        hex(&digests.finalize())
    );
    Ok(())
}

/// One row encoded into `out` and digested as a reset does it: a binary COPY's digest from the
/// values it sends, a text COPY's from the row read again.
fn send_row(
    encoder: &RowEncoder,
    digest: Option<(&RowText, &mut Fields, &mut Vec<u8>, &mut Digester)>,
    values: &mut RowValues,
    out: &mut Vec<u8>,
) -> dbtool::error::Result<()> {
    match digest {
        Some((rt, fields, text, digester)) if encoder.is_binary() => {
            fields.clear();
            encoder.row_seen(values, out, &mut |c, ty, v| fields.push(c, ty, v))?;
            rt.add_fields(fields, text, digester);
        }
        Some((rt, _, text, digester)) => {
            rt.add(values, text, digester)?;
            encoder.row(values, out)?;
        }
        None => encoder.row(values, out)?,
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
