//! Exact rational numbers on `i128`: the values of answers (`0.1 + 0.2` is `3/10` exactly, see
//! [`answer`](crate::answer)) and of arithmetic steps (w2s-curation's step checker).
//!
//! Every operation is checked: an overflow is an [`ArithError::Overflow`] (the caller falls back
//! to floats, or calls the step undecidable), never a panic or a silently wrapped value. Values
//! stay reduced with a positive denominator, so structural equality is numeric equality.

use std::cmp::Ordering;

/// Why an exact computation has no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithError {
    /// A numerator or denominator left the `i128` range.
    Overflow,
    /// Division by zero.
    DivisionByZero,
}

/// `num / den`, reduced, `den > 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ratio {
    num: i128,
    den: i128,
}

type Checked = Result<Ratio, ArithError>;

fn gcd(a: i128, b: i128) -> i128 {
    // unsigned_abs avoids the overflow of i128::MIN.abs(); the gcd of two i128 fits unless both
    // are i128::MIN, where the later checked division reports overflow.
    let (mut a, mut b) = (a.unsigned_abs(), b.unsigned_abs());
    while b != 0 {
        (a, b) = (b, a % b);
    }
    i128::try_from(a).unwrap_or(i128::MAX)
}

impl Ratio {
    /// Zero.
    pub const ZERO: Ratio = Ratio { num: 0, den: 1 };

    /// The integer `n`.
    pub fn integer(n: i128) -> Self {
        Ratio { num: n, den: 1 }
    }

    /// `num / den`, reduced.
    pub fn new(num: i128, den: i128) -> Checked {
        if den == 0 {
            return Err(ArithError::DivisionByZero);
        }
        let g = gcd(num, den).max(1);
        let (mut num, mut den) = (num / g, den / g);
        if den < 0 {
            num = num.checked_neg().ok_or(ArithError::Overflow)?;
            den = den.checked_neg().ok_or(ArithError::Overflow)?;
        }
        Ok(Ratio { num, den })
    }

    /// `mantissa / 10^decimals`: a decimal as written (`3.25` is `decimal(325, 2)`).
    pub fn decimal(mantissa: i128, decimals: u32) -> Checked {
        let scale = 10i128.checked_pow(decimals).ok_or(ArithError::Overflow)?;
        Ratio::new(mantissa, scale)
    }

    /// Numerator (carries the sign).
    pub fn numer(self) -> i128 {
        self.num
    }

    /// Denominator (positive).
    pub fn denom(self) -> i128 {
        self.den
    }

    /// The value as an integer, when the denominator is 1.
    pub fn to_integer(self) -> Option<i128> {
        (self.den == 1).then_some(self.num)
    }

    /// `self + other`.
    pub fn checked_add(self, other: Ratio) -> Checked {
        let g = gcd(self.den, other.den);
        let (a, b) = (self.den / g, other.den / g);
        let left = self.num.checked_mul(b).ok_or(ArithError::Overflow)?;
        let right = other.num.checked_mul(a).ok_or(ArithError::Overflow)?;
        let num = left.checked_add(right).ok_or(ArithError::Overflow)?;
        let den = self.den.checked_mul(b).ok_or(ArithError::Overflow)?;
        Ratio::new(num, den)
    }

    /// `-self`.
    pub fn checked_neg(self) -> Checked {
        Ok(Ratio {
            num: self.num.checked_neg().ok_or(ArithError::Overflow)?,
            den: self.den,
        })
    }

    /// `self - other`.
    pub fn checked_sub(self, other: Ratio) -> Checked {
        self.checked_add(other.checked_neg()?)
    }

    /// `self * other`, cross-reducing first so that small results of big factors still fit.
    pub fn checked_mul(self, other: Ratio) -> Checked {
        let g1 = gcd(self.num, other.den).max(1);
        let g2 = gcd(other.num, self.den).max(1);
        let num = (self.num / g1)
            .checked_mul(other.num / g2)
            .ok_or(ArithError::Overflow)?;
        let den = (self.den / g2)
            .checked_mul(other.den / g1)
            .ok_or(ArithError::Overflow)?;
        Ratio::new(num, den)
    }

    /// `self / other`.
    pub fn checked_div(self, other: Ratio) -> Checked {
        if other.num == 0 {
            return Err(ArithError::DivisionByZero);
        }
        self.checked_mul(Ratio::new(other.den, other.num)?)
    }

    /// `floor(self / other)`, Python's `//`.
    pub fn floor_div(self, other: Ratio) -> Checked {
        let quotient = self.checked_div(other)?;
        // den > 0, so Euclidean division rounds toward negative infinity.
        Ok(Ratio::integer(quotient.num.div_euclid(quotient.den)))
    }

    /// `self ^ exponent` for an integer exponent.
    pub fn pow(self, exponent: i128) -> Checked {
        let odd = exponent % 2 != 0;
        let magnitude = match (self.num, self.den) {
            // 0, 1 and -1 never overflow, so they are settled without a loop of `exponent` steps.
            (0, _) if exponent != 0 => Ratio::ZERO,
            (1, 1) => self,
            (-1, 1) => Ratio::integer(if odd { -1 } else { 1 }),
            _ => {
                // Every other base has |num| >= 2 or den >= 2 and overflows within 127 factors.
                let mut result = Ratio::integer(1);
                for _ in 0..exponent.unsigned_abs() {
                    result = result.checked_mul(self)?;
                }
                result
            }
        };
        if exponent < 0 {
            Ratio::integer(1).checked_div(magnitude)
        } else {
            Ok(magnitude)
        }
    }

    /// The exact `n`-th root, when numerator and denominator are perfect `n`-th powers (and the
    /// root is real); `None` otherwise.
    pub fn root(self, n: u32) -> Option<Ratio> {
        if self.num < 0 && n & 1 == 0 {
            return None;
        }
        let num = i128::try_from(int_root(self.num.unsigned_abs(), n)?).ok()?;
        let den = i128::try_from(int_root(self.den.unsigned_abs(), n)?).ok()?;
        Ratio::new(if self.num < 0 { -num } else { num }, den).ok()
    }

    /// `|self|`.
    pub fn abs(self) -> Checked {
        if self.num < 0 {
            self.checked_neg()
        } else {
            Ok(self)
        }
    }

    /// The value as `f64` (for tests and display; never used for decisions).
    pub fn to_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }
}

/// The exact integer `n`-th root of `x`, if there is one.
fn int_root(x: u128, n: u32) -> Option<u128> {
    if n == 0 {
        return None;
    }
    // The float estimate is off by more than one only for roots of about 2^52 and more; those are
    // reported as having no exact root, and callers fall back to floats.
    let guess = (x as f64).powf(1.0 / f64::from(n)).round() as u128;
    (guess.saturating_sub(1)..=guess + 1).find(|r| r.checked_pow(n) == Some(x))
}

impl PartialOrd for Ratio {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ratio {
    fn cmp(&self, other: &Self) -> Ordering {
        // Sign of self - other, falling back to f64 only if the exact difference overflows.
        match self.checked_sub(*other) {
            Ok(diff) => diff.num.cmp(&0),
            Err(_) => self.to_f64().total_cmp(&other.to_f64()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(n: i128, d: i128) -> Ratio {
        Ratio::new(n, d).unwrap()
    }

    #[test]
    fn exact_arithmetic_stays_reduced() {
        assert_eq!(r(1, 3).checked_add(r(1, 6)).unwrap(), r(1, 2));
        assert_eq!(r(2, -4), r(-1, 2));
        assert_eq!(r(3, 4).checked_div(r(3, 8)).unwrap(), Ratio::integer(2));
        assert_eq!(r(2, 3).pow(-2).unwrap(), r(9, 4));
        assert_eq!(r(-7, 1).floor_div(r(2, 1)).unwrap(), Ratio::integer(-4));
        assert_eq!(r(560, 1).floor_div(r(10, 1)).unwrap(), Ratio::integer(56));
        assert_eq!(r(-1, 1).pow(i128::MAX).unwrap(), r(-1, 1));
        assert_eq!(r(-1, 1).pow(i128::MAX - 1).unwrap(), r(1, 1));
        assert_eq!(Ratio::ZERO.pow(0).unwrap(), r(1, 1));
        assert_eq!(Ratio::ZERO.pow(i128::MAX).unwrap(), Ratio::ZERO);
        assert!(r(1, 3) < r(34, 100));
    }

    #[test]
    fn decimals_integers_and_roots() {
        assert_eq!(Ratio::decimal(325, 2).unwrap(), r(13, 4));
        assert_eq!(Ratio::decimal(1, 39), Err(ArithError::Overflow));
        assert_eq!(r(6, 3).to_integer(), Some(2));
        assert_eq!(r(1, 2).to_integer(), None);
        assert_eq!(r(9, 4).root(2), Some(r(3, 2)));
        assert_eq!(r(-8, 27).root(3), Some(r(-2, 3)));
        assert_eq!(r(-4, 1).root(2), None);
        assert_eq!(r(2, 1).root(2), None);
        assert_eq!(r(5, 1).root(0), None);
    }

    #[test]
    fn overflow_and_division_by_zero_are_errors_not_panics() {
        let big = Ratio::integer(i128::MAX);
        assert_eq!(
            big.checked_add(Ratio::integer(1)),
            Err(ArithError::Overflow)
        );
        assert_eq!(big.checked_mul(big), Err(ArithError::Overflow));
        assert_eq!(
            Ratio::integer(i128::MIN).checked_neg(),
            Err(ArithError::Overflow)
        );
        assert_eq!(Ratio::integer(2).pow(200), Err(ArithError::Overflow));
        assert_eq!(
            r(1, 2).checked_div(Ratio::ZERO),
            Err(ArithError::DivisionByZero)
        );
        assert_eq!(Ratio::new(1, 0), Err(ArithError::DivisionByZero));
        assert_eq!(Ratio::ZERO.pow(-1), Err(ArithError::DivisionByZero));
        // Cross-reduction lets a small product of huge factors through.
        assert_eq!(
            r(i128::MAX, 3).checked_mul(r(3, i128::MAX)).unwrap(),
            Ratio::integer(1)
        );
    }
}
