//! When and how long to wait before sending a request again.
//!
//! A request is retried on 429 (the server's queue is full), on any 5xx, and on connection
//! errors and timeouts; any other answer is final. Between attempts the sampler sleeps for the
//! server's `Retry-After` when it sends one (in seconds, up to an hour), else for a random time
//! between zero and `base_delay · 2^retry`, capped at `max_delay` ("full jitter"): many clients
//! that were refused at once spread out instead of coming back together.

use std::time::Duration;

use rand::RngExt;

/// How often and how long to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts after the first; 0 sends each request once.
    pub max_retries: u32,
    /// The backoff before the first retry is drawn from `0..base_delay`.
    pub base_delay: Duration,
    /// No backoff is longer than this (a `Retry-After` is honoured as sent, up to an hour).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// How long to sleep before retry number `retry` (0 for the first): `retry_after` when the
    /// server sent one, else full jitter.
    pub fn delay(
        &self,
        retry: u32,
        retry_after: Option<Duration>,
        rng: &mut impl rand::Rng,
    ) -> Duration {
        if let Some(wait) = retry_after {
            return wait;
        }
        let ceiling = self
            .base_delay
            .saturating_mul(1u32.checked_shl(retry).unwrap_or(u32::MAX))
            .min(self.max_delay);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rng.random_range(0..=nanos))
    }
}

/// Whether an HTTP status is worth another attempt: 429 and every 5xx.
pub fn retryable_status(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
}

/// A `Retry-After` header's wait: seconds as an integer or a decimal. The HTTP-date form is
/// not read (the backoff applies then).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let seconds: f64 = value.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(3600.0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_is_jittered_below_a_doubling_capped_ceiling() {
        let policy = RetryPolicy {
            max_retries: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        };
        let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(0);
        for (retry, ceiling) in [
            (0, 100),
            (1, 200),
            (2, 400),
            (3, 800),
            (4, 1000),
            (40, 1000),
        ] {
            let delays: Vec<Duration> = (0..200)
                .map(|_| policy.delay(retry, None, &mut rng))
                .collect();
            let ceiling = Duration::from_millis(ceiling);
            assert!(delays.iter().all(|&d| d <= ceiling), "retry {retry}");
            // Full jitter: the draws spread over the whole range, not near the ceiling.
            assert!(delays.iter().any(|&d| d < ceiling / 4), "retry {retry}");
            assert!(delays.iter().any(|&d| d > ceiling * 3 / 4), "retry {retry}");
        }
        let told = Some(Duration::from_secs(2));
        assert_eq!(policy.delay(0, told, &mut rng), Duration::from_secs(2));
    }

    #[test]
    fn retry_after_reads_seconds_and_ignores_dates() {
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("0.25"), Some(Duration::from_millis(250)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[test]
    fn only_429_and_5xx_are_retried() {
        let retried: Vec<u16> = [200, 400, 404, 413, 429, 500, 503, 599]
            .into_iter()
            .filter(|&s| retryable_status(s))
            .collect();
        assert_eq!(retried, [429, 500, 503, 599]);
    }
}
