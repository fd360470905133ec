//! What a request body may hold and for how long: upload slots (all tokens together, and
//! per token, so one clinic cannot take them all) and the body reader that cuts a client
//! that stalls or trickles, so a slot is never held longer than the limits allow.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use crate::config::Limits;

/// Bounds the uploads buffered in memory at once: `max_uploads` in all, and
/// `max_uploads_per_token` for each token. Both wait in turn (tokio's semaphores are
/// fair); what holds a slot is bounded in time by [`read_body`], so every wait ends.
pub struct UploadSlots {
    all: Semaphore,
    max: usize,
    per_token: HashMap<String, Semaphore>,
    per_token_max: usize,
    waiting: AtomicU64,
}

/// Held while an upload is received and stored; dropping it (on every path, including a
/// client gone or a handler cancelled) frees both slots.
pub struct UploadSlot<'a> {
    _token: SemaphorePermit<'a>,
    _all: SemaphorePermit<'a>,
}

impl UploadSlots {
    /// Slots for the tokens named; a token not named gets none (it cannot upload).
    pub fn new<'a>(limits: &Limits, tokens: impl IntoIterator<Item = &'a str>) -> Self {
        let per = limits.max_uploads_per_token;
        Self {
            all: Semaphore::new(limits.max_uploads),
            max: limits.max_uploads,
            per_token: tokens.into_iter().map(|t| (t.to_string(), Semaphore::new(per))).collect(),
            per_token_max: per,
            waiting: AtomicU64::new(0),
        }
    }

    /// Waits for one of `token`'s slots, then for one of all; the token's first, so a
    /// token over its cap never holds a global slot while it waits. `None` for a token
    /// without slots.
    pub async fn acquire(&self, token: &str) -> Option<UploadSlot<'_>> {
        let mine = self.per_token.get(token)?;
        self.waiting.fetch_add(1, Relaxed);
        let _waiting = Decrement(&self.waiting);
        let token_permit = mine.acquire().await.ok()?;
        let all = self.all.acquire().await.ok()?;
        Some(UploadSlot { _token: token_permit, _all: all })
    }

    /// Uploads holding a slot now.
    pub fn receiving(&self) -> u64 {
        (self.max - self.all.available_permits()) as u64
    }

    /// Uploads waiting for a slot now.
    pub fn waiting(&self) -> u64 {
        self.waiting.load(Relaxed)
    }

    /// Uploads `token` holds now.
    pub fn held_by(&self, token: &str) -> usize {
        self.per_token.get(token).map_or(0, |s| self.per_token_max - s.available_permits())
    }
}

struct Decrement<'a>(&'a AtomicU64);

impl Drop for Decrement<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// How slow a body may be: at least `min_rate` bytes per second on average once `grace`
/// has passed, and never a pause longer than `stall`.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimits {
    pub min_rate: u64,
    pub grace: Duration,
    pub stall: Duration,
}

impl From<&Limits> for BodyLimits {
    fn from(l: &Limits) -> Self {
        Self { min_rate: l.body_min_rate, grace: l.body_grace, stall: l.body_stall }
    }
}

/// Why a body was not read whole.
#[derive(Debug)]
pub enum BodyError {
    TooLarge,
    /// Nothing arrived for `stall`.
    Stalled {
        received: u64,
    },
    /// Slower on average than the minimum rate.
    TooSlow {
        received: u64,
        elapsed: Duration,
    },
    /// The connection failed or the framing was wrong (the client went away mid-body).
    Broken(String),
}

impl BodyError {
    /// The label for `/metrics` and the log: a client cut for being slow.
    pub fn slow_reason(&self) -> Option<&'static str> {
        match self {
            Self::Stalled { .. } => Some("body_stalled"),
            Self::TooSlow { .. } => Some("body_too_slow"),
            Self::TooLarge | Self::Broken(_) => None,
        }
    }
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge => write!(f, "the body is over the limit"),
            Self::Stalled { received } => {
                write!(f, "nothing arrived for too long after {received} bytes (body_stall_secs); send the body without pausing")
            }
            Self::TooSlow { received, elapsed } => write!(
                f,
                "{received} bytes in {:.0} s is slower than this server accepts (body_min_rate_kib); \
                 check the uplink or send fewer uploads at once",
                elapsed.as_secs_f64()
            ),
            Self::Broken(e) => write!(f, "the body did not arrive whole: {e}"),
        }
    }
}

/// Reads a whole body of at most `limit` bytes, or stops as soon as it is too slow: no
/// byte for `stall`, or fewer than `min_rate` × (elapsed − `grace`) bytes so far. So a body
/// of n bytes gets at most `grace` + n / `min_rate` in all. Bytes are buffered as they
/// arrive, never ahead of them, so a client that declares a large length and then stalls
/// holds only what it sent.
pub async fn read_body(body: Body, limit: usize, limits: BodyLimits) -> Result<Bytes, BodyError> {
    let start = Instant::now();
    let mut last = start;
    let mut buf = BytesMut::new();
    let mut body = body;
    loop {
        let received = buf.len() as u64;
        let too_slow_at = start + limits.grace + Duration::from_secs_f64(received as f64 / limits.min_rate as f64);
        let stalled_at = last + limits.stall;
        let frame = match tokio::time::timeout_at(too_slow_at.min(stalled_at), body.frame()).await {
            Ok(None) => return Ok(buf.freeze()),
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(e))) => return Err(BodyError::Broken(e.to_string())),
            Err(_) if stalled_at <= too_slow_at => return Err(BodyError::Stalled { received }),
            Err(_) => return Err(BodyError::TooSlow { received, elapsed: start.elapsed() }),
        };
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(BodyError::TooLarge);
            }
            buf.extend_from_slice(&data);
            last = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::channel::mpsc;
    use futures::SinkExt;

    type Piece = Result<Bytes, std::io::Error>;

    const LIMITS: BodyLimits =
        BodyLimits { min_rate: 1000, grace: Duration::from_secs(10), stall: Duration::from_secs(5) };

    fn channel_body() -> (mpsc::Sender<Piece>, Body) {
        let (tx, rx) = mpsc::channel::<Piece>(16);
        (tx, Body::from_stream(rx))
    }

    /// Sends `n` pieces of `size` bytes, `every` apart, then ends the body.
    fn send_pieces(mut tx: mpsc::Sender<Piece>, n: usize, size: usize, every: Duration) {
        tokio::spawn(async move {
            for _ in 0..n {
                tokio::time::sleep(every).await;
                if tx.send(Ok(Bytes::from(vec![7u8; size]))).await.is_err() {
                    return;
                }
            }
        });
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_body_is_read_whole_even_when_it_takes_longer_than_the_grace() {
        let (tx, body) = channel_body();
        // 2,000 bytes/s for 30 s: well over the minimum rate, far past the grace.
        send_pieces(tx, 60, 1000, Duration::from_millis(500));
        let bytes = read_body(body, 1 << 20, LIMITS).await.unwrap();
        assert_eq!(bytes.len(), 60_000);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_is_cut_after_the_stall_timeout() {
        let (mut tx, body) = channel_body();
        tx.send(Ok(Bytes::from_static(b"part of a pack"))).await.unwrap();
        let start = Instant::now();
        let e = read_body(body, 1 << 20, LIMITS).await.unwrap_err();
        assert!(matches!(e, BodyError::Stalled { received: 14 }), "{e:?}");
        assert_eq!(start.elapsed(), LIMITS.stall);
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_that_never_pauses_long_is_cut_when_it_falls_below_the_rate() {
        let (tx, body) = channel_body();
        // 10 bytes a second, never a pause near the stall timeout: only the rate catches it,
        // just after the grace (10 s) plus what the bytes received by then buy (0.1 s).
        send_pieces(tx, 1000, 10, Duration::from_secs(1));
        let start = Instant::now();
        let e = read_body(body, 1 << 20, LIMITS).await.unwrap_err();
        assert!(matches!(e, BodyError::TooSlow { .. }), "{e:?}");
        let took = start.elapsed();
        assert!(took > LIMITS.grace && took < LIMITS.grace + Duration::from_secs(1), "{took:?}");
        assert!(e.to_string().contains("body_min_rate_kib"), "{e}");
    }

    #[tokio::test(start_paused = true)]
    async fn over_the_limit_and_a_broken_body_are_told_apart() {
        let (tx, body) = channel_body();
        send_pieces(tx, 3, 400, Duration::from_millis(10));
        assert!(matches!(read_body(body, 1000, LIMITS).await, Err(BodyError::TooLarge)));
        let (mut tx, body) = channel_body();
        tx.send(Ok(Bytes::from_static(b"abc"))).await.unwrap();
        tx.send(Err(std::io::Error::other("connection reset"))).await.unwrap();
        let e = read_body(body, 1000, LIMITS).await.unwrap_err();
        assert!(matches!(&e, BodyError::Broken(m) if m.contains("connection reset")), "{e:?}");
        assert_eq!(e.slow_reason(), None);
    }

    #[tokio::test]
    async fn a_token_over_its_cap_waits_while_another_token_uploads() {
        let limits = Limits { max_uploads: 4, max_uploads_per_token: 2, ..Limits::default() };
        let slots = UploadSlots::new(&limits, ["a", "b"]);
        let a1 = slots.acquire("a").await.unwrap();
        let _a2 = slots.acquire("a").await.unwrap();
        let third = tokio::time::timeout(Duration::from_millis(50), slots.acquire("a")).await;
        assert!(third.is_err(), "a third upload of `a` got a slot");
        assert_eq!(slots.waiting(), 0, "a cancelled wait is no longer counted");
        let b = tokio::time::timeout(Duration::from_secs(5), slots.acquire("b")).await.unwrap().unwrap();
        assert_eq!((slots.receiving(), slots.held_by("a"), slots.held_by("b")), (3, 2, 1));
        drop(a1);
        let _a3 = tokio::time::timeout(Duration::from_secs(5), slots.acquire("a")).await.unwrap().unwrap();
        drop(b);
        assert_eq!(slots.receiving(), 2);
        assert!(slots.acquire("nobody").await.is_none());
    }
}
