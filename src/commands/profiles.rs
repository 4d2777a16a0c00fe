//! `dbtool profiles`: every profile with its exact row counts, without a database.

use serde_json::json;

use super::print_result;
use crate::config::Config;
use crate::error::Result;
use crate::plan::SeedPlan;
use crate::profile::Profile;
use crate::spec::{Dataset, Spec};

pub fn run(config: &Config, json: bool) -> Result<()> {
    let spec = Spec::load(&config.paths.seeds)?;
    let mut listed = Vec::new();
    for profile in Profile::load_all(&config.paths.profiles)? {
        let plan = SeedPlan::new(&Dataset::new(&spec, &profile, profile.seed)?, &profile.name);
        listed.push((profile, plan));
    }
    let as_json: Vec<_> = listed
        .iter()
        .map(|(profile, plan)| {
            json!({
                "name": profile.name,
                "description": profile.description,
                "seed": profile.seed,
                "total_rows": plan.total_rows(),
                "tables": plan.tables.iter().map(|t| (t.table.clone(), json!(t.rows))).collect::<serde_json::Map<_, _>>(),
            })
        })
        .collect();
    print_result(json, &as_json, || {
        let mut out = String::new();
        for (profile, plan) in &listed {
            out.push_str(&format!(
                "{} (seed {}, {} rows): {}\n",
                profile.name,
                profile.seed,
                plan.total_rows(),
                profile.description
            ));
            for t in &plan.tables {
                out.push_str(&format!("  {:<24} {:>10}\n", t.table, t.rows));
            }
        }
        out
    });
    Ok(())
}
