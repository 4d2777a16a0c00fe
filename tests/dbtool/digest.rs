//! Digest version 2 (src/load/digest.rs): what the client computes from the rows it generates equals
//! what the server computes from the rows it holds, so a reset can record it without a second
//! scan. And binary COPY (src/load/copy.rs) stores exactly what text COPY would.

use std::collections::BTreeMap;

use dbtool::load::catalog::table_columns;
use dbtool::load::digest::{RowText, generate, server_query};
use dbtool::spec::profile::Profile;
use dbtool::spec::{Dataset, Spec};

use crate::support::{ProjectCopy, TestDb, changes_nothing, project_dir};

type Digests = BTreeMap<String, (u64, String)>;

/// Per seeded table the client can digest (no jsonb, float or domain column, every value parsing
/// on the client), (rows, digest) from the rows the spec generates for `profile` and `seed`; the
/// server digests the others.
fn client_digests(
    db: &TestDb,
    project: &std::path::Path,
    profile: &str,
    seed: Option<u64>,
) -> Digests {
    let spec = Spec::load(&project.join("seeds")).expect("spec");
    let profile = Profile::load(&project.join("profiles"), profile).expect("profile");
    let data = Dataset::new(&spec, &profile, seed.unwrap_or(profile.seed)).expect("dataset");
    let mut client = db.client();
    let digests: Digests = spec
        .tables
        .iter()
        .enumerate()
        .filter_map(|(t, table)| {
            let catalog = table_columns(&mut client, "public", &table.name).expect("catalog");
            let text = RowText::new(&data, t, &catalog)?;
            let sum = generate(&data, t, &text).expect("generate")?;
            Some((table.name.clone(), (sum.rows, sum.hex())))
        })
        .collect();
    // The example's plain tables are the client's to digest.
    for table in ["services", "pets", "invoice_line_items", "grooming_visits"] {
        assert!(digests.contains_key(table), "the client digests {table}");
    }
    digests
}

fn server_digests(db: &TestDb, tables: impl Iterator<Item = String>) -> Digests {
    let mut client = db.client();
    tables
        .map(|table| {
            let row = client
                .query_one(&server_query("public", &table), &[])
                .expect("server digest");
            let rows: i64 = row.get(0);
            (table, (rows as u64, row.get(1)))
        })
        .collect()
}

fn assert_client_equals_server(
    db: &TestDb,
    project: &std::path::Path,
    profile: &str,
    seed: Option<u64>,
) -> Digests {
    let client = client_digests(db, project, profile, seed);
    let server = server_digests(db, client.keys().cloned());
    assert_eq!(client, server, "profile {profile}, seed {seed:?}");
    assert!(client.values().any(|(rows, _)| *rows > 0));
    client
}

#[test]
fn the_client_digest_equals_the_server_digest_for_dev_ci_and_another_seed() {
    let db = TestDb::new("digest");
    db.run(&["reset", "--yes", "--profile", "dev"]).success();
    let dev = assert_client_equals_server(&db, project_dir(), "dev", None);
    db.run(&["reset", "--yes", "--profile", "ci"]).success();
    let ci = assert_client_equals_server(&db, project_dir(), "ci", None);
    db.run(&["reset", "--yes", "--profile", "dev", "--seed", "43"])
        .success();
    let reseeded = assert_client_equals_server(&db, project_dir(), "dev", Some(43));
    // Staff are the four fixed rows of a CSV in every profile; the generated tables differ.
    for table in ["pets", "invoice_line_items", "grooming_visits"] {
        assert_ne!(ci[table], dev[table], "{table}: ci differs from dev");
        assert_ne!(
            reseeded[table], dev[table],
            "{table}: another seed, other rows"
        );
    }
    // Any changed cell moves the server's digest away from the client's.
    db.client()
        .execute(
            "UPDATE pets SET name = name || ' ' WHERE ctid = (SELECT min(ctid) FROM pets)",
            &[],
        )
        .unwrap();
    let after = server_digests(&db, ["pets".to_string()].into_iter());
    assert_ne!(after["pets"], reseeded["pets"]);
}

/// The fingerprint a reset records from the rows it sent (no second scan) is the one the server
/// computes afterwards, and a table the spec does not seed is digested by the server.
#[test]
fn a_reset_records_the_fingerprint_the_server_computes() {
    let db = TestDb::new("recorded");
    let project = ProjectCopy::new();
    project.write(
        "migrations/V90__audit.sql",
        "CREATE TABLE audit (id int PRIMARY KEY, note text);\n\
         INSERT INTO audit VALUES (1, 'from a migration'), (2, NULL);\n",
    );
    for (profile, seed) in [("dev", "42"), ("ci", "7"), ("dev", "43")] {
        let run = db.run_in(
            &project,
            &["reset", "--yes", "--profile", profile, "--seed", seed],
        );
        run.success();
        let recorded = db
            .text("SELECT value->>'fingerprint' FROM dbtool.meta WHERE key = 'last_reset:public'");
        let fingerprint = db.fingerprint();
        assert_eq!(
            recorded,
            fingerprint["overall"].as_str().unwrap(),
            "{profile} {seed}"
        );
        assert!(
            fingerprint["tables"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["table"] == "audit" && t["rows"] == 2)
        );
    }
}

#[test]
fn binary_copy_stores_what_text_copy_would_and_odd_input_falls_back_to_text() {
    let db = TestDb::new("binary_copy");
    let project = ProjectCopy::new();
    let spec = std::fs::read_to_string(project.path("seeds/seed.toml")).unwrap();
    // Columns of their own, so that no expression of the example depends on them.
    project.write(
        "migrations/V90__odd_values.sql",
        "ALTER TABLE pets ADD COLUMN seen_at timestamptz;\n\
         ALTER TABLE services ADD COLUMN slots integer;\n",
    );
    let edits = [
        // Rounded and padded to numeric(5, 2) by the server's rules.
        (
            r#"weight_kg  = { gen = "decimal", min = 1.5, max = 45, scale = 2, null = 0.05 }"#,
            r#"weight_kg  = { gen = "choice", values = ["1.005", "15", "7.5", "099.994"] }
seen_at    = { gen = "choice", values = ["2025-01-01T03:02:03.25+02:00", "2024-02-29 23:59:59Z", "2024-07-01 12:00"] }"#,
        ),
        // A leading space: the server reads it, the client does not, so services goes text.
        (
            r#"price            = { gen = "decimal", min = 15, max = 120, scale = 2 }"#,
            r#"price            = { gen = "decimal", min = 15, max = 120, scale = 2 }
slots            = { gen = "choice", values = ["30", " 45"] }"#,
        ),
        // Quotes, commas, parentheses, backslashes and tabs in text.
        (
            r#"notes     = { gen = "pick", file = "data/notes.txt", null = 0.85 }"#,
            r#"notes     = { gen = "choice", values = ["say \"hi\", (ok)", "back\\slash\ttab", ""] }"#,
        ),
    ];
    let mut edited = spec.clone();
    for (from, to) in edits {
        assert!(edited.contains(from), "the spec has {from}");
        edited = edited.replacen(from, to, 1);
    }
    project.write("seeds/seed.toml", &edited);
    db.run_in(&project, &["reset", "--yes", "--profile", "ci"])
        .success();
    let mismatches = |sql: &str| db.scalar(sql);
    assert_eq!(
        mismatches(
            "SELECT count(*) FROM pets WHERE weight_kg NOT IN ('1.005'::numeric(5,2), '15'::numeric(5,2), '7.5'::numeric(5,2), '099.994'::numeric(5,2))"
        ),
        0
    );
    assert_eq!(
        mismatches(
            "SELECT count(*) FROM pets WHERE weight_kg::text NOT IN ('1.01', '15.00', '7.50', '99.99')"
        ),
        0
    );
    assert_eq!(
        mismatches(
            "SELECT count(*) FROM pets WHERE seen_at NOT IN ('2025-01-01T03:02:03.25+02:00'::timestamptz, '2024-02-29 23:59:59Z'::timestamptz, '2024-07-01 12:00+00'::timestamptz)"
        ),
        0
    );
    assert_eq!(
        mismatches("SELECT count(*) FROM services WHERE slots NOT IN (30, 45)"),
        0
    );
    assert_eq!(
        mismatches(
            "SELECT count(*) FROM invoices WHERE notes IS NOT NULL AND notes NOT IN ('say \"hi\", (ok)', E'back\\\\slash\\ttab', '')"
        ),
        0
    );
    assert!(mismatches("SELECT count(DISTINCT notes) FROM invoices") >= 2);
    // The client's digest of these rows is the server's too (services' odd integer aside,
    // every value parses on the client).
    let client = client_digests_except(&db, project.dir.path(), "ci", "services");
    let server = server_digests(&db, client.keys().cloned());
    assert_eq!(client, server);
}

fn client_digests_except(
    db: &TestDb,
    project: &std::path::Path,
    profile: &str,
    skip: &str,
) -> Digests {
    let spec = Spec::load(&project.join("seeds")).expect("spec");
    let profile = Profile::load(&project.join("profiles"), profile).expect("profile");
    let data = Dataset::new(&spec, &profile, profile.seed).expect("dataset");
    let mut client = db.client();
    let mut out = Digests::new();
    for (t, table) in spec.tables.iter().enumerate() {
        let catalog = table_columns(&mut client, "public", &table.name).expect("catalog");
        // A jsonb, float or domain column: the server's to digest.
        let Some(text) = RowText::new(&data, t, &catalog) else {
            continue;
        };
        let sum = generate(&data, t, &text).expect("generate");
        if table.name == skip {
            assert!(
                sum.is_none(),
                "{skip}: a value the client cannot read is left to the server"
            );
            continue;
        }
        // A computed value that does not parse on the client: the server's too.
        if let Some(sum) = sum {
            out.insert(table.name.clone(), (sum.rows, sum.hex()));
        }
    }
    assert!(out.contains_key("pets"), "the client digests pets");
    out
}

#[test]
fn computed_values_reach_typed_columns_exactly_and_one_out_of_range_fails_naming_its_column() {
    let db = TestDb::new("computed_binary");
    let project = ProjectCopy::new();
    let spec = std::fs::read_to_string(project.path("seeds/seed.toml")).unwrap();
    project.write(
        "migrations/V90__computed.sql",
        "ALTER TABLE pets ADD COLUMN third numeric(8, 2), ADD COLUMN next_day timestamp,
                         ADD COLUMN tomorrow timestamptz, ADD COLUMN two_days_ago date,
                         ADD COLUMN ordinal_kg numeric;
         ALTER TABLE services ADD COLUMN from_text integer, ADD COLUMN big smallint;\n",
    );
    let pets = r#"weight_kg  = { gen = "decimal", min = 1.5, max = 45, scale = 2, null = 0.05 }"#;
    let services = r#"price            = { gen = "decimal", min = 15, max = 120, scale = 2 }"#;
    let with = |big: &str| {
        spec.replacen(
            pets,
            &format!(
                "{pets}
third        = {{ expr = \"weight_kg / 3\" }}
next_day     = {{ expr = \"birth_date + days(1)\" }}
tomorrow     = {{ expr = \"now + days(1)\" }}
two_days_ago = {{ expr = \"date(now) - days(2)\" }}
ordinal_kg   = {{ expr = \"weight_kg * 2 + 1\" }}"
            ),
            1,
        )
        .replacen(
            services,
            &format!(
                "{services}
from_text        = {{ expr = \"'4' + id\" }}
big              = {{ expr = \"id * {big}\" }}"
            ),
            1,
        )
    };
    project.write("seeds/seed.toml", &with("1000"));
    db.run_in(&project, &["reset", "--yes", "--profile", "ci"])
        .success();
    let wrong = |sql: &str| db.scalar(sql);
    // Decimals rounded to the column's scale as the server rounds text; dates and timestamps
    // from the profile's epoch; numeric text beside a number is a number.
    assert_eq!(
        wrong(
            "SELECT count(*) FROM pets WHERE third IS DISTINCT FROM round(weight_kg / 3, 2)
                OR next_day IS DISTINCT FROM (birth_date + 1)::timestamp
                OR tomorrow <> timestamptz '2025-01-02 00:00:00+00'
                OR two_days_ago <> date '2024-12-30'
                OR ordinal_kg IS DISTINCT FROM weight_kg * 2 + 1
                OR ordinal_kg::text IS DISTINCT FROM (weight_kg * 2 + 1)::text"
        ),
        0
    );
    assert!(wrong("SELECT count(*) FROM pets WHERE third IS NOT NULL") > 0);
    assert_eq!(
        wrong("SELECT count(*) FROM services WHERE from_text <> 4 + id OR big <> id * 1000"),
        0
    );
    // The digest the reset recorded, computed from the typed values, is the server's.
    let recorded =
        db.text("SELECT value->>'fingerprint' FROM dbtool.meta WHERE key = 'last_reset:public'");
    assert_eq!(recorded, db.overall_fingerprint());

    // 10 * 10000 does not fit a smallint: the load fails naming the column, and nothing changes.
    project.write("seeds/seed.toml", &with("10000"));
    let stderr = changes_nothing(&db, 7, || {
        db.run_in(&project, &["reset", "--yes", "--profile", "ci"])
    });
    assert!(stderr.contains("big"), "{stderr}");
    assert!(
        stderr.contains("100000") || stderr.contains("out of range"),
        "{stderr}"
    );
}

#[test]
fn a_seeded_table_holding_rows_from_the_migrations_is_fingerprinted_whole() {
    // The client digests only the rows it sends: a table that held rows already is the server's
    // to digest, or the recorded fingerprint would differ from `dbtool fingerprint`.
    let db = TestDb::new("digest_migration_rows");
    let project = ProjectCopy::new();
    project.write(
        "migrations/V90__house_call.sql",
        "INSERT INTO services (id, name, duration_minutes, price) VALUES (1000, 'House Call', 120, 99);",
    );
    for path in ["cold path", "warm path"] {
        db.run_in(&project, &["reset", "--yes", "--profile", "dev"])
            .success()
            .stderr_has(path);
        assert_eq!(db.scalar("SELECT count(*) FROM services"), 11);
        assert_eq!(
            db.status()["last_reset"]["fingerprint"],
            db.fingerprint()["overall"],
            "{path}"
        );
    }
}

#[test]
fn a_seeded_table_a_trigger_elsewhere_inserts_into_is_fingerprinted_whole() {
    // A trigger on clients writes to services, which the client loads (and digests) before
    // them: the rows the trigger adds are the server's to digest.
    let db = TestDb::new("digest_trigger_elsewhere");
    let project = ProjectCopy::new();
    project.write(
        "migrations/V90__client_welcome.sql",
        "CREATE FUNCTION welcome_service() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             INSERT INTO services (id, name, duration_minutes, price)
             VALUES (1000 + NEW.id, 'Welcome ' || NEW.id, 15, 0);
             RETURN NEW;
         END $$;
         CREATE TRIGGER clients_welcome AFTER INSERT ON clients
             FOR EACH ROW EXECUTE FUNCTION welcome_service();",
    );
    for path in ["cold path", "warm path"] {
        db.run_in(&project, &["reset", "--yes", "--profile", "dev"])
            .success()
            .stderr_has(path);
        assert_eq!(db.scalar("SELECT count(*) FROM services"), 110);
        assert_eq!(
            db.status()["last_reset"]["fingerprint"],
            db.fingerprint()["overall"],
            "{path}"
        );
    }
}
