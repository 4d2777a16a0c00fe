//! The expression language of seed.toml: `expr`, `when` and the `{...}` parts of string
//! templates. A small language of our own rather than evalexpr or rhai, because:
//! - money must be exact: numbers are i64 or `rust_decimal::Decimal`, never f64 (evalexpr has only
//!   i64/f64; rhai needs its `decimal` feature and a `Dynamic` per value);
//! - names resolve once, at load, to column indices and to the ref/parent hops of a path, so an
//!   evaluation reads cells of the row it runs in and recomputes related rows from their keys,
//!   with no per-evaluation context map to fill (evalexpr's `HashMapContext`, rhai's `Scope`);
//! - random functions draw from the cell's own stream, which we pass in, so purity holds.
//!
//! Grammar, loosest first: `or`, `and`, `not`, comparisons (`== = != < <= > >=`), `+ -`,
//! `* / %`, unary `-`, then literals (`12`, `0.08`, `'text {expr|lower}'`, `true`, `null`,
//! `{ 'key': expr }`, `[expr, ...]`), names and paths (`status`, `service_id.price`,
//! `parent.visit_id.service_id.duration_minutes`) and calls (`round(x, 2)`).

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt::Write as _;
use std::path::Path;

use rust_decimal::{Decimal, RoundingStrategy};

use super::{Gen, Source, TableSpec};

/// A typed value. A column's text in COPY is `Value::text`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Dec(Decimal),
    Text(String),
    /// Seconds since 1970-01-01 UTC.
    Timestamp(i64),
    /// Days since 1970-01-01.
    Date(i64),
    /// Seconds.
    Duration(i64),
    /// Serialized JSON.
    Json(String),
}

impl Value {
    /// The cell's text as COPY sends it; `None` for NULL.
    pub fn text(&self) -> Option<String> {
        Some(match self {
            Value::Null => return None,
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Dec(d) => d.to_string(),
            Value::Text(s) | Value::Json(s) => s.clone(),
            Value::Timestamp(t) => crate::spec::calendar::format_timestamp(*t),
            Value::Date(d) => crate::spec::calendar::format_date(*d),
            Value::Duration(s) => format!("{s} seconds"),
        })
    }

    /// `text`, borrowed where the value is text already.
    pub fn text_ref(&self) -> Option<Cow<'_, str>> {
        match self {
            Value::Text(s) | Value::Json(s) => Some(Cow::Borrowed(s)),
            other => other.text().map(Cow::Owned),
        }
    }

    /// `text`, moving the value's own string where it is text already.
    pub fn into_text(self) -> Option<String> {
        match self {
            Value::Text(s) | Value::Json(s) => Some(s),
            other => other.text(),
        }
    }

    /// The value as a message shows it: text quoted, a timestamp or date as a calendar time.
    pub fn shown(&self) -> String {
        match self {
            Value::Null => "null".to_string(),
            Value::Text(s) => format!("{s:?}"),
            // Past any calendar PostgreSQL knows (and the calendar arithmetic's range).
            Value::Date(d) if d.unsigned_abs() > 1 << 32 => format!("{d} days after 1970-01-01"),
            Value::Timestamp(t) if t.unsigned_abs() > 1 << 48 => {
                format!("{t} seconds after 1970-01-01 00:00:00")
            }
            v => v.text().unwrap_or_default(),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Dec(_) => "a decimal",
            Value::Text(_) => "text",
            Value::Timestamp(_) => "a timestamp",
            Value::Date(_) => "a date",
            Value::Duration(_) => "a duration",
            Value::Json(_) => "json",
        }
    }

    /// A number, reading numeric text (a `choice` of "30", "45" is text) as one.
    fn number(&self) -> Option<Num> {
        match self {
            Value::Int(i) => Some(Num::Int(*i)),
            Value::Dec(d) => Some(Num::Dec(*d)),
            // Text without a digit is no number (and its failed parse would allocate an error).
            Value::Text(s) if s.bytes().any(|b| b.is_ascii_digit()) => s
                .parse::<i64>()
                .map(Num::Int)
                .ok()
                .or_else(|| s.parse::<Decimal>().ok().map(Num::Dec)),
            _ => None,
        }
    }

    fn is_number(&self) -> bool {
        matches!(self, Value::Int(_) | Value::Dec(_))
    }

    pub fn truthy(&self) -> Result<bool, String> {
        match self {
            Value::Bool(b) => Ok(*b),
            Value::Null => Ok(false),
            Value::Text(s) if s == "true" || s == "false" => Ok(s == "true"),
            other => Err(format!(
                "a condition must be a boolean, not {}",
                other.type_name()
            )),
        }
    }

    pub fn integer(&self) -> Result<i64, String> {
        match self.number() {
            Some(Num::Int(i)) => Ok(i),
            Some(Num::Dec(d)) if d.fract().is_zero() => i64::try_from(d).map_err(|e| e.to_string()),
            _ => Err(format!("expected an integer, got {}", self.type_name())),
        }
    }

    pub fn decimal(&self) -> Result<Decimal, String> {
        match self.number() {
            Some(n) => Ok(n.dec()),
            None => Err(format!("expected a number, got {}", self.type_name())),
        }
    }

    /// JSON text of a value inside an object or array.
    pub fn json(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Dec(d) => {
                let _ = write!(out, "{d}");
            }
            Value::Json(j) => out.push_str(j),
            other => {
                let text = other.text().unwrap_or_default();
                out.push_str(&serde_json::Value::String(text).to_string());
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Num {
    Int(i64),
    Dec(Decimal),
}

impl Num {
    fn dec(self) -> Decimal {
        match self {
            Num::Int(i) => Decimal::from(i),
            Num::Dec(d) => d,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

impl BinOp {
    /// As written in an expression.
    fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::And => "and",
            BinOp::Or => "or",
        }
    }

    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    Keep,
    Lower,
    Upper,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agg {
    Sum,
    Count,
    Min,
    Max,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Round,
    Floor,
    Ceil,
    Abs,
    Least,
    Greatest,
    If,
    Coalesce,
    Lower,
    Upper,
    Seconds,
    Minutes,
    Hours,
    Days,
    Weeks,
    Date,
    /// Random, from the cell's stream: int(min, max), decimal(min, max), bool(p), choice(a, ...).
    RandInt,
    RandDecimal,
    RandBool,
    RandChoice,
    /// `a in (b, c, ...)`: whether a equals any of the others.
    In,
    Replace,
    Slug,
    Substr,
    ConcatWs,
    SplitPart,
    Lpad,
    DateTrunc,
    Extract,
    DaysBetween,
    Timestamp,
}

/// Where a path starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// At this row: the first hop is one of its ref columns.
    Row,
    /// At the per-parent parent row.
    Parent,
}

#[derive(Debug, Clone)]
pub enum Expr {
    Lit(Value),
    /// Unresolved until `resolve`: a column or a dotted path.
    Name(Vec<String>),
    /// Unresolved until `resolve`: a function or aggregate call.
    Call(String, Vec<Expr>),
    Column(usize),
    /// Follows ref/parent columns (`hops`, each a column of the table reached so far) and reads
    /// `column` of the row reached. `tables` are the tables reached after each hop.
    Path {
        start: Start,
        hops: Vec<usize>,
        tables: Vec<usize>,
        column: usize,
    },
    Template(Vec<(Expr, Case)>),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Func(Func, Vec<Expr>),
    /// A random line of a data file.
    Pick(Vec<String>),
    /// sum/count/min/max of `of` over this row's children in the per-parent `table`.
    Aggregate {
        agg: Agg,
        table: usize,
        of: Option<Box<Expr>>,
    },
    Object(Vec<(String, Expr)>),
    Array(Vec<Expr>),
    Now,
    Today,
    /// `prev.x`: column x of the previous sibling (the row of the same parent with the ordinal
    /// before this one); NULL for a parent's first child.
    Prev(usize),
    /// Inside a `ref`'s `where`: evaluated in the referencing row (`parent.x`, `this.x`), not
    /// in the candidate row.
    Outer(Box<Expr>),
}

// ---------------------------------------------------------------------------------------------
// Lexing and parsing

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Int(i64),
    Dec(Decimal),
    Str(Vec<StrPart>),
    Ident(String),
    Sym(&'static str),
}

#[derive(Debug, Clone, PartialEq)]
enum StrPart {
    Text(String),
    Expr(String, Case),
}

const SYMBOLS: &[&str] = &[
    "==", "!=", "<=", ">=", "(", ")", ",", ".", "[", "]", "{", "}", ":", "+", "-", "*", "/", "%",
    "<", ">", "=",
];

fn lex(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let mut decimal = false;
            if i + 1 < chars.len() && chars[i] == '.' && chars[i + 1].is_ascii_digit() {
                decimal = true;
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
            }
            let s: String = chars[start..i].iter().collect();
            tokens.push(if decimal {
                Token::Dec(s.parse().map_err(|e| format!("number {s}: {e}"))?)
            } else {
                Token::Int(s.parse().map_err(|e| format!("number {s}: {e}"))?)
            });
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(Token::Ident(chars[start..i].iter().collect()));
        } else if c == '\'' || c == '"' {
            let (parts, next) = lex_string(&chars, i)?;
            tokens.push(Token::Str(parts));
            i = next;
        } else if let Some(sym) = SYMBOLS.iter().find(|s| {
            let s: Vec<char> = s.chars().collect();
            chars[i..].starts_with(&s)
        }) {
            tokens.push(Token::Sym(sym));
            i += sym.len();
        } else {
            return Err(format!("unexpected character {c:?}"));
        }
    }
    Ok(tokens)
}

/// A quoted string from `chars[start]`; `{expr}` and `{expr|lower}` inside it are template parts,
/// `{{`, `}}` and a doubled quote are literal.
fn lex_string(chars: &[char], start: usize) -> Result<(Vec<StrPart>, usize), String> {
    let quote = chars[start];
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut i = start + 1;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err("unclosed string".into());
        };
        i += 1;
        match c {
            c if c == quote => {
                if chars.get(i) == Some(&quote) {
                    text.push(quote);
                    i += 1;
                } else {
                    break;
                }
            }
            '{' if chars.get(i) == Some(&'{') => {
                text.push('{');
                i += 1;
            }
            '}' if chars.get(i) == Some(&'}') => {
                text.push('}');
                i += 1;
            }
            '{' => {
                // Up to the matching brace, skipping quoted text and nested braces.
                let mut depth = 1;
                let mut inner = String::new();
                let mut in_quote: Option<char> = None;
                loop {
                    let Some(&c) = chars.get(i) else {
                        return Err("unclosed { in a string".into());
                    };
                    i += 1;
                    match (in_quote, c) {
                        (Some(q), c) if c == q => in_quote = None,
                        (Some(_), _) => {}
                        (None, '\'' | '"') if c != quote => in_quote = Some(c),
                        (None, '{') => depth += 1,
                        (None, '}') => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    inner.push(c);
                }
                let (expr, case) = match inner.rsplit_once('|') {
                    Some((e, f)) if f.trim() == "lower" => (e.to_string(), Case::Lower),
                    Some((e, f)) if f.trim() == "upper" => (e.to_string(), Case::Upper),
                    Some((_, f)) => {
                        return Err(format!(
                            "unknown filter |{} (use |lower or |upper)",
                            f.trim()
                        ));
                    }
                    None => (inner, Case::Keep),
                };
                if !text.is_empty() {
                    parts.push(StrPart::Text(std::mem::take(&mut text)));
                }
                parts.push(StrPart::Expr(expr, case));
            }
            '}' => return Err("unmatched } in a string (write }} for a brace)".into()),
            c => text.push(c),
        }
    }
    if !text.is_empty() || parts.is_empty() {
        parts.push(StrPart::Text(text));
    }
    Ok((parts, i))
}

/// How deeply an expression may nest (parentheses, calls, operators, templates): far beyond any
/// expression a person writes, and far below what the recursive parser, resolver and evaluator
/// can take on a generator thread's stack. Deeper is an error, never a stack overflow.
pub const MAX_DEPTH: usize = 100;

fn too_deep() -> String {
    format!(
        "the expression nests more than {MAX_DEPTH} levels deep (parentheses, calls, operators); split it into columns"
    )
}

pub fn parse(text: &str) -> Result<Expr, String> {
    parse_at(text, 0)
}

/// `parse` of an expression that sits `nesting` levels deep (a template's part).
fn parse_at(text: &str, nesting: usize) -> Result<Expr, String> {
    parse_measured(text, nesting).map(|(e, _)| e)
}

fn describe(token: &Token) -> String {
    match token {
        Token::Int(i) => i.to_string(),
        Token::Dec(d) => d.to_string(),
        Token::Str(_) => "a string".into(),
        Token::Ident(s) => s.clone(),
        Token::Sym(s) => format!("`{s}`"),
    }
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    /// How many `expr` calls are open: bounds the parser's own recursion.
    nesting: usize,
    /// The depth of the tree the last `expr`, `unary` or `primary` returned: bounds the
    /// recursion of everything that walks the tree afterwards (a long chain `1 + 1 + ...` is
    /// built in a loop, but is as deep as it is long).
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn eat(&mut self, sym: &str) -> bool {
        if matches!(self.peek(), Some(Token::Sym(s)) if *s == sym) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, sym: &str) -> Result<(), String> {
        if self.eat(sym) {
            Ok(())
        } else {
            Err(match self.peek() {
                Some(t) => format!("expected `{sym}`, found {}", describe(t)),
                None => format!("expected `{sym}` at the end"),
            })
        }
    }

    fn binary_op(&self) -> Option<(BinOp, u8)> {
        Some(match self.peek()? {
            Token::Ident(s) if s == "or" => (BinOp::Or, 1),
            Token::Ident(s) if s == "and" => (BinOp::And, 2),
            Token::Sym("==" | "=") => (BinOp::Eq, 4),
            Token::Sym("!=") => (BinOp::Ne, 4),
            Token::Sym("<") => (BinOp::Lt, 4),
            Token::Sym("<=") => (BinOp::Le, 4),
            Token::Sym(">") => (BinOp::Gt, 4),
            Token::Sym(">=") => (BinOp::Ge, 4),
            Token::Sym("+") => (BinOp::Add, 5),
            Token::Sym("-") => (BinOp::Sub, 5),
            Token::Sym("*") => (BinOp::Mul, 6),
            Token::Sym("/") => (BinOp::Div, 6),
            Token::Sym("%") => (BinOp::Rem, 6),
            _ => return None,
        })
    }

    /// Precedence climbing: operators binding tighter than `min`.
    fn expr(&mut self, min: u8) -> Result<Expr, String> {
        self.nesting += 1;
        if self.nesting > MAX_DEPTH {
            return Err(too_deep());
        }
        let result = self.binary_chain(min);
        self.nesting -= 1;
        result
    }

    fn binary_chain(&mut self, min: u8) -> Result<Expr, String> {
        let mut left = self.unary()?;
        let mut depth = self.depth;
        loop {
            // `a in (b, c)` and `a not in (b, c)`, at the comparisons' precedence.
            let negated = matches!(self.peek(), Some(Token::Ident(s)) if s == "not")
                && matches!(self.tokens.get(self.at + 1), Some(Token::Ident(s)) if s == "in");
            if min < 4 && (negated || matches!(self.peek(), Some(Token::Ident(s)) if s == "in")) {
                self.at += if negated { 2 } else { 1 };
                self.expect("(")?;
                let mut args = vec![left];
                loop {
                    let item = self.expr(0)?;
                    depth = depth.max(self.depth);
                    args.push(item);
                    if self.eat(")") {
                        break;
                    }
                    self.expect(",")?;
                }
                depth += 1 + usize::from(negated);
                if depth > MAX_DEPTH {
                    return Err(too_deep());
                }
                left = Expr::Func(Func::In, args);
                if negated {
                    left = Expr::Not(Box::new(left));
                }
                continue;
            }
            let Some((op, prec)) = self.binary_op() else {
                break;
            };
            if prec <= min {
                break;
            }
            self.at += 1;
            let right = self.expr(prec)?;
            depth = depth.max(self.depth) + 1;
            if depth > MAX_DEPTH {
                return Err(too_deep());
            }
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
        self.depth = depth;
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.eat("-") {
            let inner = self.expr(6)?;
            return self.wrap(Expr::Neg(Box::new(inner)));
        }
        if matches!(self.peek(), Some(Token::Ident(s)) if s == "not") {
            self.at += 1;
            let inner = self.expr(3)?;
            return self.wrap(Expr::Not(Box::new(inner)));
        }
        self.primary()
    }

    /// One level above the expression just parsed.
    fn wrap(&mut self, e: Expr) -> Result<Expr, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(too_deep());
        }
        Ok(e)
    }

    /// A primary, with `depth` set to its tree's depth: one more than its deepest part.
    fn primary(&mut self) -> Result<Expr, String> {
        let start_nesting = self.nesting;
        let mut deepest = 0;
        let e = self.primary_parts(&mut deepest)?;
        debug_assert_eq!(start_nesting, self.nesting);
        self.depth = deepest + 1;
        if self.depth > MAX_DEPTH {
            return Err(too_deep());
        }
        Ok(e)
    }

    fn sub_expr(&mut self, deepest: &mut usize) -> Result<Expr, String> {
        let e = self.expr(0)?;
        *deepest = (*deepest).max(self.depth);
        Ok(e)
    }

    fn primary_parts(&mut self, deepest: &mut usize) -> Result<Expr, String> {
        let Some(token) = self.peek().cloned() else {
            return Err("the expression ends too early".into());
        };
        self.at += 1;
        Ok(match token {
            Token::Int(i) => Expr::Lit(Value::Int(i)),
            Token::Dec(d) => Expr::Lit(Value::Dec(d)),
            Token::Str(parts) => {
                let (e, depth) = string(parts, self.nesting)?;
                *deepest = depth;
                e
            }
            Token::Ident(name) => match name.as_str() {
                "true" => Expr::Lit(Value::Bool(true)),
                "false" => Expr::Lit(Value::Bool(false)),
                "null" => Expr::Lit(Value::Null),
                _ if self.eat("(") => {
                    let mut args = Vec::new();
                    if !self.eat(")") {
                        loop {
                            args.push(self.sub_expr(deepest)?);
                            if self.eat(")") {
                                break;
                            }
                            self.expect(",")?;
                        }
                    }
                    Expr::Call(name, args)
                }
                _ => {
                    let mut path = vec![name];
                    while self.eat(".") {
                        match self.peek().cloned() {
                            Some(Token::Ident(next)) => {
                                self.at += 1;
                                path.push(next);
                            }
                            _ => return Err("a `.` must be followed by a column name".into()),
                        }
                    }
                    Expr::Name(path)
                }
            },
            Token::Sym("(") => {
                let inner = self.sub_expr(deepest)?;
                self.expect(")")?;
                // Parentheses add no level to the tree.
                *deepest = deepest.saturating_sub(1);
                inner
            }
            Token::Sym("[") => {
                let mut items = Vec::new();
                if !self.eat("]") {
                    loop {
                        items.push(self.sub_expr(deepest)?);
                        if self.eat("]") {
                            break;
                        }
                        self.expect(",")?;
                    }
                }
                Expr::Array(items)
            }
            Token::Sym("{") => {
                let mut fields = Vec::new();
                if !self.eat("}") {
                    loop {
                        let key = match self.peek().cloned() {
                            Some(Token::Ident(k)) => k,
                            Some(Token::Str(parts)) => match parts.as_slice() {
                                [StrPart::Text(k)] => k.clone(),
                                _ => return Err("a JSON key is plain text".into()),
                            },
                            _ => return Err("expected a JSON key".into()),
                        };
                        self.at += 1;
                        self.expect(":")?;
                        fields.push((key, self.sub_expr(deepest)?));
                        if self.eat("}") {
                            break;
                        }
                        self.expect(",")?;
                    }
                }
                Expr::Object(fields)
            }
            other => return Err(format!("unexpected {}", describe(&other))),
        })
    }
}

/// A string literal or template, and the depth of its deepest part.
fn string(parts: Vec<StrPart>, nesting: usize) -> Result<(Expr, usize), String> {
    if let [StrPart::Text(t)] = parts.as_slice() {
        return Ok((Expr::Lit(Value::Text(t.clone())), 0));
    }
    let mut out = Vec::new();
    let mut deepest = 0;
    for part in parts {
        out.push(match part {
            StrPart::Text(t) => (Expr::Lit(Value::Text(t)), Case::Keep),
            StrPart::Expr(e, case) => {
                let (e, depth) = parse_measured(&e, nesting + 1)?;
                deepest = deepest.max(depth);
                (e, case)
            }
        });
    }
    Ok((Expr::Template(out), deepest))
}

/// `parse_at`, and the depth of the tree it returns.
fn parse_measured(text: &str, nesting: usize) -> Result<(Expr, usize), String> {
    if nesting > MAX_DEPTH {
        return Err(too_deep());
    }
    let tokens = lex(text)?;
    let mut parser = Parser {
        tokens,
        at: 0,
        nesting,
        depth: 0,
    };
    let expr = parser.expr(0)?;
    match parser.tokens.get(parser.at) {
        None => Ok((expr, parser.depth)),
        Some(t) => Err(format!(
            "unexpected {} after a complete expression",
            describe(t)
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Resolution: names -> columns and paths, calls -> functions and aggregates

/// What resolution needs to know about the spec.
pub struct Scope<'a> {
    pub tables: &'a [TableSpec],
    pub seeds_dir: &'a Path,
    pub files: &'a mut crate::files::ReadFiles,
}

impl Scope<'_> {
    fn column(&self, table: usize, name: &str) -> Result<usize, String> {
        let t = &self.tables[table];
        t.columns
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| {
                format!(
                    "{name} is not a column of {} (it has: {})",
                    t.name,
                    t.columns
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }

    /// The table whose row a column points to, which a path can follow: a ref, a parent, an
    /// expression that is itself a path to such a column, or a `when` whose branches point into
    /// the same table.
    fn target(&self, table: usize, column: usize, depth: u32) -> Result<usize, String> {
        let t = &self.tables[table];
        self.gen_target(table, &t.columns[column].generator, depth)
            .ok_or_else(|| {
                format!(
                    "{}.{} does not point to a row (a `ref`, a `parent`, or a path to one), so a path cannot follow it",
                    t.name, t.columns[column].name
                )
            })
    }

    fn gen_target(&self, table: usize, generator: &Gen, depth: u32) -> Option<usize> {
        if depth > 16 {
            return None;
        }
        match generator {
            Gen::Ref { table, .. } => Some(*table),
            Gen::Parent { .. } => match self.tables[table].source {
                Source::PerParent { parent, .. } => Some(parent),
                Source::Counted => None,
            },
            Gen::Expr { expr } => {
                let resolved;
                let path = match expr {
                    Expr::Name(names) if names.len() > 1 => {
                        resolved = self.path(names, table, depth + 1).ok()?;
                        &resolved
                    }
                    e => e,
                };
                let Expr::Path {
                    start,
                    tables,
                    column,
                    ..
                } = path
                else {
                    return None;
                };
                let last = match (tables.last(), start) {
                    (Some(t), _) => *t,
                    (None, Start::Parent) => match self.tables[table].source {
                        Source::PerParent { parent, .. } => parent,
                        Source::Counted => return None,
                    },
                    (None, Start::Row) => table,
                };
                self.gen_target(
                    last,
                    &self.tables[last].columns[*column].generator,
                    depth + 1,
                )
            }
            Gen::When {
                then, otherwise, ..
            } => {
                let t = self.gen_target(table, then, depth + 1)?;
                match otherwise.as_ref() {
                    Gen::Constant { value: None } => Some(t),
                    o => (self.gen_target(table, o, depth + 1)? == t).then_some(t),
                }
            }
            _ => None,
        }
    }

    /// Replaces names and calls in `expr` (evaluated in a row of `table`).
    pub fn resolve(&mut self, expr: &mut Expr, table: usize) -> Result<(), String> {
        match expr {
            Expr::Name(path) => {
                *expr = self.path(path, table, 0)?;
            }
            Expr::Call(name, args) => {
                *expr = self.call(name, std::mem::take(args), table)?;
            }
            Expr::Template(parts) => {
                for (e, _) in parts {
                    self.resolve(e, table)?;
                }
            }
            Expr::Neg(e) | Expr::Not(e) => self.resolve(e, table)?,
            Expr::Binary(_, a, b) => {
                self.resolve(a, table)?;
                self.resolve(b, table)?;
            }
            Expr::Func(_, args) | Expr::Array(args) => {
                for a in args {
                    self.resolve(a, table)?;
                }
            }
            Expr::Object(fields) => {
                for (_, e) in fields {
                    self.resolve(e, table)?;
                }
            }
            Expr::Aggregate {
                of: Some(e),
                table: child,
                ..
            } => {
                let child = *child;
                self.resolve(e, child)?;
            }
            Expr::Lit(_)
            | Expr::Column(_)
            | Expr::Path { .. }
            | Expr::Pick(_)
            | Expr::Aggregate { of: None, .. }
            | Expr::Now
            | Expr::Today
            | Expr::Outer(_)
            | Expr::Prev(_) => {}
        }
        Ok(())
    }

    /// In a `ref`'s `where` (unresolved), resolves the names that read the referencing row of
    /// `table` (`parent.x`, `this.x`) into `Expr::Outer`; whether there were any.
    pub fn resolve_outer(&mut self, expr: &mut Expr, table: usize) -> Result<bool, String> {
        Ok(match expr {
            Expr::Name(path) if path.len() > 1 && path[0] == "parent" => {
                let resolved = self.path(path, table, 0)?;
                *expr = Expr::Outer(Box::new(resolved));
                true
            }
            Expr::Name(path) if path.len() > 1 && path[0] == "this" => {
                let resolved = self.path(&path[1..], table, 0)?;
                *expr = Expr::Outer(Box::new(resolved));
                true
            }
            Expr::Call(_, args) | Expr::Func(_, args) | Expr::Array(args) => {
                let mut any = false;
                for a in args {
                    any |= self.resolve_outer(a, table)?;
                }
                any
            }
            Expr::Template(parts) => {
                let mut any = false;
                for (e, _) in parts {
                    any |= self.resolve_outer(e, table)?;
                }
                any
            }
            Expr::Object(fields) => {
                let mut any = false;
                for (_, e) in fields {
                    any |= self.resolve_outer(e, table)?;
                }
                any
            }
            Expr::Neg(e) | Expr::Not(e) => self.resolve_outer(e, table)?,
            Expr::Binary(_, a, b) => {
                let a = self.resolve_outer(a, table)?;
                self.resolve_outer(b, table)? || a
            }
            _ => false,
        })
    }

    fn path(&self, path: &[String], table: usize, depth: u32) -> Result<Expr, String> {
        if let [name] = path {
            return Ok(match name.as_str() {
                "now" => Expr::Now,
                "today" => Expr::Today,
                "parent" => return Err("`parent` is followed by a column: parent.id".into()),
                "prev" => return Err("`prev` is followed by a column: prev.start_time".into()),
                _ => Expr::Column(self.column(table, name)?),
            });
        }
        if path[0] == "prev" {
            return match (path, self.tables[table].source) {
                ([_, column], Source::PerParent { .. }) => {
                    Ok(Expr::Prev(self.column(table, column)?))
                }
                (_, Source::PerParent { .. }) => Err(
                    "prev.x reads column x of the previous sibling; it follows no further".into(),
                ),
                (_, Source::Counted) => Err(format!(
                    "prev.x reads the previous sibling under the same parent, but {} has no `per` parent",
                    self.tables[table].name
                )),
            };
        }
        let (start, mut current, rest) = if path[0] == "parent" {
            match self.tables[table].source {
                Source::PerParent { parent, .. } => (Start::Parent, parent, &path[1..]),
                Source::Counted => {
                    return Err(format!("{} has no `per` parent", self.tables[table].name));
                }
            }
        } else {
            (Start::Row, table, path)
        };
        let (last, hops_names) = rest.split_last().expect("two or more names");
        let mut hops = Vec::new();
        let mut tables = Vec::new();
        for name in hops_names {
            let c = self.column(current, name)?;
            current = self.target(current, c, depth)?;
            hops.push(c);
            tables.push(current);
        }
        Ok(Expr::Path {
            start,
            hops,
            tables,
            column: self.column(current, last)?,
        })
    }

    fn call(&mut self, name: &str, mut args: Vec<Expr>, table: usize) -> Result<Expr, String> {
        // sum/count/min/max(child_table, expr) aggregate over this row's children.
        let agg = match name {
            "sum" => Some(Agg::Sum),
            "count" => Some(Agg::Count),
            "min" => Some(Agg::Min),
            "max" => Some(Agg::Max),
            _ => None,
        };
        if let (Some(agg), Some(Expr::Name(first))) = (agg, args.first())
            && let [child_name] = first.as_slice()
            && let Some(child) = self.tables.iter().position(|t| t.name == *child_name)
        {
            match self.tables[child].source {
                Source::PerParent { parent, .. } if parent == table => {}
                _ => {
                    return Err(format!(
                        "{name}({child_name}, ...): {child_name} is not generated per row of {}",
                        self.tables[table].name
                    ));
                }
            }
            let of = match (agg, args.len()) {
                (Agg::Count, 1) => None,
                (Agg::Count, _) => return Err("count(children) takes only the table".into()),
                (_, 2) => {
                    let mut e = args.pop().expect("two");
                    self.resolve(&mut e, child)?;
                    Some(Box::new(e))
                }
                _ => return Err(format!("{name}(children, expression) takes two arguments")),
            };
            return Ok(Expr::Aggregate {
                agg,
                table: child,
                of,
            });
        }
        if name == "pick" {
            let [Expr::Lit(Value::Text(file))] = args.as_slice() else {
                return Err("pick('data/file.txt') takes one file name".into());
            };
            // Inside the seeds directory, like every data file the spec names.
            let values = super::values_file(self.seeds_dir, file, self.files)?;
            return Ok(Expr::Pick(values));
        }
        let (func, arity): (Func, &[usize]) = match name {
            "round" => (Func::Round, &[1, 2]),
            "floor" => (Func::Floor, &[1]),
            "ceil" => (Func::Ceil, &[1]),
            "abs" => (Func::Abs, &[1]),
            "min" | "least" => (Func::Least, &[]),
            "max" | "greatest" => (Func::Greatest, &[]),
            "if" => (Func::If, &[3]),
            "coalesce" => (Func::Coalesce, &[]),
            "lower" => (Func::Lower, &[1]),
            "upper" => (Func::Upper, &[1]),
            "seconds" => (Func::Seconds, &[1]),
            "minutes" => (Func::Minutes, &[1]),
            "hours" => (Func::Hours, &[1]),
            "days" => (Func::Days, &[1]),
            "weeks" => (Func::Weeks, &[1]),
            "date" => (Func::Date, &[1]),
            "timestamp" => (Func::Timestamp, &[1]),
            "replace" => (Func::Replace, &[3]),
            "slug" => (Func::Slug, &[1]),
            "substr" => (Func::Substr, &[2, 3]),
            "concat_ws" => (Func::ConcatWs, &[]),
            "split_part" => (Func::SplitPart, &[3]),
            "lpad" => (Func::Lpad, &[2, 3]),
            "date_trunc" => (Func::DateTrunc, &[2]),
            "extract" => (Func::Extract, &[2]),
            "days_between" => (Func::DaysBetween, &[2]),
            "int" => (Func::RandInt, &[2]),
            "decimal" => (Func::RandDecimal, &[2]),
            "bool" => (Func::RandBool, &[1]),
            "choice" => (Func::RandChoice, &[]),
            _ => {
                return Err(format!(
                    "unknown function {name} (known: round floor ceil abs min max if coalesce lower upper \
                     replace slug substr concat_ws split_part lpad seconds minutes hours days date timestamp \
                     date_trunc extract days_between int decimal bool choice pick sum count)"
                ));
            }
        };
        if (!arity.is_empty() && !arity.contains(&args.len())) || args.is_empty() {
            return Err(format!("{name}() does not take {} arguments", args.len()));
        }
        for a in &mut args {
            self.resolve(a, table)?;
        }
        Ok(Expr::Func(func, args))
    }
}

impl Expr {
    /// Calls `f` with every part that reads the referencing row (`Expr::Outer`).
    pub fn outers(&self, f: &mut dyn FnMut(&Expr)) {
        match self {
            Expr::Outer(e) => f(e),
            Expr::Template(parts) => parts.iter().for_each(|(e, _)| e.outers(f)),
            Expr::Neg(e) | Expr::Not(e) => e.outers(f),
            Expr::Binary(_, a, b) => {
                a.outers(f);
                b.outers(f);
            }
            Expr::Func(_, args) | Expr::Array(args) | Expr::Call(_, args) => {
                args.iter().for_each(|e| e.outers(f))
            }
            Expr::Object(fields) => fields.iter().for_each(|(_, e)| e.outers(f)),
            _ => {}
        }
    }

    /// A copy with every `Expr::Outer` replaced by what `value` makes of it.
    pub fn bind_outers<E>(
        &self,
        value: &mut dyn FnMut(&Expr) -> Result<Value, E>,
    ) -> Result<Expr, E> {
        Ok(match self {
            Expr::Outer(e) => Expr::Lit(value(e)?),
            Expr::Template(parts) => Expr::Template(
                parts
                    .iter()
                    .map(|(e, c)| Ok((e.bind_outers(value)?, *c)))
                    .collect::<Result<_, E>>()?,
            ),
            Expr::Neg(e) => Expr::Neg(Box::new(e.bind_outers(value)?)),
            Expr::Not(e) => Expr::Not(Box::new(e.bind_outers(value)?)),
            Expr::Binary(op, a, b) => Expr::Binary(
                *op,
                Box::new(a.bind_outers(value)?),
                Box::new(b.bind_outers(value)?),
            ),
            Expr::Func(func, args) => Expr::Func(
                *func,
                args.iter()
                    .map(|e| e.bind_outers(value))
                    .collect::<Result<_, E>>()?,
            ),
            Expr::Array(args) => Expr::Array(
                args.iter()
                    .map(|e| e.bind_outers(value))
                    .collect::<Result<_, E>>()?,
            ),
            Expr::Object(fields) => Expr::Object(
                fields
                    .iter()
                    .map(|(k, e)| Ok((k.clone(), e.bind_outers(value)?)))
                    .collect::<Result<_, E>>()?,
            ),
            other => other.clone(),
        })
    }

    /// The (table, column) cells this expression reads, evaluated in a row of `table`; `into`
    /// gets (table, column, crosses_rows).
    pub fn dependencies(&self, table: usize, tables: &[TableSpec], into: &mut Vec<(usize, usize)>) {
        match self {
            Expr::Column(c) => into.push((table, *c)),
            Expr::Path {
                start,
                hops,
                tables: reached,
                column,
            } => {
                let mut current = match start {
                    Start::Row => table,
                    Start::Parent => match tables[table].source {
                        Source::PerParent { parent, .. } => parent,
                        Source::Counted => table,
                    },
                };
                for (hop, next) in hops.iter().zip(reached) {
                    into.push((current, *hop));
                    current = *next;
                }
                into.push((current, *column));
            }
            Expr::Template(parts) => parts
                .iter()
                .for_each(|(e, _)| e.dependencies(table, tables, into)),
            Expr::Neg(e) | Expr::Not(e) => e.dependencies(table, tables, into),
            Expr::Binary(_, a, b) => {
                a.dependencies(table, tables, into);
                b.dependencies(table, tables, into);
            }
            Expr::Func(_, args) | Expr::Array(args) => args
                .iter()
                .for_each(|e| e.dependencies(table, tables, into)),
            Expr::Object(fields) => fields
                .iter()
                .for_each(|(_, e)| e.dependencies(table, tables, into)),
            Expr::Aggregate {
                table: child, of, ..
            } => {
                // Which children exist depends on the child table's condition on this row.
                for e in tables[*child].children.expressions() {
                    e.dependencies(table, tables, into);
                }
                if let Some(e) = of {
                    e.dependencies(*child, tables, into);
                }
            }
            // Read in the referencing row: its caller adds them (`outers`). A previous sibling's
            // cell is another row's: no cycle through it (its ordinal is lower, down to 0).
            Expr::Prev(_)
            | Expr::Lit(_)
            | Expr::Name(_)
            | Expr::Call(..)
            | Expr::Pick(_)
            | Expr::Now
            | Expr::Today
            | Expr::Outer(_) => {}
        }
    }

    /// How many distinct values this expression can take, when that is known from the spec.
    pub fn space(&self, table: usize, tables: &[TableSpec]) -> Option<u128> {
        match self {
            Expr::Lit(_) => Some(1),
            Expr::Column(c) => {
                super::gen_space(&tables[table].columns[*c].generator, table, tables)
            }
            Expr::Template(parts) => parts.iter().try_fold(1u128, |acc, (e, _)| {
                acc.checked_mul(e.space(table, tables)?)
            }),
            Expr::Pick(values) => Some(values.len() as u128),
            Expr::Func(Func::RandInt, args) => match args.as_slice() {
                [Expr::Lit(Value::Int(a)), Expr::Lit(Value::Int(b))] => {
                    Some((i128::from(*b) - i128::from(*a) + 1).max(0) as u128)
                }
                _ => None,
            },
            Expr::Func(Func::RandBool, _) => Some(2),
            Expr::Func(Func::RandChoice, args) => args
                .iter()
                .try_fold(0u128, |acc, e| acc.checked_add(e.space(table, tables)?)),
            Expr::Func(Func::Lower | Func::Upper, args) => args[0].space(table, tables),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Operators

/// `a op b` for a comparison operator, over borrowed values; `None` for other operators.
pub fn comparison(op: BinOp, a: &Value, b: &Value) -> Option<Result<bool, String>> {
    Some(match op {
        BinOp::Eq => Ok(equal(a, b)),
        BinOp::Ne => Ok(!equal(a, b)),
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            if *a == Value::Null || *b == Value::Null {
                return Some(Ok(false));
            }
            compare(a, b).map(|ordering| match op {
                BinOp::Lt => ordering == Ordering::Less,
                BinOp::Le => ordering != Ordering::Greater,
                BinOp::Gt => ordering == Ordering::Greater,
                _ => ordering != Ordering::Less,
            })
        }
        _ => return None,
    })
}

pub fn binary(op: BinOp, a: Value, b: Value) -> Result<Value, String> {
    use Value::*;
    if let Some(holds) = comparison(op, &a, &b) {
        return holds.map(Bool);
    }
    match op {
        BinOp::And => return Ok(Bool(a.truthy()? && b.truthy()?)),
        BinOp::Or => return Ok(Bool(a.truthy()? || b.truthy()?)),
        _ => {}
    }
    if a == Null || b == Null {
        return Ok(Null);
    }
    let overflow = || {
        format!(
            "{} {} {} is out of range",
            a.shown(),
            op.symbol(),
            b.shown()
        )
    };
    // Numbers, including numeric text beside a number.
    if (a.is_number() || b.is_number())
        && let (Some(x), Some(y)) = (a.number(), b.number())
    {
        if let (Num::Int(x), Num::Int(y), false) = (x, y, op == BinOp::Div) {
            return match op {
                BinOp::Add => x.checked_add(y),
                BinOp::Sub => x.checked_sub(y),
                BinOp::Mul => x.checked_mul(y),
                _ if y == 0 => return Err("division by zero".into()),
                _ => x.checked_rem(y),
            }
            .map(Int)
            .ok_or_else(overflow);
        }
        let (x, y) = (x.dec(), y.dec());
        return match op {
            BinOp::Add => x.checked_add(y),
            BinOp::Sub => x.checked_sub(y),
            BinOp::Mul => x.checked_mul(y),
            _ if y.is_zero() => return Err("division by zero".into()),
            BinOp::Div => x.checked_div(y),
            _ => x.checked_rem(y),
        }
        .map(|d| Dec(d.normalize_to_scale(x.scale().max(y.scale()), op)))
        .ok_or_else(overflow);
    }
    // Text joins in place: the left operand's own buffer grows, nothing is copied twice.
    if op == BinOp::Add && (matches!(a, Text(_)) || matches!(b, Text(_))) {
        let mut s = match a {
            Text(s) => s,
            other => other.text().unwrap_or_default(),
        };
        match b {
            Text(t) => s.push_str(&t),
            other => s.push_str(&other.text().unwrap_or_default()),
        }
        return Ok(Text(s));
    }
    let bad = |a: &Value, b: &Value| {
        format!(
            "cannot apply {} to {} and {}",
            op.symbol(),
            a.type_name(),
            b.type_name()
        )
    };
    Ok(match (op, &a, &b) {
        (BinOp::Add, Timestamp(t), Duration(d)) | (BinOp::Add, Duration(d), Timestamp(t)) => {
            Timestamp(t.checked_add(*d).ok_or_else(overflow)?)
        }
        (BinOp::Sub, Timestamp(t), Duration(d)) => {
            Timestamp(t.checked_sub(*d).ok_or_else(overflow)?)
        }
        (BinOp::Sub, Timestamp(x), Timestamp(y)) => {
            Duration(x.checked_sub(*y).ok_or_else(overflow)?)
        }
        // A date moves by whole days: a part of a day would be lost without a word.
        (BinOp::Add | BinOp::Sub, Date(_), Duration(d)) if d.rem_euclid(86_400) != 0 => {
            return Err(format!(
                "a date moves by whole days, and {} is not; make the date a timestamp first: timestamp(date) {} ...",
                Duration(*d).text().unwrap_or_default(),
                if op == BinOp::Add { "+" } else { "-" }
            ));
        }
        (BinOp::Add, Date(day), Duration(d)) => {
            Date(day.checked_add(d.div_euclid(86_400)).ok_or_else(overflow)?)
        }
        (BinOp::Sub, Date(day), Duration(d)) => {
            Date(day.checked_sub(d.div_euclid(86_400)).ok_or_else(overflow)?)
        }
        (BinOp::Div, Duration(x), Duration(y)) => {
            if *y == 0 {
                return Err("division by zero".into());
            }
            Dec((Decimal::from(*x) / Decimal::from(*y)).normalize())
        }
        (BinOp::Div, Duration(x), Int(n)) => {
            if *n == 0 {
                return Err("division by zero".into());
            }
            // To the nearest second, halves away from zero.
            let q = (Decimal::from(*x) / Decimal::from(*n))
                .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
            Duration(i64::try_from(q).map_err(|e| e.to_string())?)
        }
        (BinOp::Rem, Duration(x), Duration(y)) => {
            if *y == 0 {
                return Err("division by zero".into());
            }
            Duration(x.rem_euclid(*y))
        }
        (BinOp::Add, Date(day), Int(n)) => Date(day.checked_add(*n).ok_or_else(overflow)?),
        (BinOp::Sub, Date(day), Int(n)) => Date(day.checked_sub(*n).ok_or_else(overflow)?),
        (BinOp::Sub, Date(x), Date(y)) => Int(x.checked_sub(*y).ok_or_else(overflow)?),
        (BinOp::Add, Duration(x), Duration(y)) => Duration(x.checked_add(*y).ok_or_else(overflow)?),
        (BinOp::Sub, Duration(x), Duration(y)) => Duration(x.checked_sub(*y).ok_or_else(overflow)?),
        (BinOp::Mul, Duration(d), Int(n)) | (BinOp::Mul, Int(n), Duration(d)) => {
            Duration(d.checked_mul(*n).ok_or_else(overflow)?)
        }
        _ => return Err(bad(&a, &b)),
    })
}

trait DivScale {
    fn normalize_to_scale(self, scale: u32, op: BinOp) -> Decimal;
}

impl DivScale for Decimal {
    /// Keeps `12.50 + 1` at 13.50 (the larger operand scale), and drops the trailing zeros of a
    /// quotient, so money stays exact and reads like money.
    fn normalize_to_scale(self, scale: u32, op: BinOp) -> Decimal {
        match op {
            BinOp::Div => {
                let mut d = self.normalize();
                if d.scale() < scale {
                    d.rescale(scale);
                }
                d
            }
            _ => self,
        }
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Null, _) | (_, Value::Null) => false,
        // Values that compare (numbers beside numeric text, text, times) are equal when they
        // compare equal; others when their texts are.
        _ => match compare(a, b) {
            Ok(ordering) => ordering == Ordering::Equal,
            Err(_) => a.text() == b.text(),
        },
    }
}

fn compare(a: &Value, b: &Value) -> Result<Ordering, String> {
    use Value::*;
    if (a.is_number() || b.is_number())
        && let (Some(x), Some(y)) = (a.number(), b.number())
    {
        return Ok(x.dec().cmp(&y.dec()));
    }
    Ok(match (a, b) {
        (Text(x), Text(y)) => x.cmp(y),
        (Timestamp(x), Timestamp(y)) | (Date(x), Date(y)) | (Duration(x), Duration(y)) => x.cmp(y),
        (Timestamp(x), Date(y)) => x.cmp(&(y * 86_400)),
        (Date(x), Timestamp(y)) => (x * 86_400).cmp(y),
        (Bool(x), Bool(y)) => x.cmp(y),
        _ => {
            return Err(format!(
                "cannot compare {} with {}",
                a.type_name(),
                b.type_name()
            ));
        }
    })
}

/// A function of already evaluated arguments (not `if`, `coalesce` or the random ones).
pub fn apply(func: Func, mut args: Vec<Value>) -> Result<Value, String> {
    if func == Func::In {
        // As SQL's `IN` where a NULL on the left matches nothing.
        return Ok(Value::Bool(
            args[0] != Value::Null && args[1..].iter().any(|v| equal(&args[0], v)),
        ));
    }
    if func == Func::ConcatWs {
        // As SQL's: NULLs are skipped, a NULL separator makes NULL.
        let Some(separator) = args[0].text_ref() else {
            return Ok(Value::Null);
        };
        let mut joined = String::new();
        for (k, part) in args[1..].iter().filter_map(Value::text_ref).enumerate() {
            if k > 0 {
                joined.push_str(&separator);
            }
            joined.push_str(&part);
        }
        return Ok(Value::Text(joined));
    }
    if args.contains(&Value::Null) && !matches!(func, Func::Least | Func::Greatest) {
        return Ok(Value::Null);
    }
    // The arguments are this call's own: the first is moved out, never copied.
    let first = |args: &mut Vec<Value>| std::mem::replace(&mut args[0], Value::Null);
    fn text(args: &[Value], i: usize) -> Cow<'_, str> {
        args[i].text_ref().unwrap_or_default()
    }
    Ok(match func {
        Func::Round => {
            let places = match args.get(1) {
                Some(p) => u32::try_from(p.integer()?).map_err(|_| "round: negative places")?,
                None => 0,
            };
            match first(&mut args) {
                Value::Int(i) => Value::Int(i),
                v => {
                    let mut d = v
                        .decimal()?
                        .round_dp_with_strategy(places, RoundingStrategy::MidpointAwayFromZero);
                    d.rescale(places);
                    Value::Dec(d)
                }
            }
        }
        Func::Floor => Value::Dec(first(&mut args).decimal()?.floor()),
        Func::Ceil => Value::Dec(first(&mut args).decimal()?.ceil()),
        Func::Abs => match first(&mut args) {
            Value::Int(i) => Value::Int(i.abs()),
            v => Value::Dec(v.decimal()?.abs()),
        },
        Func::Least | Func::Greatest => {
            let mut best: Option<Value> = None;
            for v in args {
                if v == Value::Null {
                    continue;
                }
                best = Some(match best {
                    None => v,
                    Some(b) => {
                        let o = compare(&v, &b)?;
                        let better = if func == Func::Least {
                            o == Ordering::Less
                        } else {
                            o == Ordering::Greater
                        };
                        if better { v } else { b }
                    }
                });
            }
            best.unwrap_or(Value::Null)
        }
        Func::Lower | Func::Upper => {
            let mut t = first(&mut args).into_text().unwrap_or_default();
            // ASCII text changes case in place; other text as Unicode says.
            match (func == Func::Lower, t.is_ascii()) {
                (true, true) => t.make_ascii_lowercase(),
                (false, true) => t.make_ascii_uppercase(),
                (true, false) => t = t.to_lowercase(),
                (false, false) => t = t.to_uppercase(),
            }
            Value::Text(t)
        }
        Func::Seconds | Func::Minutes | Func::Hours | Func::Days | Func::Weeks => {
            let unit = match func {
                Func::Seconds => 1,
                Func::Minutes => 60,
                Func::Hours => 3600,
                Func::Weeks => 7 * 86_400,
                _ => 86_400,
            };
            Value::Duration(
                first(&mut args)
                    .integer()?
                    .checked_mul(unit)
                    .ok_or("duration overflows")?,
            )
        }
        Func::Date => match first(&mut args) {
            Value::Timestamp(t) => Value::Date(t.div_euclid(86_400)),
            Value::Date(d) => Value::Date(d),
            v => return Err(format!("date() takes a timestamp, not {}", v.type_name())),
        },
        Func::Replace => Value::Text(text(&args, 0).replace(&*text(&args, 1), &text(&args, 2))),
        Func::Slug => Value::Text(slug(&text(&args, 0))),
        Func::Substr => {
            // 1-based, as SQL's substr: characters from `start`, `length` of them.
            let start = args[1].integer()?;
            let chars: Vec<char> = text(&args, 0).chars().collect();
            let end = match args.get(2) {
                Some(length) => {
                    let length = length.integer()?;
                    if length < 0 {
                        return Err("substr: a negative length".into());
                    }
                    start.saturating_add(length)
                }
                None => i64::MAX,
            };
            let from = start.max(1) - 1;
            let to = (end - 1).clamp(0, chars.len() as i64);
            let from = from.min(to);
            Value::Text(chars[from as usize..to as usize].iter().collect())
        }
        Func::SplitPart => {
            let n = args[2].integer()?;
            let (s, delimiter) = (text(&args, 0), text(&args, 1));
            let parts: Vec<&str> = if delimiter.is_empty() {
                vec![&*s]
            } else {
                s.split(&*delimiter).collect()
            };
            let part = match n {
                0 => return Err("split_part: the field position must not be zero".into()),
                n if n > 0 => parts.get((n - 1) as usize),
                n => parts
                    .len()
                    .checked_sub(n.unsigned_abs() as usize)
                    .and_then(|i| parts.get(i)),
            };
            Value::Text(part.map_or_else(String::new, |p| p.to_string()))
        }
        Func::Lpad => {
            let length = usize::try_from(args[1].integer()?.max(0)).unwrap_or(0);
            let fill = match args.get(2) {
                Some(f) => f.text_ref().unwrap_or_default(),
                None => Cow::Borrowed(" "),
            };
            let t = text(&args, 0);
            let chars = t.chars().count();
            if chars >= length || fill.is_empty() {
                // Cut to `length` characters.
                let end = t.char_indices().nth(length).map_or(t.len(), |(i, _)| i);
                Value::Text(t[..end].to_string())
            } else {
                let mut out = String::with_capacity(length.max(t.len()));
                out.extend(fill.chars().cycle().take(length - chars));
                out.push_str(&t);
                Value::Text(out)
            }
        }
        Func::Timestamp => match first(&mut args) {
            Value::Date(d) => Value::Timestamp(d * 86_400),
            Value::Timestamp(t) => Value::Timestamp(t),
            v => return Err(format!("timestamp() takes a date, not {}", v.type_name())),
        },
        Func::DateTrunc => {
            let unit = text(&args, 0).to_lowercase();
            let (seconds, is_date) = match &args[1] {
                Value::Timestamp(t) => (*t, false),
                Value::Date(d) => (d * 86_400, true),
                v => {
                    return Err(format!(
                        "date_trunc() takes a timestamp or a date, not {}",
                        v.type_name()
                    ));
                }
            };
            let day = seconds.div_euclid(86_400);
            let (year, month, _) = crate::spec::calendar::civil_from_days(day);
            let truncated = match unit.as_str() {
                "year" => crate::spec::calendar::days_from_civil(year, 1, 1) * 86_400,
                "month" => crate::spec::calendar::days_from_civil(year, month, 1) * 86_400,
                // ISO weeks start on Monday; 1970-01-01 was a Thursday.
                "week" => (day - (day + 3).rem_euclid(7)) * 86_400,
                "day" => day * 86_400,
                "hour" => seconds - seconds.rem_euclid(3_600),
                "minute" => seconds - seconds.rem_euclid(60),
                "second" => seconds,
                other => {
                    return Err(format!(
                        "date_trunc('{other}', ...): the unit is year, month, week, day, hour, minute or second"
                    ));
                }
            };
            if is_date {
                Value::Date(truncated.div_euclid(86_400))
            } else {
                Value::Timestamp(truncated)
            }
        }
        Func::Extract => {
            let field = text(&args, 0).to_lowercase();
            let seconds = match &args[1] {
                Value::Timestamp(t) => *t,
                Value::Date(d) => d * 86_400,
                Value::Duration(d) if field == "epoch" => return Ok(Value::Int(*d)),
                v => {
                    return Err(format!(
                        "extract() takes a timestamp or a date, not {}",
                        v.type_name()
                    ));
                }
            };
            let day = seconds.div_euclid(86_400);
            let (year, month, dom) = crate::spec::calendar::civil_from_days(day);
            let second_of_day = seconds.rem_euclid(86_400);
            Value::Int(match field.as_str() {
                "year" => year,
                "month" => i64::from(month),
                "day" => i64::from(dom),
                "hour" => second_of_day / 3_600,
                "minute" => second_of_day % 3_600 / 60,
                "second" => second_of_day % 60,
                // Sunday 0 .. Saturday 6, and ISO's Monday 1 .. Sunday 7.
                "dow" => (day + 4).rem_euclid(7),
                "isodow" => (day + 3).rem_euclid(7) + 1,
                "doy" => day - crate::spec::calendar::days_from_civil(year, 1, 1) + 1,
                "epoch" => seconds,
                other => {
                    return Err(format!(
                        "extract('{other}', ...): the field is year, month, day, hour, minute, second, dow, isodow, doy or epoch"
                    ));
                }
            })
        }
        Func::DaysBetween => {
            let day = |v: &Value| match v {
                Value::Date(d) => Ok(*d),
                Value::Timestamp(t) => Ok(t.div_euclid(86_400)),
                v => Err(format!(
                    "days_between() takes dates or timestamps, not {}",
                    v.type_name()
                )),
            };
            Value::Int(day(&args[1])? - day(&args[0])?)
        }
        Func::In | Func::ConcatWs => unreachable!("evaluated before: any argument may be NULL"),
        Func::If
        | Func::Coalesce
        | Func::RandInt
        | Func::RandDecimal
        | Func::RandBool
        | Func::RandChoice => {
            unreachable!("evaluated lazily by the row")
        }
    })
}

/// Lower-case ASCII letters and digits, every other run of characters one `-`, none at the ends:
/// `"Bath & Brush!"` -> `bath-brush`. Accented letters lose their accent where it is a
/// combining mark of a decomposed form; other letters are dropped.
pub fn slug(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut dash = false;
    for c in text.chars().flat_map(char::to_lowercase) {
        let c = match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => 'a',
            'ç' => 'c',
            'è' | 'é' | 'ê' | 'ë' => 'e',
            'ì' | 'í' | 'î' | 'ï' => 'i',
            'ñ' => 'n',
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' => 'o',
            'ù' | 'ú' | 'û' | 'ü' => 'u',
            'ý' | 'ÿ' => 'y',
            c => c,
        };
        if c.is_ascii_alphanumeric() {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c);
        } else {
            dash = true;
        }
    }
    out
}

pub fn case(text: String, case: Case) -> String {
    match case {
        Case::Keep => text,
        Case::Lower => text.to_lowercase(),
        Case::Upper => text.to_uppercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval_literal(text: &str) -> Value {
        fn go(e: &Expr) -> Value {
            match e {
                Expr::Lit(v) => v.clone(),
                Expr::Binary(op, a, b) => binary(*op, go(a), go(b)).unwrap(),
                Expr::Neg(e) => binary(BinOp::Sub, Value::Int(0), go(e)).unwrap(),
                Expr::Call(name, args) => {
                    let mut scope_files = crate::files::ReadFiles::default();
                    let mut scope = Scope {
                        tables: &[],
                        seeds_dir: Path::new("."),
                        files: &mut scope_files,
                    };
                    let e = scope.call(name, args.clone(), 0).unwrap();
                    match e {
                        Expr::Func(f, args) => apply(f, args.iter().map(go).collect()).unwrap(),
                        _ => unreachable!(),
                    }
                }
                other => panic!("not a literal expression: {other:?}"),
            }
        }
        go(&parse(text).unwrap())
    }

    #[test]
    fn an_overflow_names_its_operation_and_values() {
        let e = binary(BinOp::Add, Value::Int(i64::MAX), Value::Int(1)).unwrap_err();
        assert_eq!(e, format!("{} + 1 is out of range", i64::MAX));
        let e = binary(
            BinOp::Add,
            Value::Timestamp(86_400),
            Value::Duration(i64::MAX),
        )
        .unwrap_err();
        assert!(e.starts_with("1970-01-02 00:00:00+00 + "), "{e}");
        // Dates and durations past the range fail in one clear line, not a panic.
        assert!(binary(BinOp::Add, Value::Date(i64::MAX), Value::Int(1)).is_err());
        assert!(binary(BinOp::Sub, Value::Duration(i64::MIN), Value::Duration(1)).is_err());
    }

    #[test]
    fn money_is_exact_and_rounds_half_away_from_zero() {
        assert_eq!(
            eval_literal("0.1 + 0.2"),
            Value::Dec("0.3".parse().unwrap())
        );
        assert_eq!(eval_literal("2 * 19.99 + 1").text().unwrap(), "40.98");
        assert_eq!(
            eval_literal("round(56.25 * 0.08, 2)").text().unwrap(),
            "4.50"
        );
        assert_eq!(eval_literal("round(0.125, 2)").text().unwrap(), "0.13");
        assert_eq!(eval_literal("10 / 4").text().unwrap(), "2.5");
        assert_eq!(eval_literal("7 % 3"), Value::Int(1));
        assert_eq!(eval_literal("1 + 2 * 3 - -1"), Value::Int(8));
    }

    #[test]
    fn comparisons_and_logic() {
        assert_eq!(
            eval_literal("'paid' = 'paid' and 2 > 1.5"),
            Value::Bool(true)
        );
        assert_eq!(eval_literal("'30' == 30"), Value::Bool(true));
        assert_eq!(eval_literal("null == null or 1 != 1"), Value::Bool(true));
        assert_eq!(eval_literal("null < 3"), Value::Bool(false));
    }

    #[test]
    fn timestamps_move_by_durations() {
        let t = binary(BinOp::Add, Value::Timestamp(0), eval_literal("minutes(90)")).unwrap();
        assert_eq!(t.text().unwrap(), "1970-01-01 01:30:00+00");
        let d = binary(BinOp::Sub, Value::Timestamp(7200), Value::Timestamp(0)).unwrap();
        assert_eq!(d, Value::Duration(7200));
    }

    #[test]
    fn templates_and_json_parse() {
        let e = parse("'{first_name|lower}.{int(1, 999)}@x.test'").unwrap();
        let Expr::Template(parts) = e else { panic!() };
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[0].1, Case::Lower);
        assert!(matches!(parse("{'a': 1, b: [1, 'x']}").unwrap(), Expr::Object(f) if f.len() == 2));
        assert!(parse("'{{literal}}'").is_ok());
        assert!(parse("1 +").is_err());
        assert!(parse("'{a|shout}'").unwrap_err().contains("unknown filter"));
    }
}

#[cfg(test)]
mod depth {
    use super::*;

    #[test]
    fn deep_or_long_expressions_are_errors_not_stack_overflows() {
        let deep = format!("{}1{}", "(".repeat(20_000), ")".repeat(20_000));
        assert!(parse(&deep).unwrap_err().contains("nests more than 100"));
        let long = vec!["1"; 20_000].join(" + ");
        assert!(parse(&long).unwrap_err().contains("nests more than 100"));
        let calls = format!("{}1{}", "abs(".repeat(5_000), ")".repeat(5_000));
        assert!(parse(&calls).unwrap_err().contains("nests more than 100"));
        let negations = format!("{}1", "-".repeat(20_000));
        assert!(
            parse(&negations)
                .unwrap_err()
                .contains("nests more than 100")
        );
        let mut template = String::from("1");
        for _ in 0..200 {
            template = format!("'{{{template}}}'").replace('\'', "\"");
        }
        assert!(parse(&template).is_err());
        // What people write stays well inside the limit.
        let fine = format!("{}1{}", "(".repeat(50), ")".repeat(50));
        assert!(parse(&fine).is_ok());
        assert!(parse(&vec!["1"; 90].join(" + ")).is_ok());
        assert!(parse("round((a + b) * (c - d) / 2, 2) + abs(-(x))").is_ok());
    }
}

#[cfg(test)]
mod text_and_time {
    use super::*;

    fn eval(text: &str) -> Result<Value, String> {
        fn go(e: &Expr) -> Result<Value, String> {
            match e {
                Expr::Lit(v) => Ok(v.clone()),
                Expr::Binary(op, a, b) => binary(*op, go(a)?, go(b)?),
                Expr::Not(e) => Ok(Value::Bool(!go(e)?.truthy()?)),
                Expr::Neg(e) => binary(BinOp::Sub, Value::Int(0), go(e)?),
                Expr::Call(name, args) => {
                    let mut files = crate::files::ReadFiles::default();
                    let mut scope = Scope {
                        tables: &[],
                        seeds_dir: Path::new("."),
                        files: &mut files,
                    };
                    match scope.call(name, args.clone(), 0)? {
                        Expr::Func(f, args) => {
                            apply(f, args.iter().map(go).collect::<Result<_, _>>()?)
                        }
                        other => panic!("{other:?}"),
                    }
                }
                Expr::Func(f, args) => apply(*f, args.iter().map(go).collect::<Result<_, _>>()?),
                other => panic!("not a literal expression: {other:?}"),
            }
        }
        go(&parse(text).unwrap())
    }

    fn text(e: &str) -> String {
        eval(e).unwrap().text().unwrap_or_else(|| "NULL".into())
    }

    #[test]
    fn text_functions_follow_sql() {
        assert_eq!(text("lower('Bath & Brush')"), "bath & brush");
        assert_eq!(text("upper('groomer')"), "GROOMER");
        assert_eq!(text("replace('a-b-c', '-', '+')"), "a+b+c");
        assert_eq!(
            text("slug('  Bath & Brush: Full Groom!  ')"),
            "bath-brush-full-groom"
        );
        assert_eq!(text("slug('Crème Brûlée 2')"), "creme-brulee-2");
        assert_eq!(text("substr('groomly', 2, 3)"), "roo");
        assert_eq!(text("substr('groomly', 4)"), "omly");
        assert_eq!(text("substr('groomly', 0, 3)"), "gr");
        assert_eq!(text("concat_ws(', ', 'a', null, 'b')"), "a, b");
        assert_eq!(text("split_part('a@b.test', '@', 2)"), "b.test");
        assert_eq!(text("split_part('a,b,c', ',', -1)"), "c");
        assert_eq!(text("split_part('a,b,c', ',', 7)"), "");
        assert_eq!(text("lpad('7', 4, '0')"), "0007");
        assert_eq!(text("lpad('12345', 3)"), "123");
        // Characters, not bytes, as PostgreSQL's lpad counts them.
        assert_eq!(text("lpad('é', 4, 'ab')"), "abaé");
        assert_eq!(text("lpad('crème', 4)"), "crèm");
        assert_eq!(text("lower('ÉCOLE') + upper('straße')"), "écoleSTRASSE");
        assert_eq!(text("concat_ws('', 'a', 7, 'b')"), "a7b");
        assert_eq!(text("7 + ''"), "7");
        assert_eq!(text("'a' + 'b' + 7"), "ab7");
        assert_eq!(text("'groomer' in ('groomer', 'bather')"), "true");
        assert_eq!(text("'manager' not in ('groomer', 'bather')"), "true");
        assert_eq!(text("null in (null, 1)"), "false");
    }

    #[test]
    fn time_functions_and_duration_arithmetic() {
        // 2025-03-14 15:09:26 UTC
        let t = Value::Timestamp(1_741_964_966);
        let call = |f: Func, args: Vec<Value>| apply(f, args).unwrap().text().unwrap();
        let unit = |u: &str| Value::Text(u.into());
        assert_eq!(
            call(Func::DateTrunc, vec![unit("month"), t.clone()]),
            "2025-03-01 00:00:00+00"
        );
        assert_eq!(
            call(Func::DateTrunc, vec![unit("year"), t.clone()]),
            "2025-01-01 00:00:00+00"
        );
        assert_eq!(
            call(Func::DateTrunc, vec![unit("week"), t.clone()]),
            "2025-03-10 00:00:00+00"
        );
        assert_eq!(
            call(Func::DateTrunc, vec![unit("hour"), t.clone()]),
            "2025-03-14 15:00:00+00"
        );
        assert_eq!(call(Func::Extract, vec![unit("year"), t.clone()]), "2025");
        assert_eq!(call(Func::Extract, vec![unit("month"), t.clone()]), "3");
        assert_eq!(call(Func::Extract, vec![unit("dow"), t.clone()]), "5");
        assert_eq!(call(Func::Extract, vec![unit("isodow"), t.clone()]), "5");
        assert_eq!(call(Func::Extract, vec![unit("doy"), t.clone()]), "73");
        assert_eq!(call(Func::Extract, vec![unit("minute"), t.clone()]), "9");
        let day = Value::Date(20_161); // 2025-03-14
        assert_eq!(
            call(Func::DaysBetween, vec![Value::Date(20_000), day.clone()]),
            "161"
        );
        assert_eq!(call(Func::DaysBetween, vec![day.clone(), t.clone()]), "0");
        assert_eq!(
            call(Func::Timestamp, vec![day.clone()]),
            "2025-03-14 00:00:00+00"
        );
        // Durations divide into a ratio, or by an integer to the nearest second.
        assert_eq!(text("minutes(90) / hours(1)"), "1.5");
        assert_eq!(text("round(minutes(90) / hours(1))"), "2");
        assert_eq!(text("days(7) / 2"), "302400 seconds");
        assert_eq!(text("seconds(5) / 2"), "3 seconds");
        assert_eq!(text("minutes(100) % hours(1)"), "2400 seconds");
        // A date moves by whole days; part of a day is an error, never dropped.
        assert_eq!(
            binary(BinOp::Add, day.clone(), Value::Duration(2 * 86_400)).unwrap(),
            Value::Date(20_163)
        );
        let error = binary(BinOp::Add, day.clone(), Value::Duration(5 * 3_600)).unwrap_err();
        assert!(error.contains("a date moves by whole days"), "{error}");
        assert!(error.contains("timestamp(date) +"), "{error}");
        assert_eq!(
            binary(
                BinOp::Add,
                apply(Func::Timestamp, vec![day]).unwrap(),
                Value::Duration(5 * 3_600)
            )
            .unwrap()
            .text()
            .unwrap(),
            "2025-03-14 05:00:00+00"
        );
    }
}
