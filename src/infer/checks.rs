//! CHECK constraints as `pg_get_constraintdef` prints them, read into what a generator can
//! honour: bounds on a number or a length, a list of allowed values, NOT NULL, an order between
//! two columns. Anything else is `Unknown`, and the caller names it.

/// One conjunct of a CHECK that the inference understands.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// `column op number` (`op`: `>`, `>=`, `<`, `<=`, `=`).
    Bound {
        column: String,
        op: String,
        value: f64,
    },
    /// `length(column) op n`.
    Length {
        column: String,
        op: String,
        value: f64,
    },
    /// `column IN (...)` / `column = ANY (ARRAY[...])` / `column = 'x'`.
    OneOf { column: String, values: Vec<String> },
    /// `column IS NOT NULL` (or one side of an OR of them).
    NotNull { column: String },
    /// `a < b`, `a <= b`: `low` comes before `high`.
    Order {
        low: String,
        high: String,
        strict: bool,
    },
    /// Holds for any value the generators write (`column <> ''`, a regex on an email).
    Holds { column: String, why: String },
}

/// A CHECK read into rules; `Err` is what was not understood.
pub fn read(definition: &str) -> Result<Vec<Rule>, String> {
    let text = definition.trim();
    let text = text.strip_suffix("NOT VALID").unwrap_or(text).trim();
    let body = text
        .strip_prefix("CHECK")
        .ok_or_else(|| definition.to_string())?;
    let tokens = tokenize(body)?;
    let mut parser = Parser { tokens, at: 0 };
    let node = parser.or()?;
    if parser.at != parser.tokens.len() {
        return Err(format!("unexpected {:?}", parser.tokens[parser.at]));
    }
    let mut rules = Vec::new();
    conjuncts(&node, &mut rules)?;
    Ok(rules)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Num(f64),
    Str(String),
    Op(String),
    Open,
    Close,
    OpenBracket,
    CloseBracket,
    Comma,
}

fn tokenize(text: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\n' | '\t' => i += 1,
            '(' => {
                out.push(Tok::Open);
                i += 1
            }
            ')' => {
                out.push(Tok::Close);
                i += 1
            }
            '[' => {
                out.push(Tok::OpenBracket);
                i += 1
            }
            ']' => {
                out.push(Tok::CloseBracket);
                i += 1
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1
            }
            '\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("an unterminated string".into()),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            s.push('\'');
                            i += 2
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(c) => {
                            s.push(*c);
                            i += 1
                        }
                    }
                }
                out.push(Tok::Str(s));
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    s.push(chars[i]);
                    i += 1;
                }
                i += 1;
                out.push(Tok::Ident(s));
            }
            ':' if chars.get(i + 1) == Some(&':') => {
                // A cast: the type name (several words, a modifier, []) is dropped.
                i += 2;
                skip_type(&chars, &mut i);
            }
            c if c.is_ascii_digit() || c == '.' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                let s: String = chars[start..i].iter().collect();
                out.push(Tok::Num(s.parse().map_err(|_| format!("the number {s}"))?));
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                out.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            _ => {
                let start = i;
                while i < chars.len() && "<>=!~*-+/%|&^@#".contains(chars[i]) {
                    i += 1;
                }
                if start == i {
                    return Err(format!("the character {c:?}"));
                }
                out.push(Tok::Op(chars[start..i].iter().collect()));
            }
        }
    }
    Ok(out)
}

fn skip_type(chars: &[char], i: &mut usize) {
    const MORE: &[&str] = &["varying", "precision", "with", "without", "time", "zone"];
    let word = |i: &mut usize| {
        while *i < chars.len() && chars[*i] == ' ' {
            *i += 1;
        }
        let start = *i;
        if chars.get(*i) == Some(&'"') {
            *i += 1;
            while *i < chars.len() && chars[*i] != '"' {
                *i += 1;
            }
            *i += 1;
        } else {
            while *i < chars.len() && (chars[*i].is_alphanumeric() || "_.".contains(chars[*i])) {
                *i += 1;
            }
        }
        chars[start..*i].iter().collect::<String>()
    };
    word(i);
    loop {
        let save = *i;
        let next = word(i);
        if !MORE.contains(&next.as_str()) {
            *i = save;
            break;
        }
    }
    if chars.get(*i) == Some(&'(') {
        while *i < chars.len() && chars[*i] != ')' {
            *i += 1;
        }
        *i += 1;
    }
    while chars.get(*i) == Some(&'[') && chars.get(*i + 1) == Some(&']') {
        *i += 2;
    }
}

#[derive(Debug, Clone)]
enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Cmp(Box<Node>, String, Box<Node>),
    AnyOf(Box<Node>, Vec<Node>),
    IsNull(Box<Node>, bool),
    Not(Box<Node>),
    Col(String),
    Num(f64),
    Str(String),
    Func(String, Vec<Node>),
    Array(Vec<Node>),
}

struct Parser {
    tokens: Vec<Tok>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.at)
    }
    fn keyword(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Ident(w)) if w.eq_ignore_ascii_case(word)) {
            self.at += 1;
            return true;
        }
        false
    }
    fn expect(&mut self, tok: Tok) -> Result<(), String> {
        if self.peek() == Some(&tok) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!("expected {tok:?}"))
        }
    }
    fn or(&mut self) -> Result<Node, String> {
        let mut parts = vec![self.and()?];
        while self.keyword("OR") {
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Node::Or(parts)
        })
    }
    fn and(&mut self) -> Result<Node, String> {
        let mut parts = vec![self.comparison()?];
        while self.keyword("AND") {
            parts.push(self.comparison()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Node::And(parts)
        })
    }
    fn comparison(&mut self) -> Result<Node, String> {
        if self.keyword("NOT") {
            return Ok(Node::Not(Box::new(self.comparison()?)));
        }
        let left = self.operand()?;
        if self.keyword("IS") {
            let not = self.keyword("NOT");
            if !self.keyword("NULL") {
                return Err("IS without NULL".into());
            }
            return Ok(Node::IsNull(Box::new(left), !not));
        }
        if let Some(Tok::Op(op)) = self.peek().cloned() {
            self.at += 1;
            return self.compared(left, op);
        }
        Ok(left)
    }
    /// `left op ...` once `op` is read: `= ANY (array)` or a comparison with the next operand.
    fn compared(&mut self, left: Node, op: String) -> Result<Node, String> {
        if op == "=" && self.keyword("ANY") {
            self.expect(Tok::Open)?;
            let list = self.operand()?;
            self.expect(Tok::Close)?;
            let Node::Array(items) = list else {
                return Err("ANY over something other than an array".into());
            };
            return Ok(Node::AnyOf(Box::new(left), items));
        }
        let right = self.operand()?;
        Ok(Node::Cmp(Box::new(left), op, Box::new(right)))
    }
    fn operand(&mut self) -> Result<Node, String> {
        match self.peek().cloned() {
            Some(Tok::Open) => {
                self.at += 1;
                let inner = self.or()?;
                // A cast's parentheses may leave `(x)` followed by more: `(x)::text = ...`.
                self.expect(Tok::Close)?;
                if let Some(Tok::Op(op)) = self.peek().cloned()
                    && matches!(inner, Node::Col(_) | Node::Func(..) | Node::Array(_))
                {
                    self.at += 1;
                    return self.compared(inner, op);
                }
                Ok(inner)
            }
            Some(Tok::Num(n)) => {
                self.at += 1;
                Ok(Node::Num(n))
            }
            Some(Tok::Op(op)) if op == "-" => {
                self.at += 1;
                match self.operand()? {
                    Node::Num(n) => Ok(Node::Num(-n)),
                    _ => Err("a minus before something other than a number".into()),
                }
            }
            Some(Tok::Str(s)) => {
                self.at += 1;
                Ok(Node::Str(s))
            }
            Some(Tok::Ident(word)) => {
                self.at += 1;
                if word.eq_ignore_ascii_case("ARRAY") {
                    self.expect(Tok::OpenBracket)?;
                    let mut items = Vec::new();
                    while self.peek() != Some(&Tok::CloseBracket) {
                        items.push(self.operand()?);
                        if self.peek() == Some(&Tok::Comma) {
                            self.at += 1;
                        }
                    }
                    self.at += 1;
                    return Ok(Node::Array(items));
                }
                if self.peek() == Some(&Tok::Open) {
                    self.at += 1;
                    let mut args = Vec::new();
                    while self.peek() != Some(&Tok::Close) {
                        args.push(self.or()?);
                        if self.peek() == Some(&Tok::Comma) {
                            self.at += 1;
                        }
                        if self.peek().is_none() {
                            return Err("an unclosed call".into());
                        }
                    }
                    self.at += 1;
                    return Ok(Node::Func(word.to_lowercase(), args));
                }
                Ok(Node::Col(word))
            }
            other => Err(format!("unexpected {other:?}")),
        }
    }
}

/// The column a length function measures: `length(x)`, `char_length(btrim(x))`.
fn measured(node: &Node) -> Option<String> {
    match node {
        Node::Func(f, args)
            if args.len() == 1
                && matches!(
                    f.as_str(),
                    "length" | "char_length" | "character_length" | "octet_length"
                ) =>
        {
            trimmed(&args[0])
        }
        _ => None,
    }
}

fn trimmed(node: &Node) -> Option<String> {
    match node {
        Node::Col(c) => Some(c.clone()),
        Node::Func(f, args)
            if matches!(f.as_str(), "btrim" | "trim" | "lower" | "upper") && args.len() == 1 =>
        {
            trimmed(&args[0])
        }
        _ => None,
    }
}

fn flip(op: &str) -> String {
    match op {
        ">" => "<",
        "<" => ">",
        ">=" => "<=",
        "<=" => ">=",
        o => o,
    }
    .to_string()
}

fn conjuncts(node: &Node, rules: &mut Vec<Rule>) -> Result<(), String> {
    match node {
        Node::And(parts) => parts.iter().try_for_each(|p| conjuncts(p, rules)),
        Node::Or(parts) => {
            // One side naming a column IS NOT NULL: that column gets a value in every row.
            for part in parts {
                if let Node::IsNull(inner, false) = part
                    && let Node::Col(c) = inner.as_ref()
                {
                    rules.push(Rule::NotNull { column: c.clone() });
                    return Ok(());
                }
            }
            // `x IS NULL OR <rule on x>`: the rule holds whenever x has a value.
            let mut rest = Vec::new();
            let mut nullable = false;
            for part in parts {
                match part {
                    Node::IsNull(_, true) => nullable = true,
                    other => rest.push(other.clone()),
                }
            }
            if nullable && rest.len() == 1 {
                return conjuncts(&rest[0], rules);
            }
            // Otherwise the first side read whole (`flag OR ...`, an implication `NOT flag OR
            // ...`, one case of a tagged union `(kind = 'a' AND x IS NOT NULL) OR ...`): its
            // rules make the OR hold.
            for part in parts {
                let mut side = Vec::new();
                if conjuncts(part, &mut side).is_ok() {
                    rules.extend(side);
                    return Ok(());
                }
            }
            Err("an OR".into())
        }
        Node::IsNull(inner, false) => match inner.as_ref() {
            Node::Col(c) => {
                rules.push(Rule::NotNull { column: c.clone() });
                Ok(())
            }
            _ => Err("IS NOT NULL of an expression".into()),
        },
        Node::AnyOf(left, items) => {
            let column = trimmed(left).ok_or("ANY of an expression")?;
            let values = items
                .iter()
                .map(|i| match i {
                    Node::Str(s) => Ok(s.clone()),
                    Node::Num(n) => Ok(n.to_string()),
                    _ => Err("a list of expressions".to_string()),
                })
                .collect::<Result<Vec<_>, _>>()?;
            rules.push(Rule::OneOf { column, values });
            Ok(())
        }
        Node::Cmp(left, op, right) => {
            let op = if op == "!=" {
                "<>".to_string()
            } else {
                op.clone()
            };
            match (left.as_ref(), right.as_ref()) {
                (Node::Col(c), Node::Num(n)) => bound(c, &op, *n, rules),
                (Node::Num(n), Node::Col(c)) => bound(c, &flip(&op), *n, rules),
                (Node::Col(c), Node::Str(s)) if op == "=" => {
                    rules.push(Rule::OneOf {
                        column: c.clone(),
                        values: vec![s.clone()],
                    });
                    Ok(())
                }
                (l, Node::Str(s)) if op == "<>" && s.is_empty() && trimmed(l).is_some() => {
                    rules.push(Rule::Holds {
                        column: trimmed(l).unwrap_or_default(),
                        why: "never empty".into(),
                    });
                    Ok(())
                }
                (l, Node::Str(_)) if op.starts_with('~') && trimmed(l).is_some() => {
                    let column = trimmed(l).unwrap_or_default();
                    if column.to_lowercase().contains("email") {
                        rules.push(Rule::Holds {
                            column,
                            why: "a pattern for email addresses, which the generated ones follow"
                                .into(),
                        });
                        Ok(())
                    } else {
                        Err("a pattern match".into())
                    }
                }
                (l, Node::Num(n)) if measured(l).is_some() => {
                    rules.push(Rule::Length {
                        column: measured(l).unwrap_or_default(),
                        op,
                        value: *n,
                    });
                    Ok(())
                }
                (Node::Col(a), Node::Col(b)) if matches!(op.as_str(), "<" | "<=" | ">" | ">=") => {
                    let (low, high) = if op.starts_with('<') {
                        (a.clone(), b.clone())
                    } else {
                        (b.clone(), a.clone())
                    };
                    rules.push(Rule::Order {
                        low,
                        high,
                        strict: !op.ends_with('='),
                    });
                    Ok(())
                }
                (Node::Func(f, _), _) | (_, Node::Func(f, _)) => Err(format!("a call of {f}()")),
                _ => Err("a comparison of expressions".into()),
            }
        }
        Node::Func(f, _) => Err(format!("a call of {f}()")),
        Node::Not(inner) => match inner.as_ref() {
            // A boolean column that must be false.
            Node::Col(c) => {
                rules.push(Rule::OneOf {
                    column: c.clone(),
                    values: vec!["false".into()],
                });
                Ok(())
            }
            _ => Err("a NOT of an expression".into()),
        },
        Node::Col(c) => {
            // A boolean column that must be true.
            rules.push(Rule::OneOf {
                column: c.clone(),
                values: vec!["true".into()],
            });
            Ok(())
        }
        _ => Err("an expression".into()),
    }
}

fn bound(column: &str, op: &str, value: f64, rules: &mut Vec<Rule>) -> Result<(), String> {
    if !matches!(op, ">" | ">=" | "<" | "<=" | "=" | "<>") {
        return Err(format!("the operator {op}"));
    }
    rules.push(Rule::Bound {
        column: column.to_string(),
        op: op.to_string(),
        value,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_as_postgres_prints_them_are_read() {
        assert_eq!(
            read("CHECK (((rating >= 1) AND (rating <= 5)))").unwrap(),
            vec![
                Rule::Bound {
                    column: "rating".into(),
                    op: ">=".into(),
                    value: 1.0
                },
                Rule::Bound {
                    column: "rating".into(),
                    op: "<=".into(),
                    value: 5.0
                },
            ]
        );
        assert_eq!(
            read("CHECK (((status)::text = ANY ((ARRAY['a'::character varying, 'b'::character varying])::text[])))").unwrap(),
            vec![Rule::OneOf { column: "status".into(), values: vec!["a".into(), "b".into()] }]
        );
        assert_eq!(
            read("CHECK ((price >= (0)::numeric))").unwrap(),
            vec![Rule::Bound {
                column: "price".into(),
                op: ">=".into(),
                value: 0.0
            }]
        );
        assert_eq!(
            read("CHECK ((char_length(btrim(title)) > 0))").unwrap(),
            vec![Rule::Length {
                column: "title".into(),
                op: ">".into(),
                value: 0.0
            }]
        );
        assert_eq!(
            read("CHECK (((NOT all_day) OR (time_zone IS NULL)))").unwrap(),
            vec![Rule::OneOf {
                column: "all_day".into(),
                values: vec!["false".into()]
            }]
        );
        assert_eq!(
            read("CHECK ((archived OR (deleted_at IS NULL) OR (n > 1)))").unwrap(),
            vec![Rule::OneOf {
                column: "archived".into(),
                values: vec!["true".into()]
            }]
        );
        assert!(read("CHECK ((NOT (a > b)))").is_err());
        assert_eq!(
            read("CHECK ((((kind = 'BASIC'::auth) AND (username IS NOT NULL)) OR ((kind = 'KEY'::auth) AND (key IS NOT NULL))))").unwrap(),
            vec![
                Rule::OneOf {
                    column: "kind".into(),
                    values: vec!["BASIC".into()]
                },
                Rule::NotNull {
                    column: "username".into()
                }
            ]
        );
        assert_eq!(
            read("CHECK ((ends_at > starts_at))").unwrap(),
            vec![Rule::Order {
                low: "starts_at".into(),
                high: "ends_at".into(),
                strict: true
            }]
        );
        assert_eq!(
            read("CHECK (((VALUE >= 1901) AND (VALUE <= 2155)))")
                .unwrap()
                .len(),
            2
        );
        assert!(read("CHECK ((is_valid_isbn(isbn)))").is_err());
        assert_eq!(
            read("CHECK (((email IS NOT NULL) OR (phone IS NOT NULL)))").unwrap(),
            vec![Rule::NotNull {
                column: "email".into()
            }]
        );
    }
}
