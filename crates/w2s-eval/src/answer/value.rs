//! Numeric values of normalized answers: exact rationals where possible, floats otherwise.
//!
//! A small recursive-descent parser over the LaTeX subset that final answers use: integers and
//! decimals, `+ - * /`, `\cdot`, `\times`, `\div`, `^`, parentheses and braces, `\frac{a}{b}`,
//! `\sqrt{x}`, `\sqrt[n]{x}`, `\pi`, and implicit products such as `2\pi` or `3\sqrt{2}`. Decimals
//! and fractions stay exact ([`Ratio`], `i128` numerator and denominator), so `0.1 + 0.2` equals
//! `0.3` exactly; only `\pi`, irrational roots and overflow fall back to `f64`. Anything else
//! (variables, `!`, `\infty`, a number directly before `\frac`, which could be a mixed number) does
//! not parse, and equivalence then reports "undecided" instead of guessing.

use crate::rational::{ArithError, Ratio};

/// Deepest nesting the parser follows; deeper input does not parse (no stack overflow).
const MAX_DEPTH: usize = 48;
/// Largest integer exponent computed exactly.
const MAX_EXACT_EXPONENT: u32 = 256;
/// Relative tolerance for values that are not exact (they carry `f64` rounding of a few operations).
const REL_TOLERANCE: f64 = 1e-12;

/// A number: exact when it can be, approximate otherwise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value {
    Exact(Ratio),
    Approx(f64),
}

impl Value {
    fn to_f64(self) -> f64 {
        match self {
            Value::Exact(r) => r.to_f64(),
            Value::Approx(x) => x,
        }
    }

    /// Apply an exact operation, falling back to `float` when either side is inexact or the exact
    /// result overflows `i128`.
    fn combine(
        self,
        o: Value,
        exact: impl Fn(Ratio, Ratio) -> Result<Ratio, ArithError>,
        float: impl Fn(f64, f64) -> f64,
    ) -> Value {
        if let (Value::Exact(a), Value::Exact(b)) = (self, o) {
            if let Ok(r) = exact(a, b) {
                return Value::Exact(r);
            }
        }
        Value::Approx(float(self.to_f64(), o.to_f64()))
    }

    fn add(self, o: Value) -> Value {
        self.combine(o, Ratio::checked_add, |a, b| a + b)
    }

    fn neg(self) -> Value {
        self.mul(Value::Exact(Ratio::integer(-1)))
    }

    fn mul(self, o: Value) -> Value {
        self.combine(o, Ratio::checked_mul, |a, b| a * b)
    }

    fn div(self, o: Value) -> Option<Value> {
        if o.to_f64() == 0.0 {
            return None;
        }
        Some(self.combine(o, Ratio::checked_div, |a, b| a / b))
    }

    fn pow(self, e: Value) -> Option<Value> {
        if let (Value::Exact(base), Value::Exact(exp)) = (self, e) {
            if let Some(n) = exp.to_integer() {
                if n.unsigned_abs() <= u128::from(MAX_EXACT_EXPONENT) {
                    if let Ok(r) = base.pow(n) {
                        return Some(Value::Exact(r));
                    }
                }
                if n < 0 && base.numer() == 0 {
                    return None;
                }
            } else if let Some(r) = u32::try_from(exp.denom()).ok().and_then(|d| base.root(d)) {
                let n = u32::try_from(exp.numer()).ok()?;
                return r
                    .pow(i128::from(n))
                    .ok()
                    .map(Value::Exact)
                    .or_else(|| Value::Exact(r).pow(Value::Exact(Ratio::integer(exp.numer()))));
            }
        }
        finite(self.to_f64().powf(e.to_f64()))
    }

    fn root(self, n: Value) -> Option<Value> {
        let Value::Exact(n) = n else { return None };
        let n = u32::try_from(n.to_integer()?).ok().filter(|&n| n >= 1)?;
        if let Value::Exact(r) = self {
            if let Some(root) = r.root(n) {
                return Some(Value::Exact(root));
            }
        }
        let x = self.to_f64();
        if x < 0.0 {
            return if n & 1 == 1 {
                finite(-(-x).powf(1.0 / f64::from(n)))
            } else {
                None
            };
        }
        finite(x.powf(1.0 / f64::from(n)))
    }

    /// Equality: exact for two exact values, else within a tight relative tolerance. `None` when a
    /// value is not finite.
    pub(crate) fn equals(self, o: Value) -> Option<bool> {
        if let (Value::Exact(a), Value::Exact(b)) = (self, o) {
            return Some(a == b);
        }
        let (a, b) = (self.to_f64(), o.to_f64());
        if !a.is_finite() || !b.is_finite() {
            return None;
        }
        let scale = a.abs().max(b.abs()).max(1.0);
        Some((a - b).abs() <= REL_TOLERANCE * scale)
    }
}

fn finite(x: f64) -> Option<Value> {
    x.is_finite().then_some(Value::Approx(x))
}

/// The value of a normalized answer, or `None` when it is not a closed-form number.
pub(crate) fn parse_value(s: &str) -> Option<Value> {
    let mut p = Parser {
        b: s.as_bytes(),
        i: 0,
        depth: 0,
    };
    let v = p.expr()?;
    (p.i == p.b.len()).then_some(v)
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        self.i += usize::from(hit);
        hit
    }

    fn eat_command(&mut self, name: &str) -> bool {
        let hit = super::latex::command_at(self.b, self.i, name);
        if hit {
            self.i += 1 + name.len();
        }
        hit
    }

    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        if self.depth >= MAX_DEPTH {
            return None;
        }
        self.depth += 1;
        let out = f(self);
        self.depth -= 1;
        out
    }

    /// expr := term (('+' | '-') term)*
    fn expr(&mut self) -> Option<Value> {
        self.nested(|p| {
            let mut v = p.term()?;
            loop {
                if p.eat(b'+') {
                    v = v.add(p.term()?);
                } else if p.eat(b'-') {
                    v = v.add(p.term()?.neg());
                } else {
                    return Some(v);
                }
            }
        })
    }

    /// term := unary ((op | implicit) unary)*, op one of `*`, `/`, `\cdot`, `\times`, `\div`.
    fn term(&mut self) -> Option<Value> {
        let (mut v, mut last_was_literal) = self.unary()?;
        loop {
            if self.eat(b'*') || self.eat_command("cdot") || self.eat_command("times") {
                v = v.mul(self.unary()?.0);
            } else if self.eat(b'/') || self.eat_command("div") {
                v = v.div(self.unary()?.0)?;
            } else if self.starts_implicit_factor() {
                if last_was_literal && super::latex::command_at(self.b, self.i, "frac") {
                    return None; // `2\frac{1}{2}`: a mixed number or a product; do not guess.
                }
                let (f, literal) = self.unary()?;
                v = v.mul(f);
                last_was_literal = literal;
                continue;
            } else {
                return Some(v);
            }
            last_was_literal = false;
        }
    }

    fn starts_implicit_factor(&self) -> bool {
        matches!(self.peek(), Some(b'(' | b'{'))
            || ["frac", "sqrt", "pi"]
                .iter()
                .any(|c| super::latex::command_at(self.b, self.i, c))
    }

    /// unary := ('-' | '+') unary | power; also says whether it was a bare number literal.
    fn unary(&mut self) -> Option<(Value, bool)> {
        if self.eat(b'-') {
            return self.nested(|p| Some((p.unary()?.0.neg(), false)));
        }
        if self.eat(b'+') {
            return self.nested(|p| Some((p.unary()?.0, false)));
        }
        let literal = self.peek().is_some_and(|c| c.is_ascii_digit() || c == b'.');
        let base = self.primary()?;
        if self.eat(b'^') {
            let exp = self.nested(|p| match p.peek() {
                Some(b'-') => {
                    p.i += 1;
                    Some(p.primary()?.neg())
                }
                _ => p.primary(),
            })?;
            return Some((base.pow(exp)?, false));
        }
        Some((base, literal))
    }

    /// primary := number | '(' expr ')' | '{' expr '}' | \frac{}{} | \sqrt[n]{} | \pi
    fn primary(&mut self) -> Option<Value> {
        match self.peek()? {
            c if c.is_ascii_digit() || c == b'.' => self.number(),
            b'(' => self.group(b'(', b')'),
            b'{' => self.group(b'{', b'}'),
            b'\\' => {
                if self.eat_command("frac") {
                    let num = self.group(b'{', b'}')?;
                    let den = self.group(b'{', b'}')?;
                    num.div(den)
                } else if self.eat_command("sqrt") {
                    let n = if self.peek() == Some(b'[') {
                        self.group(b'[', b']')?
                    } else {
                        Value::Exact(Ratio::integer(2))
                    };
                    self.group(b'{', b'}')?.root(n)
                } else if self.eat_command("pi") {
                    Some(Value::Approx(std::f64::consts::PI))
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    fn group(&mut self, open: u8, close: u8) -> Option<Value> {
        if !self.eat(open) {
            return None;
        }
        let v = self.expr()?;
        self.eat(close).then_some(v)
    }

    /// D+ [. D*] | . D+, exact when it fits in `i128`.
    fn number(&mut self) -> Option<Value> {
        let start = self.i;
        let digits = |p: &mut Self| {
            let from = p.i;
            while p.peek().is_some_and(|c| c.is_ascii_digit()) {
                p.i += 1;
            }
            p.i - from
        };
        let int_len = digits(self);
        let frac_len = if self.eat(b'.') { digits(self) } else { 0 };
        if int_len + frac_len == 0 {
            return None;
        }
        let text = std::str::from_utf8(&self.b[start..self.i]).ok()?;
        let mantissa: String = text.chars().filter(|c| c.is_ascii_digit()).collect();
        let exact = mantissa
            .parse::<i128>()
            .ok()
            .and_then(|m| Ratio::decimal(m, u32::try_from(frac_len).ok()?).ok());
        match exact {
            Some(r) => Some(Value::Exact(r)),
            None => finite(text.parse::<f64>().ok()?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(num: i128, den: i128) -> Option<Value> {
        Ratio::new(num, den).ok().map(Value::Exact)
    }

    #[test]
    fn decimals_and_fractions_are_exact() {
        assert_eq!(parse_value("0.5"), exact(1, 2));
        assert_eq!(parse_value(".5"), exact(1, 2));
        assert_eq!(parse_value("\\frac{1}{2}"), exact(1, 2));
        assert_eq!(parse_value("3/6"), exact(1, 2));
        assert_eq!(parse_value("0.1+0.2"), exact(3, 10));
        assert_eq!(parse_value("-\\frac{3}{-4}"), exact(3, 4));
        assert_eq!(parse_value("2^{-2}"), exact(1, 4));
        assert_eq!(parse_value("(2)(3)"), exact(6, 1));
        assert_eq!(parse_value("2\\cdot3\\times4\\div8"), exact(3, 1));
        assert_eq!(parse_value("-2^2"), exact(-4, 1));
        assert_eq!(parse_value("\\sqrt{\\frac{9}{4}}"), exact(3, 2));
        assert_eq!(parse_value("\\sqrt[3]{-8}"), exact(-2, 1));
        assert_eq!(parse_value("8^{\\frac{2}{3}}"), exact(4, 1));
    }

    #[test]
    fn irrational_values_are_approximate() {
        let v =
            parse_value("\\frac{\\sqrt{2}}{2}").and_then(|a| a.equals(parse_value("\\sqrt{0.5}")?));
        assert_eq!(v, Some(true));
        let two_pi = parse_value("2\\pi");
        assert!(
            matches!(two_pi, Some(Value::Approx(x)) if (x - std::f64::consts::TAU).abs() < 1e-15)
        );
        assert_eq!(
            parse_value("6.28").and_then(|a| a.equals(two_pi?)),
            Some(false),
            "a rounded decimal is not 2 pi"
        );
    }

    #[test]
    fn what_is_not_a_closed_form_number_does_not_parse() {
        for s in [
            "x",
            "2x",
            "1/0",
            "\\frac{1}{0}",
            "2\\frac{1}{2}",
            "\\infty",
            "5!",
            "(1",
            "1)",
            "",
            "\\sqrt{-1}",
            "0^{-1}",
            "1e5",
        ] {
            assert_eq!(parse_value(s), None, "{s}");
        }
    }

    #[test]
    fn overflow_falls_back_to_floats_and_deep_nesting_stops() {
        assert!(matches!(parse_value("10^{200}"), Some(Value::Approx(_))));
        assert!(matches!(
            parse_value("99999999999999999999999999999999999999999"),
            Some(Value::Approx(_))
        ));
        let deep = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
        assert_eq!(parse_value(&deep), None);
    }
}
