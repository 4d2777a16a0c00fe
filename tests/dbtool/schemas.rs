//! Schemas shaped like Pagila (issue 20): free-standing sequences, a partitioned table whose
//! partitions share its sequence, a trigger-filled NOT NULL tsvector, a domain, a materialized
//! view and a junction table with a composite key (tests/pagila).

use crate::support::{ProjectCopy, Run, TestDb};

/// A copy of tests/pagila that a test may change.
fn pagila() -> ProjectCopy {
    ProjectCopy::of("tests/pagila")
}

fn reset(db: &TestDb, project: &ProjectCopy, extra: &[&str]) -> Run {
    let mut args = vec!["reset", "--yes", "--profile", "dev"];
    args.extend_from_slice(extra);
    let run = db.run_in(project, &args);
    run.success();
    run
}

#[test]
fn a_pagila_shaped_schema_resets_twice_with_every_sequence_past_its_columns() {
    let project = pagila();
    let db = TestDb::new("pagila_sequences");
    let first = reset(&db, &project, &[]);
    first.stderr_has(
        "table film, column fulltext: NOT NULL without a default and not in the spec: left to the BEFORE INSERT trigger film_fulltext_trigger",
    );
    let fingerprint = db.overall_fingerprint();
    reset(&db, &project, &[]);
    assert_eq!(db.overall_fingerprint(), fingerprint);

    // Free-standing sequences (no OWNED BY) moved past their columns' maximum.
    for (sequence, table, column) in [
        ("actor_actor_id_seq", "actor", "actor_id"),
        ("language_language_id_seq", "language", "language_id"),
        ("film_film_id_seq", "film", "film_id"),
        ("customer_customer_id_seq", "customer", "customer_id"),
        ("payment_payment_id_seq", "payment", "payment_id"),
    ] {
        let position = db.scalar(&format!("SELECT last_value FROM {sequence}"));
        let largest = db.scalar(&format!("SELECT max({column})::bigint FROM {table}"));
        assert!(largest > 1, "{table} was seeded");
        assert_eq!(
            position, largest,
            "{sequence} stands at {table}.{column}'s maximum"
        );
    }
    // The application's first INSERT without an id succeeds in every table with a sequence,
    // the partitioned one included (its partitions share the parent's sequence).
    let mut client = db.client();
    client
        .batch_execute(
            "INSERT INTO actor (first_name, last_name) VALUES ('NEW', 'ACTOR');
             INSERT INTO language (name) VALUES ('Klingon');
             INSERT INTO film (title, language_id) VALUES ('A New Film', 1);
             INSERT INTO customer (first_name, last_name) VALUES ('NEW', 'CUSTOMER');
             INSERT INTO payment (customer_id, amount, payment_date) VALUES (1, 1.99, '2024-11-15');
             INSERT INTO payment_p2024_12 (customer_id, amount, payment_date) VALUES (1, 2.99, '2024-12-15');
             INSERT INTO film_actor (film_id, actor_id) VALUES (1, (SELECT max(actor_id) FROM actor));",
        )
        .expect("inserts without ids succeed after a reset");

    // Every payment in its partition, none in the parent; the trigger filled every fulltext.
    assert_every_payment_in_its_partition(&db);
    assert!(db.scalar("SELECT count(DISTINCT tableoid) FROM payment") == 3);
    assert_eq!(
        db.scalar("SELECT count(*) FROM film WHERE fulltext IS NULL OR fulltext = ''::tsvector"),
        0
    );
    assert!(
        db.scalar("SELECT count(*) FROM film WHERE fulltext @@ to_tsquery('english', 'story')")
            > 290
    );
}

#[test]
fn a_pagila_shaped_schema_is_the_one_its_migrations_create_and_its_data_is_the_same_at_any_pool_size()
 {
    let project = pagila();
    let reset_db = TestDb::new("pagila_schema_reset");
    let migrated = TestDb::new("pagila_schema_migrated");
    reset(&reset_db, &project, &["--pool-size", "2"]);
    migrated.run_in(&project, &["migrate"]).success();
    let schema = |db: &TestDb| db.dump(&["--schema-only", "--schema", "public", "--no-owner"]);
    assert_eq!(schema(&reset_db), schema(&migrated));

    let parallel = TestDb::new("pagila_schema_parallel");
    reset(
        &parallel,
        &project,
        &["--pool-size", "6", "--parallel", "4"],
    );
    assert_eq!(parallel.fingerprint(), reset_db.fingerprint());
    assert_eq!(schema(&parallel), schema(&migrated));
}

#[test]
fn distinct_refs_give_each_parent_distinct_children_and_too_few_candidates_are_refused() {
    let project = pagila();
    let db = TestDb::new("pagila_distinct");
    reset(&db, &project, &[]);
    // 1 to 8 actors per film, never twice the same one; the same actors on every reset.
    assert_eq!(
        db.scalar("SELECT count(*) - count(DISTINCT (film_id, actor_id)) FROM film_actor"),
        0
    );
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM (SELECT film_id FROM film_actor GROUP BY 1
                                   HAVING count(*) NOT BETWEEN 1 AND 8) x"
        ),
        0
    );
    assert_eq!(
        db.scalar("SELECT count(DISTINCT film_id) FROM film_actor"),
        300
    );
    assert!(db.scalar("SELECT count(DISTINCT actor_id) FROM film_actor") > 190);
    let films = db.text("SELECT string_agg(film_id || ':' || actor_id, ',' ORDER BY film_id, actor_id) FROM film_actor WHERE film_id <= 3");
    reset(&db, &project, &[]);
    assert_eq!(
        db.text("SELECT string_agg(film_id || ':' || actor_id, ',' ORDER BY film_id, actor_id) FROM film_actor WHERE film_id <= 3"),
        films
    );

    // A film may have 8 actors, but there are only 5: refused before connecting.
    project.edit("profiles/dev.toml", "actor = 200", "actor = 5");
    let run = project.reset_without_a_server();
    run.code(2)
        .stderr_has("seed.toml: table film_actor, column actor_id: distinct: a row of film may have up to 8 rows here, but actor has only 5 candidates");
}

#[test]
fn values_the_database_invents_and_tables_left_out_are_named() {
    let project = pagila();
    // actor.last_update left to DEFAULT now(); a table the spec does not know, with a row
    // that a migration inserts with its default clock_timestamp().
    project.edit(
        "seeds/seed.toml",
        "last_update = { gen = \"timestamp\", from = \"-30d\", to = \"-1d\" }\n\n[[tables]]\nname = \"language\"",
        "\n[[tables]]\nname = \"language\"",
    );
    project.write(
        "migrations/V4__store.sql",
        "CREATE TABLE store (store_id serial PRIMARY KEY, token uuid DEFAULT gen_random_uuid(),
                             opened timestamptz DEFAULT clock_timestamp());
         INSERT INTO store DEFAULT VALUES;",
    );
    let db = TestDb::new("pagila_volatile");
    let run = reset(&db, &project, &[]);
    run.stderr_has("table actor, column last_update: left to its default now(), which differs on every reset")
        .stderr_has("relative to the profile's epoch")
        .stderr_has("table store, column token: the rows the migrations insert may take its default gen_random_uuid()")
        .stderr_has("table store, column opened: the rows the migrations insert may take its default clock_timestamp()")
        .stderr_has("tables the seed spec leaves out, kept as the migrations leave them: store (rows from the migrations)");
    // The plan says the same, from the schema as it is now, and changes nothing.
    let before = db.overall_fingerprint();
    let plan = db.run_in(&project, &["reset", "--dry-run", "--profile", "dev"]);
    plan.success();
    for needle in [
        "notes (from the schema as it is now):",
        "table actor, column last_update: left to its default now()",
        "table film, column fulltext: NOT NULL without a default and not in the spec: left to the BEFORE INSERT trigger film_fulltext_trigger",
        "store (rows from the migrations)",
    ] {
        assert!(
            plan.stdout.contains(needle),
            "{needle:?} in\n{}",
            plan.stdout
        );
    }
    let seed_plan = db.run_in(&project, &["seed", "--dry-run", "--profile", "dev"]);
    seed_plan.success();
    assert!(
        seed_plan.stdout.contains("table actor, column last_update"),
        "{}",
        seed_plan.stdout
    );
    assert_eq!(db.overall_fingerprint(), before);
    // The example application leaves nothing to chance: no such warning.
    let example = TestDb::new("example_no_volatile");
    let run = example.run(&["reset", "--yes", "--profile", "dev"]);
    run.success();
    assert!(
        !run.stderr.contains("differs on every reset"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("leaves out"), "{}", run.stderr);
}

#[test]
fn a_not_null_column_is_left_to_a_trigger_only_when_the_trigger_fires() {
    let project = pagila();
    project.edit(
        "seeds/seed.toml",
        "name = \"film\"\n",
        "name = \"film\"\ndisable_triggers = true\n",
    );
    let db = TestDb::new("pagila_trigger_off");
    db.run_in(&project, &["reset", "--yes", "--profile", "dev"])
        .code(2)
        .stderr_has("table film, column fulltext: NOT NULL without a default, but the spec does not generate it (and `disable_triggers` keeps the table's triggers from filling it)");
}

#[test]
fn a_20000_deep_expression_is_one_line_naming_file_and_column() {
    let project = pagila();
    let deep = format!("{}1{}", "(".repeat(20_000), ")".repeat(20_000));
    project.edit(
        "seeds/seed.toml",
        "release_year = { gen = \"int\", min = 1990, max = 2024 }",
        &format!("release_year = {{ expr = \"{deep}\" }}"),
    );
    let run = project.reset_without_a_server();
    run.code(2)
        .stderr_has("seed.toml: table film, column release_year: in \"((((")
        .stderr_has("nests more than 100 levels deep");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert!(lines[0].len() < 400, "{}", lines[0]);
}

#[test]
fn text_functions_reach_the_database_and_a_numeric_constant_in_arithmetic_is_refused() {
    let project = pagila();
    let db = TestDb::new("pagila_functions");
    reset(&db, &project, &[]);
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM customer
              WHERE email <> lower(first_name || '.' || last_name) || '.' || lpad(customer_id::text, 4, '0') || '@example.org'"
        ),
        0
    );
    assert_eq!(
        db.text("SELECT email FROM customer WHERE customer_id = 7")
            .split('@')
            .next()
            .unwrap()
            .rsplit('.')
            .next()
            .unwrap(),
        "0007"
    );

    project.edit(
        "seeds/seed.toml",
        "rental_rate  = { gen = \"choice\", values = [\"0.99\", \"2.99\", \"4.99\"] }",
        "rental_rate  = { expr = \"base_rate * 2\" }\nbase_rate    = { gen = \"constant\", value = 2.49 }",
    );
    let run = project.reset_without_a_server();
    run.code(2).stderr_has(
        "seed.toml: table film, column rental_rate: uses film.base_rate in arithmetic, but it is a `constant`, which is text (\"2.49\"); make it a number with base_rate = { expr = \"2.49\" }",
    );
}

/// Rows of each partition of `payment`, by partition.
fn payments_by_partition(db: &TestDb) -> Vec<(String, i64)> {
    db.client()
        .query(
            "SELECT tableoid::regclass::text, count(*) FROM payment GROUP BY 1 ORDER BY 1",
            &[],
        )
        .expect("payments by partition")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[test]
fn a_partitioned_table_loads_straight_into_its_partitions_with_the_rows_a_load_through_its_parent_gives()
 {
    let project = pagila();
    let routed = TestDb::new("pagila_routed");
    reset(&routed, &project, &[])
        .stderr_has("payment: rows go straight to its 3 partitions with COPY FREEZE");
    // Every row in its partition, none in the parent.
    assert_every_payment_in_its_partition(&routed);
    let partitions = payments_by_partition(&routed);
    assert_eq!(partitions.len(), 3, "{partitions:?}");
    assert!(partitions.iter().all(|(_, n)| *n > 100), "{partitions:?}");

    // The same project, but a statement trigger on the parent: the server routes every row.
    let through_parent = pagila();
    through_parent.write(
        "migrations/V4__payment_statement_trigger.sql",
        "CREATE FUNCTION payment_loaded() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
         CREATE TRIGGER payment_loaded AFTER INSERT ON payment
             FOR EACH STATEMENT EXECUTE FUNCTION payment_loaded();",
    );
    let parent = TestDb::new("pagila_through_parent");
    let run = reset(&parent, &through_parent, &[]);
    assert!(
        !run.stderr.contains("rows go straight"),
        "a table with a trigger of its own is loaded through it:\n{}",
        run.stderr
    );
    assert_eq!(payments_by_partition(&parent), partitions);
    assert_eq!(parent.fingerprint(), routed.fingerprint());

    // Over the pool (no FREEZE there: each COPY commits on its own), the same rows again.
    let pooled = TestDb::new("pagila_routed_parallel");
    reset(&pooled, &project, &["--parallel", "2"])
        .stderr_has("payment: rows go straight to its 3 partitions");
    assert_eq!(pooled.fingerprint(), routed.fingerprint());
    assert_eq!(payments_by_partition(&pooled), partitions);
}

#[test]
fn sequences_named_in_any_spelling_of_nextval_are_moved_past_their_columns() {
    let project = pagila();
    project.write(
        "migrations/V4__tickets.sql",
        r#"CREATE SEQUENCE plain_seq;
           CREATE SEQUENCE "Ticket ""Quoted"" Seq";
           CREATE SEQUENCE qualified_seq;
           CREATE SEQUENCE text_seq;
           CREATE SEQUENCE old_style_seq;
           CREATE TABLE ticket (
               plain_id integer DEFAULT nextval('plain_seq') NOT NULL,
               quoted_id integer DEFAULT nextval('"Ticket ""Quoted"" Seq"') NOT NULL,
               qualified_id bigint DEFAULT nextval('public.qualified_seq') NOT NULL,
               text_id integer DEFAULT nextval('text_seq'::text) NOT NULL,
               old_style_id integer DEFAULT nextval(('public.old_style_seq'::text)::regclass) NOT NULL
           );"#,
    );
    let seeds = std::fs::read_to_string(project.path("seeds/seed.toml")).expect("seed.toml");
    project.write(
        "seeds/seed.toml",
        &format!(
            "{seeds}
[[tables]]
name = \"ticket\"
[tables.columns]
plain_id     = {{ gen = \"serial\" }}
quoted_id    = {{ expr = \"plain_id + 100\" }}
qualified_id = {{ expr = \"plain_id + 200\" }}
text_id      = {{ expr = \"plain_id + 300\" }}
old_style_id = {{ expr = \"plain_id + 400\" }}
"
        ),
    );
    project.edit("profiles/dev.toml", "[counts]\n", "[counts]\nticket = 10\n");
    let db = TestDb::new("pagila_nextval_spellings");
    reset(&db, &project, &[]);
    for (sequence, largest) in [
        ("plain_seq", 10),
        ("\"Ticket \"\"Quoted\"\" Seq\"", 110),
        ("qualified_seq", 210),
        ("text_seq", 310),
        ("old_style_seq", 410),
    ] {
        assert_eq!(
            db.scalar(&format!("SELECT last_value FROM {sequence}")),
            largest,
            "{sequence} stands at its column's maximum"
        );
    }
    let mut client = db.client();
    let row = client
        .query_one(
            "INSERT INTO ticket DEFAULT VALUES
             RETURNING plain_id::bigint, quoted_id::bigint, qualified_id, text_id::bigint, old_style_id::bigint",
            &[],
        )
        .expect("an insert without ids succeeds after a reset");
    let ids: Vec<i64> = (0..5).map(|i| row.get(i)).collect();
    assert_eq!(ids, [11, 111, 211, 311, 411]);
}

/// No payment in the partitioned parent itself, each in its month's partition.
fn assert_every_payment_in_its_partition(db: &TestDb) {
    assert_eq!(db.scalar("SELECT count(*) FROM ONLY payment"), 0);
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM payment
              WHERE tableoid::regclass::text <> 'payment_p' || to_char(payment_date AT TIME ZONE 'UTC', 'YYYY_MM')"
        ),
        0
    );
}

#[test]
fn sequences_end_past_the_rows_migrations_inserted_and_the_ids_a_trigger_changed() {
    // The load knows the largest id it sent; the rows the migrations left before it it reads
    // from the table before the load.
    let project = pagila();
    project.write(
        "migrations/V4__labels.sql",
        "CREATE SEQUENCE label_seq;
         CREATE TABLE label (id integer DEFAULT nextval('label_seq') NOT NULL, name text);
         INSERT INTO label (id, name) VALUES (900, 'left by a migration');",
    );
    let seeds = std::fs::read_to_string(project.path("seeds/seed.toml")).expect("seed.toml");
    let seeded = |table: &str| {
        format!(
            "
[[tables]]
name = \"{table}\"
[tables.columns]
id   = {{ gen = \"serial\" }}
name = {{ gen = \"constant\", value = \"seeded\" }}
"
        )
    };
    project.write("seeds/seed.toml", &format!("{seeds}{}", seeded("label")));
    project.edit("profiles/dev.toml", "[counts]\n", "[counts]\nlabel = 10\n");
    let db = TestDb::new("pagila_sequences_past_migration_rows");
    for _ in 0..2 {
        reset(&db, &project, &[]);
        assert_eq!(db.scalar("SELECT count(*) FROM label"), 11);
        assert_eq!(db.scalar("SELECT last_value FROM label_seq"), 900);
        // And the seeded tables' own, which the load knew.
        assert_eq!(
            db.scalar("SELECT last_value FROM payment_payment_id_seq"),
            db.scalar("SELECT max(payment_id)::bigint FROM payment")
        );
    }

    // A trigger of the application's may change the ids on their way in (or write to other
    // tables): the ids are read back from the tables.
    project.write(
        "migrations/V5__tickets.sql",
        "CREATE SEQUENCE ticket_seq;
         CREATE TABLE ticket (id integer DEFAULT nextval('ticket_seq') NOT NULL, name text);
         CREATE FUNCTION ticket_shift() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN NEW.id := NEW.id + 5000; RETURN NEW; END $$;
         CREATE TRIGGER ticket_shift BEFORE INSERT ON ticket
             FOR EACH ROW EXECUTE FUNCTION ticket_shift();",
    );
    project.write(
        "seeds/seed.toml",
        &format!("{seeds}{}{}", seeded("label"), seeded("ticket")),
    );
    project.edit("profiles/dev.toml", "[counts]\n", "[counts]\nticket = 10\n");
    let db = TestDb::new("pagila_sequences_past_trigger_ids");
    reset(&db, &project, &[]);
    assert_eq!(db.scalar("SELECT max(id)::bigint FROM ticket"), 5010);
    assert_eq!(db.scalar("SELECT last_value FROM ticket_seq"), 5010);
    assert_eq!(db.scalar("SELECT last_value FROM label_seq"), 900);
}
