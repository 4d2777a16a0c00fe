//! A generator for a column from its type (length, precision and scale, arrays, json, ranges,
//! domains), its name (`email`, `first_name`, `*_at`, `price`, ...) and what its CHECK
//! constraints allow. Keys and references are the model's business; this is every other column.

use super::catalog::Column;
use super::checks::Rule;
use super::data::{self, choice};

/// What the written spec says for a column.
#[derive(Debug, Clone, PartialEq)]
pub enum Gen {
    Serial,
    Uuid,
    Ordinal,
    Int {
        min: i64,
        max: i64,
    },
    Decimal {
        min: String,
        max: String,
        scale: u32,
    },
    Bool {
        p: f64,
    },
    Choice {
        values: Vec<String>,
    },
    Date {
        from: String,
        to: String,
    },
    Timestamp {
        from: String,
        to: String,
    },
    Ref {
        table: String,
        column: String,
        distinct: bool,
    },
    Parent {
        column: String,
    },
    Expr(String),
    /// Always NULL.
    Null,
}

/// A column's generator and why it was chosen.
#[derive(Debug, Clone)]
pub struct Pick {
    pub generator: Gen,
    pub why: String,
}

/// What the table's CHECK constraints and domain say about one column.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    pub low: Option<(f64, bool)>,
    pub high: Option<(f64, bool)>,
    pub one_of: Option<Vec<String>>,
    pub min_len: Option<usize>,
    pub max_len: Option<usize>,
    pub not_null: bool,
    /// Must come after this column (`CHECK (ends_at > starts_at)`).
    pub after: Option<(String, bool)>,
    /// What was applied, for the comment.
    pub notes: Vec<String>,
}

impl Limits {
    /// Adds the rules about `column` (domain checks name it VALUE).
    pub fn apply(&mut self, column: &str, rules: &[Rule], what: &str) {
        for rule in rules {
            match rule {
                Rule::Bound {
                    column: c,
                    op,
                    value,
                } if c == column => {
                    match op.as_str() {
                        ">" => self.low = Some((*value, true)),
                        ">=" => self.low = Some((*value, false)),
                        "<" => self.high = Some((*value, true)),
                        "<=" => self.high = Some((*value, false)),
                        "=" => self.one_of = Some(vec![format_number(*value)]),
                        _ => continue,
                    }
                    self.notes
                        .push(format!("{what} {op} {}", format_number(*value)));
                }
                Rule::Length {
                    column: c,
                    op,
                    value,
                } if c == column => {
                    let v = *value as usize;
                    match op.as_str() {
                        ">" => self.min_len = Some(v + 1),
                        ">=" => self.min_len = Some(v),
                        "<" => self.max_len = Some(v.saturating_sub(1)),
                        "<=" => self.max_len = Some(v),
                        "=" => {
                            self.min_len = Some(v);
                            self.max_len = Some(v)
                        }
                        _ => continue,
                    }
                    self.notes.push(format!("{what} length {op} {v}"));
                }
                Rule::OneOf { column: c, values } if c == column => {
                    self.one_of = Some(values.clone());
                    self.notes
                        .push(format!("{what} IN ({})", values.join(", ")));
                }
                Rule::NotNull { column: c } if c == column => {
                    self.not_null = true;
                    self.notes.push(format!("{what} needs a value"));
                }
                Rule::Order { low, high, strict } if high == column => {
                    self.after = Some((low.clone(), *strict));
                    self.notes.push(format!(
                        "{what} {} {low}",
                        if *strict { "after" } else { "not before" }
                    ));
                }
                Rule::Holds { column: c, why } if c == column => {
                    self.notes.push(format!("{what}: {why}"));
                }
                _ => {}
            }
        }
    }
}

fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The length limit of a character type: `varchar(40)`, `char(2)` (typmod is length + 4).
fn char_limit(column: &Column) -> Option<usize> {
    matches!(column.base.as_str(), "varchar" | "bpchar")
        .then_some(column.typmod)
        .filter(|m| *m > 4)
        .map(|m| (m - 4) as usize)
}

/// Precision and scale of a numeric.
fn numeric_digits(column: &Column) -> Option<(u32, u32)> {
    (column.base == "numeric" && column.typmod > 4).then(|| {
        let m = (column.typmod - 4) as u32;
        ((m >> 16) & 0xffff, m & 0xffff)
    })
}

fn has(name: &str, words: &[&str]) -> bool {
    words
        .iter()
        .any(|w| name == *w || name.ends_with(&format!("_{w}")))
}

/// A text value: its expression, shortest and longest length, and whether it is varied enough
/// to be unique over a table (a number in it).
struct Text {
    expr: String,
    min: usize,
    max: usize,
    varied: bool,
    why: &'static str,
}

fn text(expr: String, min: usize, max: usize, varied: bool, why: &'static str) -> Text {
    Text {
        expr,
        min,
        max,
        varied,
        why,
    }
}

const PERSON_TABLES: &[&str] = &[
    "user", "person", "people", "customer", "author", "member", "employee", "staff", "actor",
    "contact", "student", "teacher", "patient", "owner", "client", "account", "profile", "player",
    "driver", "guest", "speaker", "attendee", "artist", "writer",
];

/// Text candidates for a column named `name` in table `table`, best first.
fn text_candidates(name: &str, table: &str) -> Vec<Text> {
    let (fmin, fmax) = data::lengths(data::FIRST_NAMES);
    let (lmin, lmax) = data::lengths(data::LAST_NAMES);
    let (hmin, hmax) = data::lengths(data::HANDLES);
    let (amin, amax) = data::lengths(data::ADJECTIVES);
    let (nmin, nmax) = data::lengths(data::NOUNS);
    let words = |e: String| e;
    let person = PERSON_TABLES.iter().any(|p| table.contains(p));
    let mut out = Vec::new();
    let title = format!(
        "'{{{}}} {{{}}}'",
        choice(data::ADJECTIVES),
        choice(data::NOUNS)
    );
    let title_len = (amin + 1 + nmin, amax + 1 + nmax);
    if name.contains("email") {
        out.push(text(
            format!(
                "'{{{}}}.{{int(1, 99999)}}@example.com'",
                choice(data::HANDLES)
            ),
            hmin + 14,
            hmax + 18,
            true,
            "an email address, from its name",
        ));
    } else if has(name, &["first_name", "firstname", "given_name", "forename"]) {
        out.push(text(
            words(choice(data::FIRST_NAMES)),
            fmin,
            fmax,
            false,
            "a first name, from its name",
        ));
    } else if has(name, &["last_name", "lastname", "surname", "family_name"]) {
        out.push(text(
            choice(data::LAST_NAMES),
            lmin,
            lmax,
            false,
            "a last name, from its name",
        ));
    } else if has(
        name,
        &[
            "full_name",
            "fullname",
            "display_name",
            "contact_name",
            "author",
        ],
    ) || (person && name == "name")
    {
        out.push(text(
            format!(
                "'{{{}}} {{{}}}'",
                choice(data::FIRST_NAMES),
                choice(data::LAST_NAMES)
            ),
            fmin + 1 + lmin,
            fmax + 1 + lmax,
            false,
            "a person's name, from its name and its table's",
        ));
    } else if has(
        name,
        &[
            "username",
            "user_name",
            "login",
            "handle",
            "nickname",
            "screen_name",
        ],
    ) {
        out.push(text(
            format!("'{{{}}}{{int(1, 99999)}}'", choice(data::HANDLES)),
            hmin + 1,
            hmax + 5,
            true,
            "a user name, from its name",
        ));
    } else if has(
        name,
        &[
            "phone",
            "phone_number",
            "mobile",
            "telephone",
            "tel",
            "fax",
            "cell",
        ],
    ) {
        out.push(text(
            "'+1-555-{int(100, 999)}-{int(1000, 9999)}'".into(),
            15,
            15,
            true,
            "a phone number, from its name",
        ));
    } else if has(name, &["city", "town"]) {
        let (a, b) = data::lengths(data::CITIES);
        out.push(text(
            choice(data::CITIES),
            a,
            b,
            false,
            "a city, from its name",
        ));
    } else if has(name, &["country_code", "iso_code"]) {
        out.push(text(
            choice(data::COUNTRY_CODES),
            2,
            2,
            false,
            "a country code, from its name",
        ));
    } else if has(name, &["country", "country_name", "nationality"]) {
        let (a, b) = data::lengths(data::COUNTRIES);
        out.push(text(
            choice(data::COUNTRIES),
            a,
            b,
            false,
            "a country, from its name",
        ));
        out.push(text(
            choice(data::COUNTRY_CODES),
            2,
            2,
            false,
            "a country code, from its name and length",
        ));
    } else if has(
        name,
        &[
            "url", "website", "homepage", "link", "avatar", "image", "photo", "picture", "logo",
            "uri", "href",
        ],
    ) {
        out.push(text(
            format!(
                "'https://example.com/{{{}}}/{{int(1, 99999)}}'",
                choice(data::NOUNS)
            ),
            22 + nmin,
            26 + nmax,
            true,
            "a URL, from its name",
        ));
    } else if has(name, &["slug", "permalink"]) {
        out.push(text(
            format!(
                "'{{{}}}-{{{}}}-{{int(1, 99999)}}'",
                choice(data::NOUNS),
                choice(data::NOUNS)
            ),
            2 * nmin + 3,
            2 * nmax + 7,
            true,
            "a slug, from its name",
        ));
    } else if has(
        name,
        &[
            "address",
            "street",
            "address1",
            "address_line1",
            "address_line_1",
            "line1",
        ],
    ) {
        let (a, b) = data::lengths(data::STREETS);
        out.push(text(
            format!("'{{int(1, 9999)}} {{{}}}'", choice(data::STREETS)),
            a + 2,
            b + 5,
            false,
            "a street address, from its name",
        ));
    } else if has(
        name,
        &["zip", "zipcode", "zip_code", "postal_code", "postcode"],
    ) {
        out.push(text(
            "'{int(10000, 99999)}'".into(),
            5,
            5,
            true,
            "a postal code, from its name",
        ));
    } else if has(name, &["state", "region", "province", "district"]) {
        out.push(text(
            choice(&["North", "South", "East", "West", "Central"]),
            4,
            7,
            false,
            "a region, from its name",
        ));
    } else if name.contains("password")
        || has(
            name,
            &[
                "token", "secret", "digest", "hash", "salt", "api_key", "key",
            ],
        )
    {
        out.push(text(
            "'$2b$12$example{int(100000000, 999999999)}'".into(),
            23,
            23,
            true,
            "a placeholder secret, from its name (never a real credential)",
        ));
    } else if has(name, &["color", "colour"]) {
        let (a, b) = data::lengths(data::COLORS);
        out.push(text(
            choice(data::COLORS),
            a,
            b,
            false,
            "a color, from its name",
        ));
    } else if has(name, &["currency", "currency_code"]) {
        out.push(text(
            choice(&["USD", "EUR", "GBP", "JPY", "CAD"]),
            3,
            3,
            false,
            "a currency, from its name",
        ));
    } else if has(name, &["locale", "language", "lang", "language_code"]) {
        out.push(text(
            choice(&["en", "fr", "de", "es", "ja"]),
            2,
            2,
            false,
            "a language, from its name",
        ));
    } else if has(name, &["status", "state"]) {
        out.push(text(
            choice(&["active", "pending", "inactive"]),
            6,
            8,
            false,
            "a status, from its name",
        ));
    } else if has(name, &["role"]) {
        out.push(text(
            choice(&["member", "admin", "owner"]),
            5,
            6,
            false,
            "a role, from its name",
        ));
    } else if has(name, &["ip", "ip_address", "remote_ip", "last_ip"]) {
        out.push(text(
            "'192.0.2.{int(1, 254)}'".into(),
            9,
            11,
            false,
            "an IP address, from its name",
        ));
    } else if has(
        name,
        &[
            "description",
            "body",
            "content",
            "text",
            "bio",
            "summary",
            "notes",
            "note",
            "comment",
            "message",
            "about",
            "details",
            "excerpt",
            "caption",
            "review",
            "answer",
            "question",
        ],
    ) {
        out.push(text(
            format!(
                "'{{{}}} {{{}}} {{{}}} the {{lower({})}} {{{}}}.'",
                choice(data::ADJECTIVES),
                choice(data::NOUNS),
                choice(data::VERBS),
                choice(data::ADJECTIVES),
                choice(data::NOUNS)
            ),
            2 * amin + 2 * nmin + 11,
            2 * amax + 2 * nmax + 13,
            false,
            "a sentence, from its name",
        ));
    } else if has(
        name,
        &[
            "title", "name", "subject", "headline", "label", "heading", "tag",
        ],
    ) {
        out.push(text(
            title.clone(),
            title_len.0,
            title_len.1,
            false,
            "a title, from its name",
        ));
    } else if has(
        name,
        &[
            "code",
            "sku",
            "reference",
            "ref",
            "number",
            "isbn",
            "serial",
        ],
    ) {
        out.push(text(
            "'{upper(choice('ab', 'cd', 'ef', 'gh', 'kl'))}-{int(10000, 99999)}'".into(),
            8,
            8,
            true,
            "a code, from its name",
        ));
    }
    out.push(text(
        title,
        title_len.0,
        title_len.1,
        false,
        "words: nothing in its name says more",
    ));
    out
}

/// The generator of a plain text column: the first candidate that fits its length and checks;
/// a number suffix where it must be unique; digits where nothing else fits.
fn text_column(column: &Column, table: &str, limits: &Limits, unique: bool) -> Pick {
    // A domain named for what it holds (`email`) says as much as a column's name.
    let name = match column.domain.as_deref() {
        Some(d) if d.to_lowercase().contains("email") => "email".to_string(),
        _ => column.name.to_lowercase(),
    };
    let limit = char_limit(column).into_iter().chain(limits.max_len).min();
    let min_len = limits.min_len.unwrap_or(0);
    for mut t in text_candidates(&name, table) {
        if unique && !t.varied {
            t.expr = with_number(&t.expr);
            t.max += 7;
            t.min += 2;
            t.varied = true;
        }
        if limit.is_none_or(|l| t.max <= l) && t.min >= min_len {
            return Pick {
                generator: as_choice(&t.expr).unwrap_or(Gen::Expr(t.expr)),
                why: format!("{}{}", t.why, if unique { "; unique" } else { "" }),
            };
        }
    }
    // Nothing fits the length: digits, exactly as many as allowed (at most 9).
    let width = limit.unwrap_or(9).clamp(1, 9).max(min_len.min(9));
    let low = if width == 1 {
        0
    } else {
        10i64.pow(width as u32 - 1)
    };
    Pick {
        generator: Gen::Expr(format!("'{{int({low}, {})}}'", 10i64.pow(width as u32) - 1)),
        why: format!("{width} digits: the longest value its length allows"),
    }
}

/// `choice('a', 'b')` alone reads better as `gen = "choice", values = ["a", "b"]`.
fn as_choice(expr: &str) -> Option<Gen> {
    let inner = expr.strip_prefix("choice(")?.strip_suffix(')')?;
    if inner.contains(['{', '(']) {
        return None;
    }
    let values = inner
        .split(", ")
        .map(|v| v.trim_matches('\'').to_string())
        .collect();
    Some(Gen::Choice { values })
}

/// `expr` with a number after it, so that a unique column has room for as many rows as needed.
fn with_number(expr: &str) -> String {
    match expr.strip_suffix('\'') {
        Some(template) if expr.starts_with('\'') => format!("{template} {{int(1, 999999)}}'"),
        _ => format!("'{{{expr}}} {{int(1, 999999)}}'"),
    }
}

fn int_range_of(base: &str) -> Option<(i64, i64)> {
    match base {
        "int2" => Some((i16::MIN as i64, i16::MAX as i64)),
        "int4" => Some((i32::MIN as i64, i32::MAX as i64)),
        "int8" => Some((i64::MIN, i64::MAX)),
        _ => None,
    }
}

/// A number range from the column's name (a unit suffix aside: `weight_kg` is a weight).
fn number_range(name: &str) -> (f64, f64, &'static str) {
    const UNITS: &[&str] = &[
        "_kg", "_g", "_lb", "_cm", "_mm", "_m", "_km", "_usd", "_eur", "_gbp",
    ];
    let name = UNITS
        .iter()
        .find_map(|u| name.strip_suffix(u))
        .unwrap_or(name);
    if has(name, &["age"]) {
        (18.0, 90.0, "an age")
    } else if has(name, &["year", "release_year"]) {
        (1970.0, 2025.0, "a year")
    } else if has(name, &["rating", "stars"]) {
        (1.0, 5.0, "a rating")
    } else if has(name, &["score", "percent", "percentage", "pct", "progress"]) {
        (0.0, 100.0, "a score or percentage")
    } else if has(
        name,
        &[
            "quantity",
            "qty",
            "count",
            "amount_count",
            "copies",
            "seats",
            "guests",
            "nights",
        ],
    ) || name.starts_with("num_")
    {
        (1.0, 10.0, "a small count")
    } else if has(
        name,
        &[
            "position",
            "sort_order",
            "order",
            "rank",
            "priority",
            "sequence",
            "seq",
            "index",
            "ordinal",
            "sort",
        ],
    ) {
        (1.0, 100.0, "a position")
    } else if has(name, &["minutes", "duration", "length", "runtime"]) {
        (15.0, 180.0, "a duration")
    } else if has(name, &["seconds"]) {
        (1.0, 3600.0, "a duration in seconds")
    } else if has(name, &["cents"]) {
        (100.0, 100_000.0, "an amount in cents")
    } else if has(
        name,
        &[
            "price",
            "amount",
            "cost",
            "total",
            "fee",
            "balance",
            "subtotal",
            "tax",
            "rate",
            "charge",
            "payment",
            "rental_rate",
            "replacement_cost",
        ],
    ) {
        (1.0, 500.0, "an amount of money")
    } else if has(name, &["salary", "income"]) {
        (30_000.0, 150_000.0, "a salary")
    } else if has(name, &["latitude", "lat"]) {
        (-90.0, 90.0, "a latitude")
    } else if has(name, &["longitude", "lng", "lon", "long"]) {
        (-180.0, 180.0, "a longitude")
    } else if has(name, &["weight", "height", "width", "depth", "size"]) {
        (1.0, 100.0, "a measure")
    } else if has(
        name,
        &["stock", "inventory", "views", "likes", "votes", "points"],
    ) {
        (0.0, 500.0, "a tally")
    } else {
        (1.0, 1000.0, "a number")
    }
}

/// Narrows `(lo, hi)` to the checks' bounds (the checks win where the name's range is outside
/// them), with `step` the smallest difference between two values.
fn narrow(lo: f64, hi: f64, limits: &Limits, step: f64) -> (f64, f64) {
    let low = limits
        .low
        .map(|(v, strict)| if strict { v + step } else { v });
    let high = limits
        .high
        .map(|(v, strict)| if strict { v - step } else { v });
    let (mut a, mut b) = (lo, hi);
    if let Some(l) = low {
        a = a.max(l);
    }
    if let Some(h) = high {
        b = b.min(h);
    }
    if a > b {
        // The name's guess is outside what the checks allow: the checks' range.
        a = low.unwrap_or(b - (hi - lo));
        b = high.unwrap_or(a + (hi - lo));
    }
    (a, b)
}

fn decimal_text(v: f64, scale: u32) -> String {
    format!("{:.*}", scale as usize, v)
}

/// The generator of a column that is no key and no reference. `Err`: what cannot be generated.
pub fn plain(column: &Column, table: &str, limits: &Limits, unique: bool) -> Result<Pick, String> {
    let name = column.name.to_lowercase();
    if let Some(values) = &limits.one_of {
        let allowed: Vec<String> = if column.enum_labels.is_empty() {
            values.clone()
        } else {
            values
                .iter()
                .filter(|v| column.enum_labels.contains(v))
                .cloned()
                .collect()
        };
        return Ok(Pick {
            generator: Gen::Choice { values: allowed },
            why: "the values its CHECK allows".into(),
        });
    }
    if column.is_array {
        let element = match column.base.as_str() {
            "text" | "varchar" | "citext" | "bpchar" => Some(choice(data::NOUNS)),
            "int2" | "int4" | "int8" | "numeric" => Some("int(1, 100)".into()),
            _ if column.kind == 'e' => {
                let labels: Vec<&str> = column.enum_labels.iter().map(String::as_str).collect();
                Some(choice(&labels))
            }
            _ => None,
        };
        return Ok(match element {
            Some(e) => Pick {
                generator: Gen::Expr(format!("'{{{{{{{e}}},{{{e}}}}}}}'")),
                why: format!("an array of two {}", column.base),
            },
            None => Pick {
                generator: Gen::Expr("'{{}}'".into()),
                why: format!(
                    "an empty array: dbtool has no generator for {} elements",
                    column.base
                ),
            },
        });
    }
    if column.kind == 'e' {
        return Ok(Pick {
            generator: Gen::Choice {
                values: column.enum_labels.clone(),
            },
            why: "its enum's labels".into(),
        });
    }
    let expr = |e: &str, why: &str| {
        Ok(Pick {
            generator: Gen::Expr(e.to_string()),
            why: why.to_string(),
        })
    };
    match column.base.as_str() {
        "text" | "varchar" | "bpchar" | "citext" | "name" => {
            Ok(text_column(column, table, limits, unique))
        }
        "int2" | "int4" | "int8" => {
            let (lo, hi, why) = number_range(&name);
            let (type_lo, type_hi) = int_range_of(&column.base).unwrap_or((0, 0));
            let hi = if unique { hi.max(1_000_000.0) } else { hi };
            let (a, b) = narrow(lo, hi, limits, 1.0);
            let (a, b) = (
                (a.ceil() as i64).clamp(type_lo, type_hi),
                (b.floor() as i64).clamp(type_lo, type_hi),
            );
            Ok(Pick {
                generator: Gen::Int {
                    min: a,
                    max: b.max(a),
                },
                why: format!("{why}, from its name"),
            })
        }
        "numeric" | "float4" | "float8" | "money" => {
            let (lo, hi, why) = number_range(&name);
            let scale = match numeric_digits(column) {
                Some((_, s)) => s,
                None if why.contains("itude") => 6,
                None => 2,
            };
            let step = 10f64.powi(-(scale as i32));
            let (lo, hi) = match numeric_digits(column) {
                Some((p, s)) => {
                    let limit = 10f64.powi((p - s) as i32) - step;
                    (lo.max(-limit), hi.min(limit))
                }
                None => (lo, hi),
            };
            let (a, b) = narrow(lo, hi, limits, step);
            Ok(Pick {
                generator: Gen::Decimal {
                    min: decimal_text(a, scale),
                    max: decimal_text(b.max(a), scale),
                    scale,
                },
                why: format!("{why}, from its name; {scale} decimal places"),
            })
        }
        "bool" => {
            let p = if has(
                &name,
                &[
                    "deleted",
                    "archived",
                    "banned",
                    "blocked",
                    "is_deleted",
                    "locked",
                    "suspended",
                ],
            ) {
                0.05
            } else if has(
                &name,
                &[
                    "active",
                    "enabled",
                    "is_active",
                    "visible",
                    "published",
                    "verified",
                    "confirmed",
                ],
            ) {
                0.8
            } else {
                0.5
            };
            Ok(Pick {
                generator: Gen::Bool { p },
                why: format!("true in {}% of rows", (p * 100.0) as i64),
            })
        }
        "date" => {
            let (from, to, why) = if has(
                &name,
                &[
                    "birth_date",
                    "birthday",
                    "dob",
                    "date_of_birth",
                    "born_on",
                    "birthdate",
                ],
            ) {
                (
                    "-29200d",
                    "-6570d",
                    "a birth date: 18 to 80 years before the epoch",
                )
            } else if has(
                &name,
                &[
                    "due",
                    "due_date",
                    "expires_on",
                    "end_date",
                    "valid_until",
                    "expiry_date",
                    "ends_on",
                ],
            ) {
                ("+1d", "+365d", "a date in the year after the epoch")
            } else {
                ("-730d", "0d", "a date in the two years before the epoch")
            };
            Ok(Pick {
                generator: Gen::Date {
                    from: from.into(),
                    to: to.into(),
                },
                why: why.into(),
            })
        }
        "timestamp" | "timestamptz" => {
            let (from, to, why) = if has(
                &name,
                &[
                    "expires_at",
                    "ends_at",
                    "due_at",
                    "valid_until",
                    "expiry",
                    "end_time",
                    "scheduled_at",
                    "starts_at",
                ],
            ) {
                ("+1d", "+365d", "in the year after the epoch, from its name")
            } else if has(
                &name,
                &[
                    "last_login_at",
                    "last_seen_at",
                    "last_sign_in_at",
                    "current_sign_in_at",
                    "last_active_at",
                ],
            ) {
                ("-30d", "0d", "in the month before the epoch, from its name")
            } else if name.ends_with("_at")
                || name.ends_with("_on")
                || name.ends_with("_date")
                || name.ends_with("_time")
                || name.starts_with("date")
                || name.contains("time")
            {
                ("-730d", "-1d", "in the two years before the epoch")
            } else {
                ("-365d", "+30d", "around the epoch")
            };
            Ok(Pick {
                generator: Gen::Timestamp {
                    from: from.into(),
                    to: to.into(),
                },
                why: why.into(),
            })
        }
        "time" | "timetz" => expr(
            "'{int(8, 17)}:{choice('00', '15', '30', '45')}:00'",
            "a time of day in working hours",
        ),
        "interval" => expr("'{int(5, 240)} minutes'", "5 minutes to 4 hours"),
        "uuid" => Ok(Pick {
            generator: Gen::Uuid,
            why: "a random UUID from the row's own stream".into(),
        }),
        "json" | "jsonb" => {
            if has(&name, &["tags", "labels", "keywords", "categories"]) {
                expr(
                    &format!("[{}, {}]", choice(data::NOUNS), choice(data::NOUNS)),
                    "a JSON array of two words, from its name",
                )
            } else {
                expr(
                    "{ 'source': choice('web', 'ios', 'android'), 'score': int(1, 100) }",
                    "a small JSON object: edit its keys to what the application reads",
                )
            }
        }
        "xid" | "xid8" => expr(
            "'{int(1000, 9999999)}'",
            "a transaction id (the rows' own, not the server's)",
        ),
        "pg_snapshot" | "txid_snapshot" => expr(
            "'{int(1000, 4999)}:{int(5000, 9999)}:'",
            "a snapshot (xmin:xmax:, none in progress; the rows' own, not the server's)",
        ),
        "inet" => expr(
            "'10.{int(0, 255)}.{int(0, 255)}.{int(1, 254)}'",
            "a private IPv4 address",
        ),
        "cidr" => expr(
            "'10.{int(0, 255)}.{int(0, 255)}.0/24'",
            "a private /24 network",
        ),
        "macaddr" => expr(
            "'08:00:2b:{int(10, 99)}:{int(10, 99)}:{int(10, 99)}'",
            "a MAC address",
        ),
        "bytea" => expr(&choice(data::NOUNS), "a word's bytes"),
        "tsvector" => expr(
            &format!("'{{{}}} {{{}}}'", choice(data::NOUNS), choice(data::NOUNS)),
            "two words",
        ),
        "xml" => expr(
            &format!("'<note>{{{}}}</note>'", choice(data::NOUNS)),
            "a small XML element",
        ),
        "point" => expr(
            "'({decimal(-90, 90)},{decimal(-180, 180)})'",
            "a point (latitude, longitude)",
        ),
        "int4range" | "int8range" => expr(
            "'[{int(1, 50)},{int(51, 100)})'",
            "a range of numbers: lower bound below the upper",
        ),
        "numrange" => expr(
            "'[{decimal(1, 50)},{decimal(51, 100)})'",
            "a range of numbers: lower bound below the upper",
        ),
        "daterange" => expr(
            "'[{date(now - days(int(30, 365)))},{date(now - days(int(0, 29)))})'",
            "a range of dates before the epoch",
        ),
        "tsrange" | "tstzrange" => expr(
            "'[{now - days(int(30, 365))},{now - days(int(0, 29))})'",
            "a range of times before the epoch",
        ),
        "bit" | "varbit" => {
            let n = if column.typmod > 0 {
                column.typmod as usize
            } else {
                8
            }
            .min(64);
            expr(
                &format!("'{}'", "{choice('0', '1')}".repeat(n)),
                "random bits, as many as the type holds",
            )
        }
        other if !column.not_null || limits.not_null => Ok(Pick {
            generator: Gen::Null,
            why: format!(
                "NULL: dbtool has no generator for the type {other} ({})",
                column.type_name
            ),
        }),
        other => Err(format!(
            "NOT NULL of type {} ({other}), for which dbtool has no generator",
            column.type_name
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unique_template_gets_a_number_inside_its_quotes() {
        assert_eq!(with_number("'{a} {b}'"), "'{a} {b} {int(1, 999999)}'");
        assert_eq!(
            with_number("choice('x', 'y')"),
            "'{choice('x', 'y')} {int(1, 999999)}'"
        );
        assert_eq!(
            as_choice("choice('New York', 'Oslo')"),
            Some(Gen::Choice {
                values: vec!["New York".into(), "Oslo".into()]
            })
        );
        assert_eq!(as_choice("'{choice('a')} b'"), None);
    }
}
