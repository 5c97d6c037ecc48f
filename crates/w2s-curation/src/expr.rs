//! Exact evaluation of the arithmetic in a reasoning step: `48/2`, `$1,200 * 15%`, `(3+4) × 2`.
//!
//! Grammar (usual precedence, left-associative except `^`):
//!
//! ```text
//! expr    := term (("+" | "-") term)*
//! term    := unary (("*" | "/" | "//" | "x" | "×" | "÷") unary)*
//! unary   := ("-" | "+") unary | power
//! power   := postfix (("^" | "**") unary)?
//! postfix := primary "%"*                      -- a percent sign divides by 100
//! primary := number | "(" expr ")"
//! number  := "$"? (digits ("," ddd)* ("." digits)? | "." digits) (" "+ digits "/" digits)?
//! ```
//!
//! Python's `eval` of GSM8K's calculator annotations gives the same values (true division, `//`
//! floor division, `**` for powers, `-2**2 == -4`). An integer followed by a space and a proper
//! fraction is a mixed number (`1 1/2` is 3/2), as prose writes it; two numbers side by side are
//! otherwise no expression, so the reading is unambiguous. A `,` is a thousands separator only before exactly three
//! digits, as in `1,200`. Nesting deeper than [`MAX_DEPTH`] is a syntax error, so no input can
//! exhaust the stack. Evaluation is exact on [`Ratio`]; overflow is reported, never wrapped.

use w2s_eval::rational::{ArithError, Ratio};

/// Deepest nesting of parentheses and unary operators accepted.
pub const MAX_DEPTH: usize = 64;

/// Why an expression has no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExprError {
    /// Not an expression of the grammar.
    Syntax,
    /// Well formed, but a value left the `i128` range.
    Overflow,
    /// Well formed, but divides by zero.
    DivisionByZero,
}

impl From<ArithError> for ExprError {
    fn from(e: ArithError) -> Self {
        match e {
            ArithError::Overflow => ExprError::Overflow,
            ArithError::DivisionByZero => ExprError::DivisionByZero,
        }
    }
}

/// A parsed expression's value and how many binary operators it applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evaluation {
    /// Exact value.
    pub value: Ratio,
    /// Binary operators applied (`48/2` has one; a bare number none).
    pub operators: usize,
}

/// Evaluate the whole of `text` (surrounding whitespace allowed).
///
/// # Errors
/// [`ExprError::Syntax`] unless all of `text` is one expression; otherwise an arithmetic error.
pub fn evaluate(text: &str) -> Result<Evaluation, ExprError> {
    let mut parser = Parser {
        bytes: text.as_bytes(),
        pos: 0,
        depth: 0,
        operators: 0,
        arith: None,
    };
    let value = parser.expr();
    parser.skip_space();
    // A syntax error anywhere beats an arithmetic one: `1/0 +` is not an expression at all.
    if parser.pos != parser.bytes.len() {
        return Err(ExprError::Syntax);
    }
    let value = value?;
    match parser.arith {
        Some(error) => Err(error.into()),
        None => Ok(Evaluation {
            value,
            operators: parser.operators,
        }),
    }
}

/// A number as written: its value and its decimal places (`3.25` has 2, `12.5%` has 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Literal {
    /// Exact value (percentages already divided by 100).
    pub value: Ratio,
    /// Decimal places of the written value, counting the two a `%` adds.
    pub decimals: u32,
    /// Written with a `%` sign.
    pub percent: bool,
}

/// Parse a signed number literal at the start of `text` (after optional spaces); returns it and
/// the byte length consumed. `None` when `text` does not start with one.
pub fn literal_prefix(text: &str) -> Option<(Literal, usize)> {
    let mut parser = Parser {
        bytes: text.as_bytes(),
        pos: 0,
        depth: 0,
        operators: 0,
        arith: None,
    };
    parser.skip_space();
    parser.eat(b"$");
    let negative = parser.eat(b"-");
    parser.eat(b"$");
    let (mut value, mut decimals) = parser.number().ok()?;
    if parser.arith.is_some() {
        return None;
    }
    // No space before `%`, so that the length never swallows the space after the number.
    let percent = parser.bytes.get(parser.pos) == Some(&b'%');
    if percent {
        parser.pos += 1;
        value = value.checked_div(Ratio::integer(100)).ok()?;
        decimals += 2;
    }
    if negative {
        value = value.checked_neg().ok()?;
    }
    Some((
        Literal {
            value,
            decimals,
            percent,
        },
        parser.pos,
    ))
}

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
    operators: usize,
    /// The first arithmetic error; parsing goes on so that syntax is still checked.
    arith: Option<ArithError>,
}

type Parsed = Result<Ratio, ExprError>;

impl Parser<'_> {
    fn skip_space(&mut self) {
        while self.pos < self.bytes.len() && self.bytes[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    /// Consume `token` (after spaces) if it comes next.
    fn eat(&mut self, token: &[u8]) -> bool {
        self.skip_space();
        if self.bytes[self.pos..].starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    /// Record an arithmetic result, keeping the first error and a placeholder value.
    fn settle(&mut self, result: Result<Ratio, ArithError>) -> Ratio {
        result.unwrap_or_else(|error| {
            self.arith.get_or_insert(error);
            Ratio::ZERO
        })
    }

    fn nested<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, ExprError>,
    ) -> Result<T, ExprError> {
        if self.depth >= MAX_DEPTH {
            return Err(ExprError::Syntax);
        }
        self.depth += 1;
        let out = f(self);
        self.depth -= 1;
        out
    }

    fn expr(&mut self) -> Parsed {
        let mut value = self.term()?;
        loop {
            let op: fn(Ratio, Ratio) -> Result<Ratio, ArithError> = if self.eat(b"+") {
                Ratio::checked_add
            } else if self.eat(b"-") {
                Ratio::checked_sub
            } else {
                return Ok(value);
            };
            let right = self.term()?;
            self.operators += 1;
            value = self.settle(op(value, right));
        }
    }

    fn term(&mut self) -> Parsed {
        let mut value = self.unary()?;
        loop {
            let op: fn(Ratio, Ratio) -> Result<Ratio, ArithError> = if self.at_power() {
                return Ok(value);
            } else if self.eat(b"*") || self.eat(b"x") || self.eat(b"X") || self.eat("×".as_bytes())
            {
                Ratio::checked_mul
            } else if self.eat(b"//") {
                Ratio::floor_div
            } else if self.eat(b"/") || self.eat("÷".as_bytes()) {
                Ratio::checked_div
            } else {
                return Ok(value);
            };
            let right = self.unary()?;
            self.operators += 1;
            value = self.settle(op(value, right));
        }
    }

    fn at_power(&mut self) -> bool {
        self.skip_space();
        self.bytes[self.pos..].starts_with(b"**")
    }

    fn unary(&mut self) -> Parsed {
        if self.eat(b"-") {
            let inner = self.nested(Self::unary)?;
            Ok(self.settle(inner.checked_neg()))
        } else if self.eat(b"+") {
            self.nested(Self::unary)
        } else {
            self.power()
        }
    }

    fn power(&mut self) -> Parsed {
        let base = self.postfix()?;
        if !(self.eat(b"**") || self.eat(b"^")) {
            return Ok(base);
        }
        let exponent = self.nested(Self::unary)?;
        self.operators += 1;
        if exponent.denom() != 1 {
            // A fractional power is usually irrational; exact arithmetic cannot decide the step.
            self.arith.get_or_insert(ArithError::Overflow);
            return Ok(Ratio::ZERO);
        }
        Ok(self.settle(base.pow(exponent.numer())))
    }

    fn postfix(&mut self) -> Parsed {
        let mut value = self.primary()?;
        while self.eat(b"%") {
            value = self.settle(value.checked_div(Ratio::integer(100)));
        }
        Ok(value)
    }

    fn primary(&mut self) -> Parsed {
        if self.eat(b"(") {
            let value = self.nested(Self::expr)?;
            return if self.eat(b")") {
                Ok(value)
            } else {
                Err(ExprError::Syntax)
            };
        }
        self.eat(b"$");
        let (value, _) = self.number()?;
        Ok(value)
    }

    /// An unsigned number, mixed numbers included, and its decimal places.
    fn number(&mut self) -> Result<(Ratio, u32), ExprError> {
        let (whole, decimals) = self.plain_number()?;
        if decimals > 0 {
            return Ok((whole, decimals));
        }
        match self.proper_fraction_follows() {
            Some((fraction, end)) => {
                self.pos = end;
                Ok((self.settle(whole.checked_add(fraction)), 0))
            }
            None => Ok((whole, 0)),
        }
    }

    /// After an integer: spaces, then `a/b` with `a < b` and no digit, `.` or `/` right after.
    /// Returns its value and where it ends.
    fn proper_fraction_follows(&self) -> Option<(Ratio, usize)> {
        let digits_at = |from: usize| {
            self.bytes[from..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count()
        };
        let spaces = self.bytes[self.pos..]
            .iter()
            .take_while(|&&b| b == b' ')
            .count();
        let start = self.pos + spaces;
        let numerator_len = digits_at(start);
        let slash = start + numerator_len;
        if spaces == 0 || numerator_len == 0 || self.bytes.get(slash) != Some(&b'/') {
            return None;
        }
        let denominator_len = digits_at(slash + 1);
        let end = slash + 1 + denominator_len;
        if denominator_len == 0 || matches!(self.bytes.get(end), Some(b'.' | b'/')) {
            return None;
        }
        let parse = |range: std::ops::Range<usize>| -> Option<i128> {
            std::str::from_utf8(&self.bytes[range]).ok()?.parse().ok()
        };
        let numerator = parse(start..slash)?;
        let denominator = parse(slash + 1..end)?;
        (numerator < denominator)
            .then(|| Ratio::new(numerator, denominator).ok())
            .flatten()
            .map(|fraction| (fraction, end))
    }

    /// An unsigned number without a fraction part, and its decimal places.
    fn plain_number(&mut self) -> Result<(Ratio, u32), ExprError> {
        self.skip_space();
        let mut num: i128 = 0;
        let mut digits = 0usize;
        let mut overflow = false;
        let mut push = |num: &mut i128, b: u8| match num
            .checked_mul(10)
            .and_then(|n| n.checked_add(i128::from(b - b'0')))
        {
            Some(n) => *num = n,
            None => overflow = true,
        };
        while let Some(&b) = self.bytes.get(self.pos) {
            if b.is_ascii_digit() {
                push(&mut num, b);
                digits += 1;
                self.pos += 1;
            } else if b == b',' && digits > 0 && self.thousands_group_follows() {
                self.pos += 1;
            } else {
                break;
            }
        }
        let mut decimals = 0u32;
        if self.bytes.get(self.pos) == Some(&b'.')
            && self.bytes.get(self.pos + 1).is_some_and(u8::is_ascii_digit)
        {
            self.pos += 1;
            while let Some(&b) = self.bytes.get(self.pos).filter(|b| b.is_ascii_digit()) {
                push(&mut num, b);
                decimals = decimals.saturating_add(1);
                self.pos += 1;
            }
        } else if digits == 0 {
            return Err(ExprError::Syntax);
        }
        if overflow {
            self.arith.get_or_insert(ArithError::Overflow);
            return Ok((Ratio::ZERO, decimals));
        }
        Ok((self.settle(Ratio::decimal(num, decimals)), decimals))
    }

    /// At a `,`: exactly three digits follow, then no further digit.
    fn thousands_group_follows(&self) -> bool {
        let rest = &self.bytes[self.pos + 1..];
        rest.len() >= 3
            && rest[..3].iter().all(u8::is_ascii_digit)
            && !rest.get(3).is_some_and(u8::is_ascii_digit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str) -> Ratio {
        evaluate(text).unwrap().value
    }

    fn r(n: i128, d: i128) -> Ratio {
        Ratio::new(n, d).unwrap()
    }

    #[test]
    fn precedence_and_associativity_follow_python() {
        assert_eq!(value("48/2"), Ratio::integer(24));
        assert_eq!(value("2+3*4"), Ratio::integer(14));
        assert_eq!(value("10-4-3"), Ratio::integer(3));
        assert_eq!(value("8/4/2"), Ratio::integer(1));
        assert_eq!(value("-2**2"), Ratio::integer(-4));
        assert_eq!(value("2**3**2"), Ratio::integer(512));
        assert_eq!(value("2^-1"), r(1, 2));
        assert_eq!(value("(3 + 4) x 2"), Ratio::integer(14));
        assert_eq!(value("6 × 7 ÷ 3"), Ratio::integer(14));
        assert_eq!(value("560//10"), Ratio::integer(56));
        assert_eq!(value("-7//2"), Ratio::integer(-4));
    }

    #[test]
    fn numbers_in_the_forms_solutions_write_them() {
        assert_eq!(value("$1,200 * 15%"), Ratio::integer(180));
        assert_eq!(value(".5*3"), r(3, 2));
        assert_eq!(value("20*.01"), r(1, 5));
        assert_eq!(value("1,000,000/1,000"), Ratio::integer(1000));
        assert_eq!(value("8 x 1 1/2"), Ratio::integer(12));
        assert_eq!(value("2 + 3 1/2"), r(11, 2));
        assert_eq!(
            evaluate("3 4/2"),
            Err(ExprError::Syntax),
            "not a proper fraction"
        );
        assert_eq!(
            evaluate("1,00 + 1"),
            Err(ExprError::Syntax),
            "not a thousands group"
        );
        assert_eq!(evaluate("3.").map(|e| e.value), Err(ExprError::Syntax));
    }

    #[test]
    fn operators_are_counted() {
        assert_eq!(evaluate("7").unwrap().operators, 0);
        assert_eq!(evaluate("(1+2)*3").unwrap().operators, 2);
        assert_eq!(evaluate("-5%").unwrap().operators, 0);
    }

    #[test]
    fn errors_are_classified() {
        assert_eq!(evaluate("1/0"), Err(ExprError::DivisionByZero));
        assert_eq!(evaluate("1/0 +"), Err(ExprError::Syntax));
        assert_eq!(
            evaluate("99999999999999999999999999999999999999999"),
            Err(ExprError::Overflow)
        );
        assert_eq!(evaluate("4**0.5"), Err(ExprError::Overflow));
        assert_eq!(evaluate("(((1)"), Err(ExprError::Syntax));
        assert_eq!(evaluate(""), Err(ExprError::Syntax));
        assert_eq!(evaluate("2 3"), Err(ExprError::Syntax));
        let deep = format!("{}1{}", "(".repeat(1000), ")".repeat(1000));
        assert_eq!(evaluate(&deep), Err(ExprError::Syntax));
        assert_eq!(evaluate(&"-".repeat(100_000)), Err(ExprError::Syntax));
    }

    #[test]
    fn literal_prefix_reads_sign_money_percent_and_decimals() {
        let (lit, len) = literal_prefix(" $1,234.50 apples").unwrap();
        assert_eq!((lit.value, lit.decimals, len), (r(246_900, 200), 2, 10));
        let (lit, _) = literal_prefix("-$3").unwrap();
        assert_eq!(lit.value, Ratio::integer(-3));
        let (lit, _) = literal_prefix("12.5%").unwrap();
        assert_eq!((lit.value, lit.decimals), (r(1, 8), 3));
        assert!(literal_prefix("five").is_none());
    }
}
