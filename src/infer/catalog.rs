//! What the catalog says about the schema's tables: columns with their types, defaults and
//! identity, keys, foreign keys, CHECK constraints, triggers and partition bounds. Read once,
//! in name order, so the same schema always reads the same.

use postgres::Client;

#[derive(Debug, Clone)]
pub struct Table {
    pub oid: i64,
    pub name: String,
    pub columns: Vec<Column>,
    /// Column positions (indexes into `columns`).
    pub primary_key: Vec<usize>,
    pub uniques: Vec<Vec<usize>>,
    pub foreign_keys: Vec<ForeignKey>,
    pub checks: Vec<Check>,
    /// BEFORE/AFTER INSERT row triggers: name and the function's source.
    pub triggers: Vec<Trigger>,
    /// A partitioned table: the partition key column and every partition's bound.
    pub partitions: Option<Partitions>,
    /// Rows the migrations left in it (read only from freshly migrated schemas; at most
    /// `PRESENT_ROWS_READ + 1` are counted).
    pub rows: u64,
    /// For every column set another table's foreign key points at, the values its rows hold
    /// (as text, in key order, at most `PRESENT_ROWS_READ`): what children can reference.
    pub key_values: Vec<(Vec<String>, Vec<Vec<String>>)>,
}

/// The most rows of a table the migrations fill that are read as keys to reference.
pub const PRESENT_ROWS_READ: i64 = 200;

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    /// As `format_type` shows it: `character varying(40)`, `year`, `integer[]`.
    pub type_name: String,
    /// The type's name after domains (`int4`, `varchar`, `mpaa_rating`); for an array, its
    /// element type's.
    pub base: String,
    /// `e` enum, `r` range, `b` base, `c` composite, ... of `base`.
    pub kind: char,
    pub is_array: bool,
    /// Length, precision and scale (-1: none).
    pub typmod: i32,
    pub not_null: bool,
    pub default: Option<String>,
    /// The default calls a function that is not immutable (now(), nextval, gen_random_uuid).
    pub volatile_default: bool,
    pub identity: bool,
    pub generated: bool,
    pub enum_labels: Vec<String>,
    /// A domain's name and CHECK constraints, written over VALUE.
    pub domain: Option<String>,
    pub domain_checks: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ForeignKey {
    pub name: String,
    pub columns: Vec<usize>,
    /// None: a table outside the schema.
    pub parent: Option<String>,
    pub parent_columns: Vec<String>,
    /// ON DELETE CASCADE: the parent owns the rows.
    pub cascade: bool,
}

#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub definition: String,
}

#[derive(Debug, Clone)]
pub struct Trigger {
    pub name: String,
    pub before: bool,
    pub source: String,
}

#[derive(Debug, Clone)]
pub struct Partitions {
    pub strategy: char,
    pub key: Vec<usize>,
    /// `FOR VALUES FROM (...) TO (...)`, `FOR VALUES IN (...)`, `DEFAULT`.
    pub bounds: Vec<String>,
}

/// The tables dbtool seeds in `schema`: ordinary and partitioned tables (a partition's rows go
/// through its parent), none owned by an extension. `with_rows`: the schema was just migrated,
/// so the rows it holds are the migrations' own; count them and read the keys they hold.
pub fn read(
    client: &mut Client,
    schema: &str,
    with_rows: bool,
) -> Result<Vec<Table>, postgres::Error> {
    let rows = client.query(
        "SELECT c.oid::int8, c.relname::text FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition \
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d \
                WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e') \
         ORDER BY c.relname",
        &[&schema],
    )?;
    let mut tables: Vec<Table> = rows
        .iter()
        .map(|r| Table {
            oid: r.get(0),
            name: r.get(1),
            columns: Vec::new(),
            primary_key: Vec::new(),
            uniques: Vec::new(),
            foreign_keys: Vec::new(),
            checks: Vec::new(),
            triggers: Vec::new(),
            partitions: None,
            rows: 0,
            key_values: Vec::new(),
        })
        .collect();
    let oids: Vec<i64> = tables.iter().map(|t| t.oid).collect();
    let mut attnums: Vec<Vec<i16>> = vec![Vec::new(); tables.len()];
    let at = |oid: i64| oids.iter().position(|o| *o == oid);

    for r in client.query(
        "SELECT a.attrelid::int8, a.attnum, a.attname::text, \
                pg_catalog.format_type(a.atttypid, a.atttypmod), \
                a.attnotnull OR coalesce(t.typnotnull, false), \
                a.attidentity::text <> '', a.attgenerated::text <> '', \
                pg_catalog.pg_get_expr(ad.adbin, ad.adrelid), \
                EXISTS (SELECT 1 FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_proc p ON p.oid = d.refobjid \
                        WHERE d.classid = 'pg_catalog.pg_attrdef'::regclass AND d.objid = ad.oid \
                          AND d.refclassid = 'pg_catalog.pg_proc'::regclass AND p.provolatile <> 'i'), \
                coalesce(e.typname, b.typname)::text, coalesce(e.typtype, b.typtype)::text, \
                e.oid IS NOT NULL, \
                CASE WHEN a.atttypmod <> -1 THEN a.atttypmod ELSE t.typtypmod END, \
                ARRAY(SELECT l.enumlabel::text FROM pg_catalog.pg_enum l \
                      WHERE l.enumtypid = coalesce(e.oid, b.oid) ORDER BY l.enumsortorder), \
                CASE WHEN t.typtype = 'd' THEN t.typname::text END, \
                ARRAY(SELECT pg_catalog.pg_get_constraintdef(k.oid) FROM pg_catalog.pg_constraint k \
                      WHERE k.contypid = t.oid AND k.contype = 'c' ORDER BY k.conname) \
         FROM pg_catalog.pg_attribute a \
         JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
         JOIN pg_catalog.pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END \
         LEFT JOIN pg_catalog.pg_type e ON e.oid = b.typelem AND b.typcategory = 'A' \
         LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum \
         WHERE a.attrelid::int8 = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY a.attrelid, a.attnum",
        &[&oids],
    )? {
        let Some(i) = at(r.get(0)) else { continue };
        attnums[i].push(r.get(1));
        tables[i].columns.push(Column {
            name: r.get(2),
            type_name: r.get(3),
            not_null: r.get(4),
            identity: r.get(5),
            generated: r.get(6),
            default: r.get(7),
            volatile_default: r.get(8),
            base: r.get(9),
            kind: r.get::<_, String>(10).chars().next().unwrap_or('b'),
            is_array: r.get(11),
            typmod: r.get(12),
            enum_labels: r.get(13),
            domain: r.get(14),
            domain_checks: r.get(15),
        });
    }
    let position = |i: usize, attnum: i16| attnums[i].iter().position(|a| *a == attnum);

    for r in client.query(
        "SELECT k.conrelid::int8, k.contype::text, k.conname::text, k.conkey::int2[], \
                pn.nspname::text, pc.relname::text, \
                ARRAY(SELECT pa.attname::text FROM unnest(k.confkey) WITH ORDINALITY u(n, o) \
                      JOIN pg_catalog.pg_attribute pa ON pa.attrelid = k.confrelid AND pa.attnum = u.n \
                      ORDER BY u.o), \
                k.confdeltype::text, pg_catalog.pg_get_constraintdef(k.oid) \
         FROM pg_catalog.pg_constraint k \
         LEFT JOIN pg_catalog.pg_class pc ON pc.oid = k.confrelid \
         LEFT JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace \
         WHERE k.conrelid::int8 = ANY($1) AND k.contype IN ('p', 'u', 'f', 'c') \
         ORDER BY k.conrelid, k.contype, k.conname",
        &[&oids],
    )? {
        let Some(i) = at(r.get(0)) else { continue };
        let keys: Vec<i16> = r.get::<_, Option<Vec<i16>>>(3).unwrap_or_default();
        let columns: Vec<usize> = keys.iter().filter_map(|k| position(i, *k)).collect();
        let kind: String = r.get(1);
        let table = &mut tables[i];
        match kind.as_str() {
            "p" => table.primary_key = columns,
            "u" => table.uniques.push(columns),
            "f" => {
                let namespace: Option<String> = r.get(4);
                let parent: Option<String> = r.get(5);
                table.foreign_keys.push(ForeignKey {
                    name: r.get(2),
                    columns,
                    parent: parent.filter(|_| namespace.as_deref() == Some(schema)),
                    parent_columns: r.get(6),
                    cascade: r.get::<_, String>(7) == "c",
                });
            }
            _ => table.checks.push(Check {
                name: r.get(2),
                definition: r.get(8),
            }),
        }
    }

    // Unique indexes that no constraint owns (CREATE UNIQUE INDEX), on plain columns.
    for r in client.query(
        "SELECT i.indrelid::int8, i.indkey::int2[] FROM pg_catalog.pg_index i \
         JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid \
         WHERE i.indrelid::int8 = ANY($1) AND i.indisunique AND NOT i.indisprimary \
           AND i.indexprs IS NULL \
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conindid = i.indexrelid) \
         ORDER BY i.indrelid, c.relname",
        &[&oids],
    )? {
        let Some(i) = at(r.get(0)) else { continue };
        let keys: Vec<i16> = r.get(1);
        let columns: Vec<usize> = keys.iter().filter_map(|k| position(i, *k)).collect();
        if !tables[i].uniques.contains(&columns) {
            tables[i].uniques.push(columns);
        }
    }

    // Row triggers that fire on INSERT (tgtype bits: 1 row, 2 before, 4 insert).
    for r in client.query(
        "SELECT t.tgrelid::int8, t.tgname::text, (t.tgtype & 2) <> 0, coalesce(p.prosrc, '') \
         FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid \
         WHERE t.tgrelid::int8 = ANY($1) AND NOT t.tgisinternal AND (t.tgtype & 5) = 5 \
         ORDER BY t.tgrelid, t.tgname",
        &[&oids],
    )? {
        let Some(i) = at(r.get(0)) else { continue };
        tables[i].triggers.push(Trigger {
            name: r.get(1),
            before: r.get(2),
            source: r.get(3),
        });
    }

    for r in client.query(
        "SELECT p.partrelid::int8, p.partstrat::text, p.partattrs::int2[], \
                ARRAY(SELECT pg_catalog.pg_get_expr(c.relpartbound, c.oid) FROM pg_catalog.pg_inherits h \
                      JOIN pg_catalog.pg_class c ON c.oid = h.inhrelid \
                      WHERE h.inhparent = p.partrelid ORDER BY c.relname) \
         FROM pg_catalog.pg_partitioned_table p WHERE p.partrelid::int8 = ANY($1) ORDER BY 1",
        &[&oids],
    )? {
        let Some(i) = at(r.get(0)) else { continue };
        let keys: Vec<i16> = r.get(2);
        tables[i].partitions = Some(Partitions {
            strategy: r.get::<_, String>(1).chars().next().unwrap_or('r'),
            key: keys.iter().filter_map(|k| position(i, *k)).collect(),
            bounds: r.get(3),
        });
    }
    if with_rows {
        present_rows(client, schema, &mut tables)?;
    }
    Ok(tables)
}

/// The rows the migrations inserted: how many per table, and the keys children can point at.
fn present_rows(
    client: &mut Client,
    schema: &str,
    tables: &mut [Table],
) -> Result<(), postgres::Error> {
    for t in tables.iter_mut() {
        let sql = format!(
            "SELECT count(*) FROM (SELECT 1 FROM {}.{} LIMIT {}) s",
            ident(schema),
            ident(&t.name),
            PRESENT_ROWS_READ + 1
        );
        t.rows = client.query_one(&sql, &[])?.get::<_, i64>(0) as u64;
    }
    let mut wanted: Vec<(usize, Vec<String>)> = Vec::new();
    for t in tables.iter() {
        for fk in &t.foreign_keys {
            let Some(p) = tables
                .iter()
                .position(|x| Some(&x.name) == fk.parent.as_ref())
            else {
                continue;
            };
            if tables[p].rows > 0 && !wanted.contains(&(p, fk.parent_columns.clone())) {
                wanted.push((p, fk.parent_columns.clone()));
            }
        }
    }
    for (p, columns) in wanted {
        let list: Vec<String> = columns
            .iter()
            .map(|c| format!("{}::text", ident(c)))
            .collect();
        let not_null: Vec<String> = columns
            .iter()
            .map(|c| format!("{} IS NOT NULL", ident(c)))
            .collect();
        let raw: Vec<String> = columns.iter().map(|c| ident(c)).collect();
        let sql = format!(
            "SELECT {} FROM (SELECT DISTINCT {raw} FROM {}.{} WHERE {} ORDER BY {raw} \
             LIMIT {PRESENT_ROWS_READ}) s",
            list.join(", "),
            ident(schema),
            ident(&tables[p].name),
            not_null.join(" AND "),
            raw = raw.join(", "),
        );
        let rows = client
            .query(&sql, &[])?
            .iter()
            .map(|r| (0..columns.len()).map(|i| r.get::<_, String>(i)).collect())
            .collect();
        tables[p].key_values.push((columns, rows));
    }
    Ok(())
}
