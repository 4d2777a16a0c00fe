//! `dbtool profiles`: every profile with its exact row counts, without a database.

use serde_json::json;

use super::print_result;
use crate::config::Config;
use crate::error::{self, Error, Result};
use crate::load::fit;
use crate::plan::SeedPlan;
use crate::progress::Reporter;
use crate::spec::profile::Profile;
use crate::spec::{Dataset, Spec};

/// Lists every profile that loads; one that does not is named on stderr (exit 2 at the end)
/// rather than hiding the others.
pub fn run(config: &Config, json: bool, reporter: &Reporter) -> Result<()> {
    let spec = Spec::load(&config.paths.seeds)?;
    let mut listed = Vec::new();
    let mut broken = Vec::new();
    for (name, loaded) in Profile::load_each(&config.paths.profiles)? {
        let planned = loaded.and_then(|profile| {
            fit::check_counts(&spec, &profile)?;
            let plan = SeedPlan::new(&Dataset::new(&spec, &profile, profile.seed)?, &profile.name);
            Ok((profile, plan))
        });
        match planned {
            Ok(listed_profile) => listed.push(listed_profile),
            Err(e) => {
                reporter.warn(
                    "profile-broken",
                    format!(
                        "profile {name} is not listed: {}",
                        error::headline(&e.to_string()).0
                    ),
                    json!({ "profile": name }),
                );
                broken.push(name);
            }
        }
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
    if broken.is_empty() {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "{} of {} profiles could not be loaded ({}); the others are listed on stdout",
            broken.len(),
            broken.len() + listed.len(),
            broken.join(", ")
        )))
    }
}
