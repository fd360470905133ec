//! Retrying a request: each attempt says whether it is done, worth another try or final,
//! and [`Retry::run`] repeats it with exponential backoff until one is done or final, or
//! the attempts or the time budget run out. Also the rules the two HTTP clients (the
//! arka-server store and the notification webhook) share: which answers are worth another
//! try, and an error with its causes on one line.

use std::future::Future;
use std::time::{Duration, Instant};

/// What one attempt came to.
#[derive(Debug)]
pub enum Step<T, E> {
    Done(T),
    /// Worth another try: the network, a timeout, a busy or failing server.
    Retry(E),
    /// Final: another try would get the same answer.
    Fail(E),
}

/// How hard to try.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    /// Attempts in all, the first included; at least one is made.
    pub attempts: u32,
    /// The pause before the first retry; doubled before each further one, up to `max_backoff`.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// Adds up to half of each pause at random, so clients that failed together do not
    /// come back together.
    pub jitter: bool,
    /// No retry starts whose pause would end later than this after the first attempt began.
    pub budget: Option<Duration>,
}

/// How a retried operation ended without success.
#[derive(Debug)]
pub struct GaveUp<E> {
    /// The last attempt's error.
    pub error: E,
    /// Attempts made.
    pub attempts: u32,
    /// `true` when the last error was worth another try but the attempts or the budget
    /// ran out; `false` when it was final.
    pub exhausted: bool,
}

impl Retry {
    /// Runs `attempt` (given the attempt number, 0 first) until it is done or final, or
    /// until attempts or budget run out; `on_retry` sees each error that is retried.
    pub async fn run<T, E, F, Fut>(&self, mut attempt: F, mut on_retry: impl FnMut(&E)) -> Result<T, GaveUp<E>>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Step<T, E>>,
    {
        let start = Instant::now();
        let mut backoff = self.first_backoff;
        let mut n = 0;
        loop {
            let error = match attempt(n).await {
                Step::Done(t) => return Ok(t),
                Step::Fail(error) => return Err(GaveUp { error, attempts: n + 1, exhausted: false }),
                Step::Retry(error) => error,
            };
            let out_of_time = self.budget.is_some_and(|b| start.elapsed() + backoff > b);
            if n + 1 >= self.attempts.max(1) || out_of_time {
                return Err(GaveUp { error, attempts: n + 1, exhausted: true });
            }
            on_retry(&error);
            let jitter = if self.jitter { backoff.mul_f64(rand::random::<f64>() * 0.5) } else { Duration::ZERO };
            tokio::time::sleep(backoff + jitter).await;
            backoff = backoff.saturating_mul(2).min(self.max_backoff);
            n += 1;
        }
    }
}

/// 5xx, 408 and 429: the server or a proxy may answer differently in a moment.
pub fn retryable_status(s: reqwest::StatusCode) -> bool {
    use reqwest::StatusCode;
    s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT || s == StatusCode::TOO_MANY_REQUESTS
}

/// An error and its causes on one line ("a: b: c"), since the outer layers of HTTP and
/// SMTP errors rarely say what went wrong (reqwest's own stops at "error sending request").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let next = c.to_string();
        if !text.contains(&next) {
            text += ": ";
            text += &next;
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    const FAST: Retry = Retry {
        attempts: 4,
        first_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(2),
        jitter: true,
        budget: None,
    };

    #[tokio::test]
    async fn retries_until_done_and_reports_each_retried_error() {
        let seen = Cell::new(0);
        let result = FAST
            .run(
                |n| async move {
                    if n < 2 {
                        Step::Retry(n)
                    } else {
                        Step::Done("ok")
                    }
                },
                |_| seen.set(seen.get() + 1),
            )
            .await;
        assert_eq!(result.unwrap(), "ok");
        assert_eq!(seen.get(), 2);
    }

    #[tokio::test]
    async fn a_final_error_is_not_retried() {
        let e = FAST.run(|n| async move { Step::<(), _>::Fail(n) }, |_| {}).await.unwrap_err();
        assert_eq!((e.error, e.attempts, e.exhausted), (0, 1, false));
    }

    #[tokio::test]
    async fn gives_up_after_the_attempts_or_the_budget() {
        let e = FAST.run(|n| async move { Step::<(), _>::Retry(n) }, |_| {}).await.unwrap_err();
        assert_eq!((e.error, e.attempts, e.exhausted), (3, 4, true));
        let budget = Retry { budget: Some(Duration::ZERO), ..FAST };
        let e = budget.run(|n| async move { Step::<(), _>::Retry(n) }, |_| {}).await.unwrap_err();
        assert_eq!((e.attempts, e.exhausted), (1, true), "no pause fits a zero budget");
    }

    #[test]
    fn server_trouble_is_worth_another_try_and_refusals_are_not() {
        for code in [500, 502, 503, 408, 429] {
            assert!(retryable_status(reqwest::StatusCode::from_u16(code).unwrap()), "{code}");
        }
        for code in [400, 401, 403, 404, 409, 413] {
            assert!(!retryable_status(reqwest::StatusCode::from_u16(code).unwrap()), "{code}");
        }
    }
}
