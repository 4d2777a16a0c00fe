//! The seed language (issue 11): every invariant the example spec declares holds on every row,
//! checked by SQL over whole tables; every new construct's mistakes are refused before any
//! connection (exit 2), naming the file, table and column.

use crate::support::{ProjectCopy, Run, TestDb};

/// Each query counts the rows that break one invariant: all must be 0.
const VIOLATIONS: &[(&str, &str)] = &[
    (
        "a visit's end is its start plus its service's duration",
        "SELECT count(*) FROM grooming_visits v JOIN services s ON s.id = v.service_id
         WHERE v.ends_at IS DISTINCT FROM v.scheduled_at + s.duration_minutes * interval '1 minute'",
    ),
    (
        "future visits are scheduled, past ones completed or cancelled",
        "SELECT count(*) FROM grooming_visits
         WHERE (status = 'scheduled') <> (scheduled_at > timestamptz '2025-01-01 00:00:00+00')",
    ),
    (
        "cancelled_at is set exactly when the visit is cancelled",
        "SELECT count(*) FROM grooming_visits
         WHERE (cancelled_at IS NOT NULL) <> (status = 'cancelled') OR cancelled_at >= scheduled_at",
    ),
    (
        "a visit's pet belongs to the visit's client (a ref within an ancestor)",
        "SELECT count(*) FROM grooming_visits v LEFT JOIN pets p ON p.id = v.pet_id
         WHERE p.client_id IS DISTINCT FROM v.client_id",
    ),
    (
        "invoices only for completed visits, with the visit's client and end",
        "SELECT count(*) FROM invoices i LEFT JOIN grooming_visits v ON v.id = i.visit_id
         WHERE v.status IS DISTINCT FROM 'completed' OR i.client_id IS DISTINCT FROM v.client_id
            OR i.issued_at IS DISTINCT FROM v.ends_at",
    ),
    (
        "a line is priced and named from its service",
        "SELECT count(*) FROM invoice_line_items l JOIN services s ON s.id = l.service_id
         WHERE l.unit_price <> s.price OR l.description IS DISTINCT FROM s.name",
    ),
    (
        "an invoice's first line is its visit's service (line -> invoice -> visit -> service)",
        "SELECT count(*) FROM invoice_line_items l JOIN invoices i ON i.id = l.invoice_id
         JOIN grooming_visits v ON v.id = i.visit_id WHERE l.line_no = 1 AND l.service_id <> v.service_id",
    ),
    (
        "subtotal is the sum of the lines, tax 8% of it, total subtotal + tax + tip",
        "SELECT count(*) FROM invoices i
         LEFT JOIN (SELECT invoice_id, sum(quantity * unit_price) s FROM invoice_line_items GROUP BY 1) l
                ON l.invoice_id = i.id
         LEFT JOIN (SELECT invoice_id, sum(amount) t FROM tip_splits GROUP BY 1) t ON t.invoice_id = i.id
         WHERE i.subtotal <> coalesce(l.s, 0) OR i.tax <> round(i.subtotal * 0.08, 2)
            OR i.tip <> coalesce(t.t, 0) OR i.total <> i.subtotal + i.tax + i.tip",
    ),
    (
        "tip splits only on paid invoices",
        "SELECT count(*) FROM tip_splits t JOIN invoices i ON i.id = t.invoice_id WHERE i.status <> 'paid'",
    ),
    (
        "a tip split names its groomer, the first one the visit's groomer",
        "SELECT count(*) FROM tip_splits t JOIN staff s ON s.id = t.groomer_id
         JOIN invoices i ON i.id = t.invoice_id JOIN grooming_visits v ON v.id = i.visit_id
         WHERE s.role <> 'groomer' OR t.groomer_name <> s.first_name || ' ' || s.last_name
            OR (t.split_no = 1 AND t.groomer_id <> v.groomer_id)",
    ),
    (
        "paid_at and payment_method are set exactly when the invoice is paid",
        "SELECT count(*) FROM invoices WHERE (paid_at IS NOT NULL) <> (status = 'paid')
            OR (payment_method IS NOT NULL) <> (status = 'paid') OR paid_at < issued_at",
    ),
    (
        "1 to 3 pets per client",
        "SELECT count(*) FROM clients c
         WHERE (SELECT count(*) FROM pets p WHERE p.client_id = c.id) NOT BETWEEN 1 AND 3",
    ),
    (
        "client emails are unique",
        "SELECT count(*) - count(DISTINCT email) FROM clients",
    ),
    (
        "a client's email is built from the name and a number, not the row id",
        "SELECT count(*) FROM clients WHERE email !~ ('^' || lower(first_name) || '\\.' || lower(last_name) || '[0-9]{1,2}@example\\.com$')",
    ),
    (
        "city, region and postal code come from one row of places.csv",
        "SELECT count(*) FROM (SELECT city FROM clients GROUP BY city
                               HAVING count(DISTINCT (region, postal_code)) > 1) x",
    ),
    (
        "preferences is a jsonb object built from the row",
        "SELECT count(*) FROM clients WHERE preferences->'home'->>'city' IS DISTINCT FROM city
            OR jsonb_typeof(preferences->'newsletter') <> 'boolean'",
    ),
];

/// Each query counts rows that show a construct at work: all must be above 0, so the checks
/// above are not vacuous.
const PRESENT: &[&str] = &[
    "SELECT count(*) FROM tip_splits",
    "SELECT count(*) FROM grooming_visits WHERE status = 'cancelled'",
    "SELECT count(*) FROM grooming_visits WHERE status = 'scheduled'",
    "SELECT count(*) FROM invoices WHERE status = 'paid' AND tip > 0",
    "SELECT count(*) FROM invoices WHERE status = 'paid' AND tip = 0",
    "SELECT count(*) FROM invoice_line_items WHERE line_no > 1",
];

#[test]
fn every_invariant_of_the_example_holds_on_every_row_of_dev_and_demo() {
    for profile in ["dev", "demo"] {
        let db = TestDb::new(&format!("language_{profile}"));
        db.run(&["reset", "--yes", "--profile", profile]).success();
        for (what, sql) in VIOLATIONS {
            assert_eq!(db.scalar(sql), 0, "{profile}: {what}");
        }
        for sql in PRESENT {
            assert!(db.scalar(sql) > 0, "{profile}: {sql}");
        }
    }
}

#[test]
fn pets_per_client_follow_their_weights() {
    let db = TestDb::new("language_weights");
    db.run(&["reset", "--yes", "--profile", "demo"]).success();
    let share = |n: i64| {
        db.scalar(&format!(
            "SELECT (1000 * count(*) FILTER (WHERE n = {n}) / count(*))::bigint
             FROM (SELECT count(*) n FROM pets GROUP BY client_id) x"
        ))
    };
    // 50/35/15 over 2,000 clients: per mille, within a few standard deviations.
    assert!((450..=550).contains(&share(1)), "{}", share(1));
    assert!((300..=400).contains(&share(2)), "{}", share(2));
    assert!((110..=190).contains(&share(3)), "{}", share(3));
}

#[test]
fn two_runs_and_pool_sizes_2_and_8_give_the_same_data() {
    let a = TestDb::new("language_pool2");
    let b = TestDb::new("language_pool8");
    a.run(&["reset", "--yes", "--profile", "dev", "--pool-size", "2"])
        .success();
    b.run(&["reset", "--yes", "--profile", "dev", "--pool-size", "8"])
        .success();
    let first = a.overall_fingerprint();
    assert_eq!(first, b.overall_fingerprint());
    a.run(&["reset", "--yes", "--profile", "dev", "--pool-size", "8"])
        .success();
    assert_eq!(a.overall_fingerprint(), first);
}

/// `reset` on a project whose seed.toml has `from` replaced by `to`, against a server that does
/// not exist: a spec error must stop it before it tries to connect.
fn refused(from: &str, to: &str) -> Run {
    let project = ProjectCopy::new();
    let spec = std::fs::read_to_string(project.path("seeds/seed.toml")).unwrap();
    assert!(spec.contains(from), "the spec has {from:?}");
    project.write("seeds/seed.toml", &spec.replacen(from, to, 1));
    let run = project.reset_without_a_server();
    run.code(2);
    run
}

#[test]
fn seed_language_mistakes_are_refused_before_connecting_naming_the_place() {
    let unit_price = "unit_price  = { expr = \"service_id.price\" }";
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "first_name = { gen = \"pick\", file = \"data/first_names.txt\" }\nlast_name  = { gen = \"pick\", file = \"data/last_names.txt\" }\n# Unique",
            "first_name = { expr = \"lower(last_name)\" }\nlast_name  = { expr = \"upper(first_name)\" }\n# Unique",
            &[
                "seed.toml",
                "a cycle among columns: clients.first_name -> clients.last_name -> clients.first_name",
            ],
        ),
        (
            unit_price,
            "unit_price  = { expr = \"service_id.cost\" }",
            &[
                "table invoice_line_items, column unit_price",
                "cost is not a column of services",
            ],
        ),
        (
            unit_price,
            "unit_price  = { expr = \"quantity.price\" }",
            &[
                "column unit_price",
                "invoice_line_items.quantity does not point to a row",
            ],
        ),
        (
            unit_price,
            "unit_price  = { expr = \"service_id.price *\" }",
            &["column unit_price", "ends too early"],
        ),
        (
            unit_price,
            "unit_price  = { expr = \"median(service_id.price)\" }",
            &["column unit_price", "unknown function median"],
        ),
        (
            "subtotal  = { expr = \"sum(invoice_line_items, quantity * unit_price)\" }",
            "subtotal  = { expr = \"sum(pets, 1)\" }",
            &[
                "table invoices, column subtotal",
                "pets is not generated per row of invoices",
            ],
        ),
        (
            "tax       = { expr = \"round(subtotal * 0.08, 2)\" }",
            "tax       = { expr = \"subtotal * 'eight'\" }",
            &["table invoices, column tax", "cannot apply * to"],
        ),
        (
            "'{first_name|lower}.{last_name|lower}{int(1, 99)}@example.com'",
            "'client{int(1, 50)}@example.com'",
            &[
                "table clients, column email",
                "unique",
                "at most 50 distinct values",
            ],
        ),
        (
            "field = \"postal_code\"",
            "field = \"zip\"",
            &[
                "table clients, column postal_code",
                "places.csv has no field zip",
            ],
        ),
        (
            "within = \"client_id\"",
            "within = \"groomer_id\"",
            &[
                "table grooming_visits, column pet_id",
                "staff, which is not an ancestor",
            ],
        ),
        (
            "when = \"status == 'paid'\"   #",
            "when = \"stats == 'paid'\"   #",
            &[
                "table tip_splits",
                "when",
                "stats is not a column of invoices",
            ],
        ),
        (
            "counts = { 1 = 50, 2 = 35, 3 = 15 }",
            "counts = { one = 50 }",
            &["table pets", "\"one\" is not a number of children"],
        ),
    ];
    for (from, to, expected) in cases {
        let run = refused(from, to);
        for needle in *expected {
            run.stderr_has(needle);
        }
    }
}

#[test]
fn a_table_loaded_without_its_triggers_keeps_them_for_the_application() {
    let db = TestDb::new("triggers_off");
    let project = ProjectCopy::new();
    project.write(
        "migrations/V90__audit.sql",
        "CREATE TABLE audit (what text NOT NULL);\n\
         CREATE FUNCTION audit_client() RETURNS trigger LANGUAGE plpgsql AS\n\
         $$ BEGIN INSERT INTO audit VALUES ('client ' || NEW.id); RETURN NEW; END $$;\n\
         CREATE TRIGGER audit_clients AFTER INSERT ON clients FOR EACH ROW EXECUTE FUNCTION audit_client();\n",
    );
    // Without the switch the application's trigger fires for every seeded client.
    db.run_in(&project, &["reset", "--profile", "ci", "--yes"])
        .success();
    assert_eq!(db.scalar("SELECT count(*) FROM audit"), 20);
    let spec = std::fs::read_to_string(project.path("seeds/seed.toml")).unwrap();
    project.write(
        "seeds/seed.toml",
        &spec.replacen(
            "name = \"clients\"\n",
            "name = \"clients\"\ndisable_triggers = true\n",
            1,
        ),
    );
    for extra in [&[][..], &["--parallel", "2"][..]] {
        let mut args = vec!["reset", "--profile", "ci", "--yes"];
        args.extend_from_slice(extra);
        db.run_in(&project, &args).success();
        assert_eq!(db.scalar("SELECT count(*) FROM audit"), 0, "{extra:?}");
        // The trigger is back on for the application's own inserts.
        assert_eq!(
            db.text("SELECT tgenabled::text FROM pg_trigger WHERE tgname = 'audit_clients'"),
            "O"
        );
    }
    db.client()
        .batch_execute(
            "INSERT INTO clients (first_name, last_name, email, created_at) VALUES ('A', 'B', 'a@b', now())",
        )
        .unwrap();
    assert_eq!(db.scalar("SELECT count(*) FROM audit"), 1);
}

#[test]
fn a_value_a_generated_column_refuses_is_explained_naming_the_row() {
    // The server's COPY context names no column when a generated column's expression fails.
    let db = TestDb::new("generated_refuses");
    let project = ProjectCopy::new();
    project.write(
        "migrations/V90__prefs.sql",
        "ALTER TABLE clients ADD COLUMN prefs text NOT NULL DEFAULT '{}',\n\
         ADD COLUMN theme text GENERATED ALWAYS AS (prefs::json ->> 'theme') STORED;\n",
    );
    project.edit(
        "seeds/seed.toml",
        "name = \"clients\"\n[tables.columns]\n",
        "name = \"clients\"\n[tables.columns]\nprefs = { gen = \"choice\", values = [\"dark\"] }\n",
    );
    db.run_in(&project, &["reset", "--profile", "ci", "--yes"])
        .code(7)
        .stderr_has("seeding clients failed at row 0")
        .stderr_has("a generated column");
}
