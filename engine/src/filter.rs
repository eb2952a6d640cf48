//! Payload filter language: parsing of text expressions such as
//! `color = "red" and (price < 10 or tags in ["sale", "new"])` and their
//! evaluation against an item's JSON payload.
//!
//! Parsing is a recursive-descent parser over a lazy lexer; nesting of
//! parentheses and `not` is bounded by [`MAX_FILTER_DEPTH`] and the input by
//! [`MAX_FILTER_LEN`], so hostile input cannot overflow the stack.

use serde_json::{Number, Value};

/// Maximum length of a filter expression in bytes.
pub const MAX_FILTER_LEN: usize = 16 * 1024;
/// Maximum nesting depth of parentheses / `not`.
pub const MAX_FILTER_DEPTH: usize = 64;

/// A parsed payload filter. Serializable, so a node can hand it to another (cluster mode).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Filter {
    /// path = value  (also `==`)
    Eq {
        path: Vec<String>,
        value: Value,
    },
    /// path != value
    Ne {
        path: Vec<String>,
        value: Value,
    },
    /// path in [v1, v2, ...]
    In {
        path: Vec<String>,
        values: Vec<Value>,
    },
    /// numeric comparisons; any combination of bounds (a < b, a >= b, ...)
    Range {
        path: Vec<String>,
        gt: Option<f64>,
        gte: Option<f64>,
        lt: Option<f64>,
        lte: Option<f64>,
    },
    /// `exists(path)` — the field is present and not null
    Exists {
        path: Vec<String>,
    },
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
}

/// A parse error with the byte offset of the offending token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    pub message: String,
    /// Byte offset into the expression.
    pub position: usize,
}

impl std::fmt::Display for FilterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid filter at position {}: {}", self.position, self.message)
    }
}

impl std::error::Error for FilterError {}

fn err<T>(position: usize, message: impl Into<String>) -> Result<T, FilterError> {
    Err(FilterError { message: message.into(), position })
}

/// Parses a filter expression.
///
/// # Errors
/// A [`FilterError`] naming the problem and its byte position when the
/// expression is malformed, too long or nested too deeply.
pub fn parse(expr: &str) -> Result<Filter, FilterError> {
    if expr.len() > MAX_FILTER_LEN {
        return err(
            MAX_FILTER_LEN,
            format!("expression is {} bytes long, the maximum is {MAX_FILTER_LEN}", expr.len()),
        );
    }
    let mut p = Parser { src: expr, pos: 0, peeked: None };
    let filter = p.parse_or(0)?;
    let tok = p.next()?;
    match tok.kind {
        Tok::Eof => Ok(filter),
        _ => tok.expected("'and', 'or' or end of input"),
    }
}

impl std::str::FromStr for Filter {
    type Err = FilterError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

// ---------------------------------------------------------------- lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// Bare identifier: field name or keyword (keywords are case-insensitive).
    Ident(String),
    /// `backtick quoted` field name.
    Quoted(String),
    Str(String),
    /// Parsed number and its source text.
    Num(Number, String),
    Punct(&'static str),
    Eof,
}

/// Punctuation, longest first so that `<=` wins over `<`.
const PUNCT: [&str; 16] = ["==", "!=", "<=", ">=", "&&", "||", "(", ")", "[", "]", ",", ".", "=", "!", "<", ">"];

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("'{s}'"),
            Tok::Quoted(s) => format!("`{s}`"),
            Tok::Str(s) => format!("string {s:?}"),
            Tok::Num(_, text) => format!("number {text}"),
            Tok::Punct(p) => format!("'{p}'"),
            Tok::Eof => "end of input".to_string(),
        }
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(self, Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }
}

#[derive(Debug)]
struct Token {
    kind: Tok,
    pos: usize,
}

impl Token {
    fn expected<T>(&self, what: &str) -> Result<T, FilterError> {
        let found = self.kind.describe();
        err(self.pos, format!("expected {what}, found {found}"))
    }
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    peeked: Option<Token>,
}

impl Parser<'_> {
    fn lex(&mut self) -> Result<Token, FilterError> {
        let rest = &self.src[self.pos..];
        let start = self.pos + rest.len() - rest.trim_start().len();
        let rest = &self.src[start..];
        self.pos = start;
        let tok = |kind| -> Result<Token, FilterError> { Ok(Token { kind, pos: start }) };
        let Some(c) = rest.chars().next() else {
            return tok(Tok::Eof);
        };
        if let Some(p) = PUNCT.iter().find(|p| rest.starts_with(**p)) {
            self.pos += p.len();
            return tok(Tok::Punct(p));
        }
        match c {
            '"' | '\'' => self.lex_string(c),
            '-' | '0'..='9' => self.lex_number(),
            '`' => match rest[1..].find('`') {
                Some(end) => {
                    self.pos += end + 2;
                    tok(Tok::Quoted(rest[1..1 + end].to_string()))
                }
                None => err(start, "unterminated `quoted` field name, expected a closing '`'"),
            },
            'a'..='z' | 'A'..='Z' | '_' => {
                let len =
                    rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-')).unwrap_or(rest.len());
                self.pos += len;
                tok(Tok::Ident(rest[..len].to_string()))
            }
            '&' | '|' => err(start, format!("unexpected character '{c}', did you mean '{c}{c}'?")),
            _ => err(start, format!("unexpected character '{c}'")),
        }
    }

    fn skip(&mut self, bytes: &[u8]) -> bool {
        let hit = self.src.as_bytes().get(self.pos).is_some_and(|b| bytes.contains(b));
        self.pos += usize::from(hit);
        hit
    }

    fn digits(&mut self, what: &str) -> Result<(), FilterError> {
        let start = self.pos;
        while self.skip(b"0123456789") {}
        if self.pos == start {
            return err(start, format!("expected a digit {what} in number"));
        }
        Ok(())
    }

    fn lex_number(&mut self) -> Result<Token, FilterError> {
        let start = self.pos;
        self.skip(b"-");
        self.digits("after '-'")?;
        if self.skip(b".") {
            self.digits("after '.'")?;
        }
        if self.skip(b"eE") {
            self.skip(b"+-");
            self.digits("in the exponent")?;
        }
        let text = &self.src[start..self.pos];
        // Integers keep their exact value; everything else becomes an f64.
        let num = (text.parse::<i64>().map(Number::from))
            .or_else(|_| text.parse::<u64>().map(Number::from))
            .ok()
            .or_else(|| text.parse::<f64>().ok().and_then(Number::from_f64));
        let Some(num) = num else {
            return err(start, format!("number {text} is out of range"));
        };
        let kind = Tok::Num(num, text.to_string());
        Ok(Token { kind, pos: start })
    }

    fn lex_string(&mut self, quote: char) -> Result<Token, FilterError> {
        let start = self.pos;
        let mut out = String::new();
        let mut chars = self.src[start + 1..].char_indices();
        while let Some((i, c)) = chars.next() {
            let at = start + 1 + i;
            if c == quote {
                self.pos = at + 1;
                let kind = Tok::Str(out);
                return Ok(Token { kind, pos: start });
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            let Some((_, esc)) = chars.next() else { break };
            out.push(match esc {
                '"' | '\'' | '\\' | '/' => esc,
                'n' => '\n',
                't' => '\t',
                'r' => '\r',
                'b' => '\u{8}',
                'f' => '\u{c}',
                'u' => {
                    let mut code = hex4(&mut chars, at)?;
                    if (0xD800..0xDC00).contains(&code) {
                        let lo = match (chars.next(), chars.next()) {
                            (Some((_, '\\')), Some((_, 'u'))) => hex4(&mut chars, at)?,
                            _ => 0,
                        };
                        code = match lo {
                            0xDC00..=0xDFFF => 0x10000 + ((code - 0xD800) << 10) + (lo - 0xDC00),
                            _ => 0xD800, // rejected below
                        };
                    }
                    let Some(ch) = char::from_u32(code) else {
                        return err(at, "unpaired surrogate in \\u escape");
                    };
                    ch
                }
                other => return err(at, format!("invalid escape '\\{other}' in string")),
            });
        }
        let msg = format!("unterminated string, expected a closing {quote} before end of input");
        err(start, msg)
    }

    fn peek(&mut self) -> Result<&Token, FilterError> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lex()?);
        }
        Ok(self.peeked.as_ref().expect("token was just peeked"))
    }

    fn next(&mut self) -> Result<Token, FilterError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lex(),
        }
    }

    // ------------------------------------------------------------ parser

    fn parse_or(&mut self, depth: usize) -> Result<Filter, FilterError> {
        self.parse_chain(depth, true)
    }

    /// An `or`-chain of `and`-chains (`or == true`) or an `and`-chain of
    /// unary terms; same-operator children are flattened.
    fn parse_chain(&mut self, depth: usize, or: bool) -> Result<Filter, FilterError> {
        let (sym, kw) = if or { ("||", "or") } else { ("&&", "and") };
        let mut items = Vec::new();
        loop {
            let f = if or { self.parse_chain(depth, false)? } else { self.parse_unary(depth)? };
            match (or, f) {
                (true, Filter::Or(v)) | (false, Filter::And(v)) => items.extend(v),
                (_, f) => items.push(f),
            }
            let t = &self.peek()?.kind;
            if *t != Tok::Punct(sym) && !t.is_kw(kw) {
                break;
            }
            self.next()?;
        }
        Ok(match items.len() {
            1 => items.pop().expect("one item"),
            _ if or => Filter::Or(items),
            _ => Filter::And(items),
        })
    }

    fn parse_unary(&mut self, depth: usize) -> Result<Filter, FilterError> {
        let tok = self.next()?;
        let k = &tok.kind;
        let not = k.is_kw("not") || *k == Tok::Punct("!");
        if (not || *k == Tok::Punct("(")) && depth >= MAX_FILTER_DEPTH {
            let msg = format!("filter is nested too deeply, the maximum depth is {MAX_FILTER_DEPTH}");
            return err(tok.pos, msg);
        }
        if not {
            return Ok(Filter::Not(Box::new(self.parse_unary(depth + 1)?)));
        }
        if *k == Tok::Punct("(") {
            let inner = self.parse_or(depth + 1)?;
            self.expect_close(tok.pos)?;
            return Ok(inner);
        }
        if k.is_kw("exists") && self.peek()?.kind == Tok::Punct("(") {
            let open = self.next()?.pos;
            let first = self.next()?;
            let path = self.parse_path(first, "'exists('")?;
            self.expect_close(open)?;
            return Ok(Filter::Exists { path });
        }
        match k {
            Tok::Ident(s) if ["and", "or", "in"].iter().any(|w| s.eq_ignore_ascii_case(w)) => {
                err(tok.pos, format!("expected a condition, found keyword '{s}'"))
            }
            Tok::Ident(_) | Tok::Quoted(_) => self.parse_cmp(tok),
            _ => tok.expected("a condition (field path, 'not', 'exists(...)' or '(')"),
        }
    }

    fn expect_close(&mut self, open: usize) -> Result<(), FilterError> {
        let t = self.next()?;
        if t.kind == Tok::Punct(")") {
            return Ok(());
        }
        t.expected(&format!("')' to close '(' at position {open}"))
    }

    fn parse_path(&mut self, first: Token, mut after: &str) -> Result<Vec<String>, FilterError> {
        let mut path = Vec::new();
        let mut tok = first;
        loop {
            match tok.kind {
                Tok::Ident(s) | Tok::Quoted(s) => path.push(s),
                _ => return tok.expected(&format!("a field name after {after}")),
            }
            if self.peek()?.kind != Tok::Punct(".") {
                return Ok(path);
            }
            self.next()?;
            tok = self.next()?;
            after = "'.'";
        }
    }

    fn parse_cmp(&mut self, first: Token) -> Result<Filter, FilterError> {
        let path = self.parse_path(first, "'.'")?;
        let op = self.next()?;
        let negate = op.kind.is_kw("not");
        if negate || op.kind.is_kw("in") {
            let t = if negate { self.next()? } else { op };
            if !t.kind.is_kw("in") {
                return t.expected("'in' after 'not'");
            }
            let t = self.next()?;
            if t.kind != Tok::Punct("[") {
                return t.expected("'[' after 'in'");
            }
            let mut values = vec![self.parse_value("in 'in' list")?];
            loop {
                let t = self.next()?;
                match t.kind {
                    Tok::Punct("]") => break,
                    Tok::Punct(",") if self.peek()?.kind == Tok::Punct("]") => {}
                    Tok::Punct(",") => values.push(self.parse_value("in 'in' list")?),
                    _ => return t.expected("',' or ']' in 'in' list"),
                }
            }
            let f = Filter::In { path, values };
            return Ok(if negate { Filter::Not(Box::new(f)) } else { f });
        }
        let p = if let Tok::Punct(p) = op.kind { p } else { "" };
        match p {
            "=" | "==" => {
                let value = self.parse_value(&format!("after '{p}'"))?;
                Ok(Filter::Eq { path, value })
            }
            "!=" => {
                let value = self.parse_value("after '!='")?;
                Ok(Filter::Ne { path, value })
            }
            "<" | "<=" | ">" | ">=" => {
                let v = self.next()?;
                let Tok::Num(n, _) = &v.kind else {
                    let found = v.kind.describe();
                    return err(v.pos, format!("operator '{p}' requires a number, found {found}"));
                };
                let bound = |o: &str| if p == o { n.as_f64() } else { None };
                let (gt, gte, lt, lte) = (bound(">"), bound(">="), bound("<"), bound("<="));
                Ok(Filter::Range { path, gt, gte, lt, lte })
            }
            _ => op.expected(&format!(
                "an operator (=, ==, !=, <, <=, >, >=, in, not in) after field '{}'",
                path.join(".")
            )),
        }
    }

    fn parse_value(&mut self, ctx: &str) -> Result<Value, FilterError> {
        let t = self.next()?;
        Ok(match &t.kind {
            Tok::Str(s) => Value::String(s.clone()),
            Tok::Num(n, _) => Value::Number(n.clone()),
            k if k.is_kw("true") => Value::Bool(true),
            k if k.is_kw("false") => Value::Bool(false),
            k if k.is_kw("null") => Value::Null,
            _ => return t.expected(&format!("a value {ctx}")),
        })
    }
}

fn hex4(chars: &mut std::str::CharIndices<'_>, at: usize) -> Result<u32, FilterError> {
    let mut code = 0;
    for _ in 0..4 {
        match chars.next().and_then(|(_, c)| c.to_digit(16)) {
            Some(d) => code = code * 16 + d,
            None => return err(at, "invalid \\u escape, expected 4 hex digits"),
        }
    }
    Ok(code)
}

// ----------------------------------------------------------- evaluation

impl Filter {
    /// Evaluates the filter against a payload. Never panics.
    #[must_use]
    pub fn matches(&self, payload: &Value) -> bool {
        match self {
            Filter::Eq { path, value } => any_value(payload, path, |v| json_eq(v, value)),
            Filter::Ne { path, value } => !any_value(payload, path, |v| json_eq(v, value)),
            Filter::In { path, values } => any_value(payload, path, |v| values.iter().any(|x| json_eq(v, x))),
            Filter::Range { path, gt, gte, lt, lte } => any_value(payload, path, |v| {
                v.as_f64().is_some_and(|x| {
                    gt.is_none_or(|b| x > b)
                        && gte.is_none_or(|b| x >= b)
                        && lt.is_none_or(|b| x < b)
                        && lte.is_none_or(|b| x <= b)
                })
            }),
            Filter::Exists { path } => resolve(payload, path).is_some_and(|v| !v.is_null()),
            Filter::And(fs) => fs.iter().all(|f| f.matches(payload)),
            Filter::Or(fs) => fs.iter().any(|f| f.matches(payload)),
            Filter::Not(f) => !f.matches(payload),
        }
    }
}

impl Filter {
    /// Whether the filter holds for **every** value the payload carries under each field
    /// it names: the check a row policy applies to writes. [`Filter::matches`] accepts an
    /// array when any element matches, so `{"tenant": ["acme", "globex"]}` matches both
    /// `tenant = "acme"` and `tenant = "globex"`; a writer bound to the first must not be
    /// able to store an item that readers bound to the second then see.
    ///
    /// Negations are pushed down to the comparisons (De Morgan), and each comparison is
    /// then quantified over all the values at its path: a positive one must hold for every
    /// element of an array, a negated one for none. An empty array counts as an absent
    /// field. This is sound — an item that passes satisfies the filter whichever single
    /// value of each array a reader's filter looks at — and slightly stricter than needed
    /// for `or` of two comparisons on the same field (`a = 1 or a = 2` refuses `[1, 2]`;
    /// `a in [1, 2]` accepts it).
    #[must_use]
    pub fn holds_for_every_value(&self, payload: &Value) -> bool {
        self.every_value(payload, false)
    }

    fn every_value(&self, payload: &Value, negated: bool) -> bool {
        match self {
            Filter::Not(f) => f.every_value(payload, !negated),
            Filter::And(fs) if !negated => fs.iter().all(|f| f.every_value(payload, false)),
            Filter::And(fs) => fs.iter().any(|f| f.every_value(payload, true)),
            Filter::Or(fs) if !negated => fs.iter().any(|f| f.every_value(payload, false)),
            Filter::Or(fs) => fs.iter().all(|f| f.every_value(payload, true)),
            atom => {
                let values: Vec<&Value> = match atom.path().and_then(|p| resolve(payload, p)) {
                    None => Vec::new(),
                    Some(Value::Array(items)) => items.iter().collect(),
                    Some(v) => vec![v],
                };
                if values.is_empty() {
                    // Absent (or an empty array): the comparison's ordinary reading of a
                    // missing field, so `tenant != "x"` holds and `tenant = "x"` does not.
                    let missing = atom.matches(&Value::Null);
                    return missing != negated;
                }
                values.into_iter().all(|v| atom.holds_for_value(v) != negated)
            }
        }
    }

    fn path(&self) -> Option<&[String]> {
        match self {
            Filter::Eq { path, .. }
            | Filter::Ne { path, .. }
            | Filter::In { path, .. }
            | Filter::Range { path, .. }
            | Filter::Exists { path } => Some(path),
            Filter::And(_) | Filter::Or(_) | Filter::Not(_) => None,
        }
    }

    /// A comparison applied to one value (not to an array as a whole).
    fn holds_for_value(&self, v: &Value) -> bool {
        match self {
            Filter::Eq { value, .. } => json_eq(v, value),
            Filter::Ne { value, .. } => !json_eq(v, value),
            Filter::In { values, .. } => values.iter().any(|x| json_eq(v, x)),
            Filter::Range { gt, gte, lt, lte, .. } => v.as_f64().is_some_and(|x| {
                gt.is_none_or(|b| x > b)
                    && gte.is_none_or(|b| x >= b)
                    && lt.is_none_or(|b| x < b)
                    && lte.is_none_or(|b| x <= b)
            }),
            Filter::Exists { .. } => !v.is_null(),
            Filter::And(_) | Filter::Or(_) | Filter::Not(_) => false,
        }
    }
}

fn resolve<'v>(payload: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(payload, |cur, key| cur.as_object()?.get(key))
}

/// True when the value at `path` (or, for arrays, any element) satisfies `pred`.
fn any_value(payload: &Value, path: &[String], pred: impl Fn(&Value) -> bool) -> bool {
    match resolve(payload, path) {
        None => false,
        Some(v @ Value::Array(items)) => items.iter().any(&pred) || pred(v),
        Some(v) => pred(v),
    }
}

fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                x == y
            } else if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                x == y
            } else {
                x.as_f64() == y.as_f64()
            }
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, a)| y.get(k).is_some_and(|b| json_eq(a, b)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> Vec<String> {
        s.split('.').map(str::to_string).collect()
    }
    fn eq(path: &str, value: Value) -> Filter {
        Filter::Eq { path: p(path), value }
    }
    fn not(f: Filter) -> Filter {
        Filter::Not(Box::new(f))
    }
    fn rng(gt: Option<f64>, gte: Option<f64>, lt: Option<f64>, lte: Option<f64>) -> Filter {
        Filter::Range { path: p("n"), gt, gte, lt, lte }
    }
    fn e(expr: &str) -> FilterError {
        parse(expr).expect_err(expr)
    }
    fn m(expr: &str, payload: &Value) -> bool {
        parse(expr).unwrap().matches(payload)
    }

    #[test]
    fn parses_every_construct() {
        let in_ab3 = Filter::In { path: p("t"), values: vec![json!("a"), json!("b"), json!(3)] };
        let cases = [
            ("a = 1", eq("a", json!(1))),
            ("a.b == \"x\"", eq("a.b", json!("x"))),
            ("a='it\\'s'", eq("a", json!("it's"))),
            ("`my key`.c = TRUE", eq("my key.c", json!(true))),
            ("a = null", eq("a", Value::Null)),
            ("a = -1.5e2", eq("a", json!(-150.0))),
            ("a-b_c = 18446744073709551615", eq("a-b_c", json!(u64::MAX))),
            (r#"s = "q\"\\\/\n\t\r\u00e9\ud83d\ude00""#, eq("s", json!("q\"\\/\n\t\ré😀"))),
            ("a != false", Filter::Ne { path: p("a"), value: json!(false) }),
            ("n < 3", rng(None, None, Some(3.0), None)),
            ("n <= 3", rng(None, None, None, Some(3.0))),
            ("n > -3", rng(Some(-3.0), None, None, None)),
            ("n>=0.5", rng(None, Some(0.5), None, None)),
            ("t IN ['a', \"b\", 3,]", in_ab3.clone()),
            ("t not in ['a','b',3]", not(in_ab3)),
            ("exists(a.b)", Filter::Exists { path: p("a.b") }),
            ("exists = 1", eq("exists", json!(1))),
            ("NOT a = 1", not(eq("a", json!(1)))),
            ("!(a = 1)", not(eq("a", json!(1)))),
            ("! ! a = 1", not(not(eq("a", json!(1))))),
        ];
        for (expr, want) in cases {
            assert_eq!(parse(expr).unwrap(), want, "{expr}");
            assert_eq!(expr.parse::<Filter>().unwrap(), want, "{expr}");
        }
    }

    #[test]
    fn precedence_and_flattening() {
        let (a, b, c) = (eq("a", json!(1)), eq("b", json!(2)), eq("c", json!(3)));
        let and = |v: &[&Filter]| Filter::And(v.iter().map(|f| (*f).clone()).collect());
        let or = |v: &[&Filter]| Filter::Or(v.iter().map(|f| (*f).clone()).collect());
        let cases = [
            ("a = 1 or b = 2 and c = 3", or(&[&a, &and(&[&b, &c])])),
            ("(a = 1 || b = 2) && c = 3", and(&[&or(&[&a, &b]), &c])),
            ("a = 1 AND b = 2 and c = 3", and(&[&a, &b, &c])),
            ("a = 1 or (b = 2 OR c = 3)", or(&[&a, &b, &c])),
            ("not a = 1 and b = 2", and(&[&not(a.clone()), &b])),
            ("((a = 1))", a.clone()),
        ];
        for (expr, want) in cases {
            assert_eq!(parse(expr).unwrap(), want, "{expr}");
        }
    }

    #[test]
    fn error_positions() {
        let cases: &[(&str, usize, &str)] = &[
            ("", 0, "expected a condition"),
            ("   ", 3, "found end of input"),
            ("a =", 3, "expected a value after '=', found end of input"),
            ("a = 1 b", 6, "expected 'and', 'or' or end of input, found 'b'"),
            ("(a = 1", 6, "expected ')' to close '(' at position 0"),
            ("a = \"abc", 4, "unterminated string"),
            ("a = 'x\\q'", 6, "invalid escape '\\q'"),
            ("a ~ 1", 2, "unexpected character '~'"),
            ("a 1", 2, "expected an operator"),
            ("a < 'x'", 4, "operator '<' requires a number, found string \"x\""),
            ("a >= true", 5, "operator '>=' requires a number"),
            ("a in [1, 2", 10, "expected ',' or ']' in 'in' list, found end"),
            ("a in []", 6, "expected a value in 'in' list, found ']'"),
            ("a in 1", 5, "expected '[' after 'in'"),
            ("a not 1", 6, "expected 'in' after 'not'"),
            ("a = 1 and", 9, "expected a condition"),
            ("a = 1 & b = 2", 6, "did you mean '&&'"),
            ("a. = 1", 3, "expected a field name after '.'"),
            ("exists(a", 8, "expected ')'"),
            ("exists()", 7, "field name after 'exists('"),
            ("a = 1.", 6, "expected a digit after '.'"),
            ("a = `x", 4, "unterminated `quoted` field name"),
            ("a = \"\\u12\"", 5, "invalid \\u escape"),
            ("a = \"\\ud800\"", 5, "unpaired surrogate"),
            ("a = 1e999", 4, "out of range"),
            ("or = 1", 0, "keyword 'or'"),
            ("é = 1", 0, "unexpected character 'é'"),
            ("a = 1 and é", 10, "unexpected character 'é'"),
        ];
        for (expr, pos, msg) in cases {
            let err = e(expr);
            assert_eq!(err.position, *pos, "{expr}: {err}");
            assert!(err.message.contains(msg), "{expr}: {err}");
        }
        let want = "invalid filter at position 3: expected a value after '=', found end of input";
        assert_eq!(e("a =").to_string(), want);
    }

    #[test]
    fn limits() {
        // Over the length limit.
        assert!(e(&"(".repeat(100_000)).message.contains("maximum"));
        assert!(e(&"not ".repeat(100_000)).message.contains("maximum"));
        let long = format!("a = \"{}\"", "x".repeat(MAX_FILTER_LEN));
        assert_eq!(e(&long).position, MAX_FILTER_LEN);
        // Under the length limit, the depth limit applies.
        let err = e(&"(".repeat(10_000));
        assert!(err.message.contains("nested too deeply"), "{err}");
        assert_eq!(err.position, MAX_FILTER_DEPTH);
        for prefix in ["not ", "!", "not (", "(a = 1 or "] {
            let err = e(&format!("{}a = 1", prefix.repeat(1000)));
            assert!(err.message.contains("nested too deeply"), "{err}");
        }
        let nested = |n| format!("{}a = 1{}", "(".repeat(n), ")".repeat(n));
        assert_eq!(parse(&nested(MAX_FILTER_DEPTH)).unwrap(), eq("a", json!(1)));
        assert!(parse(&nested(MAX_FILTER_DEPTH + 1)).is_err());
    }

    #[test]
    fn evaluation() {
        let doc = json!({
            "color": "red", "n": 5, "f": 2.5, "flag": true, "nothing": null,
            "tags": ["a", "b", 7], "empty": [],
            "meta": {"owner": {"name": "ann"}, "score": [1, 20]},
            "my key": 1
        });
        for yes in [
            "color = 'red'",
            "n = 5.0 and n == 5 and f = 2.5 and flag = true",
            "meta.owner.name = \"ann\" and `my key` = 1",
            "tags = 'b' and tags = 7.0 and tags in ['x', 'a'] and color not in ['blue']",
            "n > 4 and n <= 5 and meta.score > 10 and meta.score < 2",
            "exists(color) and exists(empty) and nothing = null",
            "missing != 3 and missing not in [1] and color != 'blue'",
            "color = 'blue' or (n = 5 and not flag = false)",
        ] {
            assert!(m(yes, &doc), "{yes}");
        }
        for no in [
            "color = 'Red' or flag = 1 or tags = 'c' or tags in ['x'] or n != 5",
            "n < 5 or color > 0 or flag >= 0 or missing < 1",
            "exists(nothing) or exists(missing) or exists(color.x)",
            "missing = null or color.x = 'red' or missing in [1]",
        ] {
            assert!(!m(no, &doc), "{no}");
        }
        // Non-object payloads: every field is absent.
        let payloads = [json!(null), json!(3), json!("s"), json!([1]), json!({"a": {}})];
        for payload in payloads {
            assert!(!m("a = 1", &payload) && m("a != 1", &payload));
            assert!(!m("exists(a.b)", &payload) && !m("a > 0", &payload));
        }
    }

    /// The write-side reading of a row policy: every value the payload carries under the
    /// policy's fields must satisfy it (issue 16, tenant write escape through arrays).
    #[test]
    fn holds_for_every_value() {
        let w = |expr: &str, payload: Value| parse(expr).unwrap().holds_for_every_value(&payload);
        let policy = "tenant = \"acme\"";
        assert!(w(policy, json!({"tenant": "acme"})));
        assert!(w(policy, json!({"tenant": ["acme"]})));
        assert!(w(policy, json!({"tenant": ["acme", "acme"]})));
        // The escape: any-element matching would accept this, and a globex reader sees it.
        assert!(m(policy, &json!({"tenant": ["acme", "globex"]})));
        assert!(!w(policy, json!({"tenant": ["acme", "globex"]})));
        assert!(!w(policy, json!({"tenant": []})) && !w(policy, json!({})) && !w(policy, json!({"tenant": null})));
        assert!(!w(policy, json!({"tenant": {"acme": 1}})) && !w(policy, json!({"tenant": [["acme"]]})));
        // Nested paths.
        let nested = "org.tenant = \"acme\"";
        assert!(w(nested, json!({"org": {"tenant": "acme"}})));
        assert!(!w(nested, json!({"org": {"tenant": ["acme", "globex"]}})));
        assert!(!w(nested, json!({"org": [{"tenant": "acme"}]})));
        // `!=`, `not in`, `not`: no value may be the excluded one.
        for (expr, yes, no) in [
            ("tenant != \"globex\"", json!({"tenant": ["acme", "initech"]}), json!({"tenant": ["acme", "globex"]})),
            ("tenant not in [\"globex\"]", json!({"tenant": "acme"}), json!({"tenant": ["globex", "acme"]})),
            ("not tenant = \"globex\"", json!({"tenant": ["a", "b"]}), json!({"tenant": ["a", "globex"]})),
            ("not (tenant = \"a\" or tenant = \"b\")", json!({"tenant": ["c"]}), json!({"tenant": ["c", "b"]})),
            (
                "not (tenant = \"a\" and level = 1)",
                json!({"tenant": "a", "level": 2}),
                json!({"tenant": "a", "level": [2, 1]}),
            ),
            ("tenant in [\"a\", \"b\"]", json!({"tenant": ["a", "b"]}), json!({"tenant": ["a", "z"]})),
            ("level >= 2 and level < 5", json!({"level": [2, 4]}), json!({"level": [2, 9]})),
            ("exists(tenant)", json!({"tenant": ["a"]}), json!({"tenant": ["a", null]})),
            ("not exists(secret)", json!({"x": 1}), json!({"secret": [null, 1]})),
        ] {
            assert!(w(expr, yes.clone()), "{expr} should accept {yes}");
            assert!(!w(expr, no.clone()), "{expr} should refuse {no}");
        }
        // Absent fields read as they do for search: `!=` holds, `=` does not.
        assert!(w("tenant != \"globex\"", json!({})) && !w("not tenant != \"globex\"", json!({})));
        // Whatever passes the write check matches the same filter on the read side.
        for payload in [json!({"tenant": ["acme"]}), json!({"tenant": "acme", "x": [1, 2]}), json!({"a": {"b": [3]}})] {
            for expr in [policy, "tenant != \"z\"", "a.b in [3, 4]", "not exists(q)"] {
                if w(expr, payload.clone()) {
                    assert!(m(expr, &payload), "{expr} / {payload}");
                }
            }
        }
    }

    #[test]
    fn numeric_equality() {
        assert!(json_eq(&json!(1), &json!(1.0)));
        assert!(json_eq(&json!(u64::MAX), &json!(u64::MAX)));
        assert!(!json_eq(&json!(-1), &json!(u64::MAX)));
        assert!(json_eq(&json!([1, {"a": 2}]), &json!([1.0, {"a": 2.0}])));
        assert!(m("x = 1", &json!({"x": 1.0})) && m("x = 1.0", &json!({"x": 1})));
        assert!(m("x = 10000000000", &json!({"x": 1e10})));
        assert!(m("x in [2, 1.0]", &json!({"x": [1]})));
    }
}
