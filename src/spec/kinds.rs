//! What kinds of value a column or an expression can produce, known from the spec alone: so that
//! a computed column whose values are always numbers, timestamps or dates can go to the server in
//! binary COPY, typed, without being printed and parsed again on either side.

use super::expr::{Agg, BinOp, Expr, Func, Start, Value};
use super::{Gen, Source, Spec};

/// A set of value kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Kinds(u16);

impl Kinds {
    pub const NULL: Kinds = Kinds(1);
    pub const BOOL: Kinds = Kinds(1 << 1);
    pub const INT: Kinds = Kinds(1 << 2);
    pub const DEC: Kinds = Kinds(1 << 3);
    pub const TEXT: Kinds = Kinds(1 << 4);
    pub const TIMESTAMP: Kinds = Kinds(1 << 5);
    pub const DATE: Kinds = Kinds(1 << 6);
    pub const DURATION: Kinds = Kinds(1 << 7);
    pub const JSON: Kinds = Kinds(1 << 8);
    pub const ANY: Kinds = Kinds(0x1ff);

    pub fn of(value: &Value) -> Kinds {
        match value {
            Value::Null => Kinds::NULL,
            Value::Bool(_) => Kinds::BOOL,
            Value::Int(_) => Kinds::INT,
            Value::Dec(_) => Kinds::DEC,
            Value::Text(_) => Kinds::TEXT,
            Value::Timestamp(_) => Kinds::TIMESTAMP,
            Value::Date(_) => Kinds::DATE,
            Value::Duration(_) => Kinds::DURATION,
            Value::Json(_) => Kinds::JSON,
        }
    }

    pub fn within(self, allowed: Kinds) -> bool {
        self.0 & !allowed.0 == 0
    }

    fn has(self, kind: Kinds) -> bool {
        self.0 & kind.0 != 0
    }

    fn each(self) -> impl Iterator<Item = Kinds> {
        (0..9)
            .map(|bit| Kinds(1 << bit))
            .filter(move |k| self.has(*k))
    }
}

impl std::ops::BitOr for Kinds {
    type Output = Kinds;
    fn bitor(self, other: Kinds) -> Kinds {
        Kinds(self.0 | other.0)
    }
}

impl std::ops::BitOrAssign for Kinds {
    fn bitor_assign(&mut self, other: Kinds) {
        self.0 |= other.0;
    }
}

/// Deeper than any sane chain of references: past it, anything.
const MAX_DEPTH: u32 = 16;

/// The kinds of value that `column` of `table` holds (fixed rows give text).
pub fn column(spec: &Spec, table: usize, column: usize, depth: u32) -> Kinds {
    if depth > MAX_DEPTH {
        return Kinds::ANY;
    }
    let t = &spec.tables[table];
    let c = &t.columns[column];
    let mut kinds = generator(spec, table, &c.generator, depth + 1);
    if c.null > 0.0 {
        kinds |= Kinds::NULL;
    }
    if let Some(fixed) = &t.fixed
        && fixed.columns.get(column).copied().flatten().is_some()
    {
        kinds |= Kinds::TEXT | Kinds::NULL;
    }
    kinds
}

/// The kinds of value a generator of `table` produces.
pub fn generator(spec: &Spec, table: usize, generated_by: &Gen, depth: u32) -> Kinds {
    if depth > MAX_DEPTH {
        return Kinds::ANY;
    }
    match generated_by {
        Gen::Serial { .. } | Gen::Ordinal { .. } | Gen::Int { .. } => Kinds::INT,
        Gen::Decimal { .. } => Kinds::DEC,
        Gen::Bool { .. } => Kinds::BOOL,
        Gen::Date { .. } => Kinds::DATE,
        Gen::Timestamp { .. } => Kinds::TIMESTAMP,
        Gen::Uuid
        | Gen::Choice { .. }
        | Gen::Cycle { .. }
        | Gen::Pick { .. }
        | Gen::Format { .. }
        | Gen::Csv { .. } => Kinds::TEXT | Kinds::NULL,
        Gen::Constant { value } => match value {
            Some(_) => Kinds::TEXT,
            None => Kinds::NULL,
        },
        Gen::Ref {
            table: target,
            column: target_column,
            ..
        } => column(spec, *target, *target_column, depth + 1) | Kinds::NULL,
        Gen::Parent {
            column: parent_column,
        } => match spec.tables[table].source {
            Source::PerParent { parent, .. } => column(spec, parent, *parent_column, depth + 1),
            Source::Counted => Kinds::ANY,
        },
        Gen::Expr { expr } => expression(spec, table, expr, depth + 1),
        Gen::When {
            then, otherwise, ..
        } => generator(spec, table, then, depth + 1) | generator(spec, table, otherwise, depth + 1),
    }
}

/// The table and column a path reads.
pub fn path_target(
    spec: &Spec,
    table: usize,
    start: Start,
    tables: &[usize],
    column: usize,
) -> Option<(usize, usize)> {
    let target = match (tables.last(), start, &spec.tables[table].source) {
        (Some(&last), ..) => last,
        (None, Start::Parent, Source::PerParent { parent, .. }) => *parent,
        (None, Start::Row, _) => table,
        (None, Start::Parent, Source::Counted) => return None,
    };
    Some((target, column))
}

/// The kinds of value an expression evaluated in a row of `table` produces. Every kind it may
/// produce is in the set (it may hold more); an expression that fails produces none.
pub fn expression(spec: &Spec, table: usize, expr: &Expr, depth: u32) -> Kinds {
    if depth > MAX_DEPTH {
        return Kinds::ANY;
    }
    let of = |e: &Expr| expression(spec, table, e, depth + 1);
    let union = |args: &[Expr]| args.iter().fold(Kinds::default(), |k, a| k | of(a));
    match expr {
        Expr::Lit(v) => Kinds::of(v),
        Expr::Column(c) => column(spec, table, *c, depth + 1),
        Expr::Prev(c) => column(spec, table, *c, depth + 1) | Kinds::NULL,
        Expr::Path {
            start,
            tables,
            column: c,
            ..
        } => match path_target(spec, table, *start, tables, *c) {
            // A path whose hop is NULL is NULL.
            Some((target, c)) => column(spec, target, c, depth + 1) | Kinds::NULL,
            None => Kinds::ANY,
        },
        Expr::Template(_) | Expr::Pick(_) => Kinds::TEXT,
        Expr::Object(_) | Expr::Array(_) => Kinds::JSON,
        Expr::Now => Kinds::TIMESTAMP,
        Expr::Today => Kinds::DATE,
        Expr::Not(_) => Kinds::BOOL,
        Expr::Neg(e) => arithmetic(BinOp::Sub, Kinds::INT, of(e)),
        Expr::Binary(op, a, b) => match op {
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem => {
                arithmetic(*op, of(a), of(b))
            }
            _ => Kinds::BOOL,
        },
        Expr::Func(func, args) => {
            let first = || args.first().map_or(Kinds::ANY, of);
            let nullable = Kinds::NULL;
            nullable
                | match func {
                    Func::Round | Func::Abs => {
                        let k = first();
                        let mut out = Kinds::default();
                        if k.has(Kinds::INT) {
                            out |= Kinds::INT;
                        }
                        if k.has(Kinds::DEC) || k.has(Kinds::TEXT) {
                            out |= Kinds::DEC;
                        }
                        out
                    }
                    Func::Floor | Func::Ceil => Kinds::DEC,
                    Func::Least | Func::Greatest | Func::Coalesce | Func::RandChoice => union(args),
                    Func::If => union(args.get(1..).unwrap_or_default()),
                    Func::Lower | Func::Upper => Kinds::TEXT,
                    Func::Seconds | Func::Minutes | Func::Hours | Func::Days | Func::Weeks => {
                        Kinds::DURATION
                    }
                    Func::Date => Kinds::DATE,
                    Func::RandInt => Kinds::INT,
                    Func::RandDecimal => Kinds::DEC,
                    Func::RandBool | Func::In => Kinds::BOOL,
                    Func::Replace
                    | Func::Slug
                    | Func::Substr
                    | Func::ConcatWs
                    | Func::SplitPart
                    | Func::Lpad => Kinds::TEXT,
                    Func::DateTrunc => {
                        let k = args.get(1).map_or(Kinds::ANY, of);
                        let mut out = Kinds::default();
                        if k.has(Kinds::DATE) {
                            out |= Kinds::DATE;
                        }
                        if k.has(Kinds::TIMESTAMP) {
                            out |= Kinds::TIMESTAMP;
                        }
                        out
                    }
                    Func::Extract | Func::DaysBetween => Kinds::INT,
                    Func::Timestamp => Kinds::TIMESTAMP,
                }
        }
        Expr::Aggregate { agg, table: t, of } => {
            let each = of
                .as_deref()
                .map_or(Kinds::ANY, |e| expression(spec, *t, e, depth + 1));
            match agg {
                Agg::Count => Kinds::INT,
                Agg::Sum => Kinds::INT | arithmetic(BinOp::Add, Kinds::INT, each),
                Agg::Min | Agg::Max => each | Kinds::NULL,
            }
        }
        Expr::Name(_) | Expr::Call(..) | Expr::Outer(_) => Kinds::ANY,
    }
}

/// What `expr::binary` makes of an arithmetic operator over values of these kinds.
fn arithmetic(op: BinOp, a: Kinds, b: Kinds) -> Kinds {
    let mut out = Kinds::default();
    for x in a.each() {
        for y in b.each() {
            out |= one(op, x, y);
        }
    }
    out
}

fn one(op: BinOp, x: Kinds, y: Kinds) -> Kinds {
    use BinOp::{Add, Div, Mul, Sub};
    const NUMBER: Kinds = Kinds(Kinds::INT.0 | Kinds::DEC.0);
    if x == Kinds::NULL || y == Kinds::NULL {
        return Kinds::NULL;
    }
    let number = |k: Kinds| k.within(NUMBER);
    let numeric = |k: Kinds| k.within(NUMBER) || k == Kinds::TEXT;
    if (number(x) || number(y)) && numeric(x) && numeric(y) {
        // Numeric text beside a number is read as a number (an integer or a decimal), and
        // other text is joined by `+`.
        let mut out = if x == Kinds::INT && y == Kinds::INT {
            if op == Div { Kinds::DEC } else { Kinds::INT }
        } else if x == Kinds::TEXT || y == Kinds::TEXT {
            NUMBER
        } else {
            Kinds::DEC
        };
        if op == Add && (x == Kinds::TEXT || y == Kinds::TEXT) {
            out |= Kinds::TEXT;
        }
        return out;
    }
    let (t, d, i) = (Kinds::TIMESTAMP, Kinds::DURATION, Kinds::INT);
    match op {
        Add | Sub if x == t && y == d => t,
        Add if x == d && y == t => t,
        Sub if x == t && y == t => d,
        Add | Sub if x == Kinds::DATE && (y == d || y == i) => Kinds::DATE,
        Sub if x == Kinds::DATE && y == Kinds::DATE => i,
        Add | Sub if x == d && y == d => d,
        Mul if (x == d && y == i) || (x == i && y == d) => d,
        Div if x == d && y == d => Kinds::DEC,
        Div if x == d && y == i => d,
        BinOp::Rem if x == d && y == d => d,
        Add if x == Kinds::TEXT || y == Kinds::TEXT => Kinds::TEXT,
        _ => Kinds::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_follows_the_evaluator() {
        let k = |op, a, b| arithmetic(op, a, b);
        assert_eq!(k(BinOp::Add, Kinds::INT, Kinds::INT), Kinds::INT);
        assert_eq!(k(BinOp::Div, Kinds::INT, Kinds::INT), Kinds::DEC);
        assert_eq!(k(BinOp::Mul, Kinds::INT, Kinds::DEC), Kinds::DEC);
        assert_eq!(
            k(BinOp::Add, Kinds::TIMESTAMP, Kinds::DURATION),
            Kinds::TIMESTAMP
        );
        assert_eq!(k(BinOp::Sub, Kinds::DATE, Kinds::INT), Kinds::DATE);
        // "30" * 2 is 60, and "a" + 1 is "a1": text may be either.
        assert_eq!(
            k(BinOp::Add, Kinds::TEXT, Kinds::INT),
            Kinds::INT | Kinds::DEC | Kinds::TEXT
        );
        assert_eq!(
            k(BinOp::Mul, Kinds::TEXT, Kinds::INT),
            Kinds::INT | Kinds::DEC
        );
        assert_eq!(
            k(BinOp::Add, Kinds::INT | Kinds::NULL, Kinds::DEC),
            Kinds::DEC | Kinds::NULL
        );
        assert_eq!(k(BinOp::Mul, Kinds::BOOL, Kinds::INT), Kinds::default());
    }
}
