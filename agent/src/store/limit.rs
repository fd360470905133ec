//! Bandwidth limits per target: a token bucket per direction that paces the bytes a store
//! sends and receives, and the local hours in which it lets them run at full speed.
//!
//! The bucket saves up at most [`MAX_BURST`] (or one second's worth, if less), and the
//! backends hand it slices of at most [`SLICE`] bytes as they send them, so a shared clinic
//! uplink sees a steady trickle rather than a 16 MiB pack at line speed every few seconds.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// The most a bucket saves up while idle: a quarter second of a 1 MiB/s uplink.
pub const MAX_BURST: u64 = 256 << 10;

/// The largest piece a paced transfer sends or receives at once.
pub const SLICE: usize = 64 << 10;

/// The slowest limit accepted: below it a 16 MiB pack takes over a quarter of an hour, and
/// such a value is almost always a typo (`16 kB/s` for `16 MB/s`).
pub const MIN_RATE: u64 = 16 << 10;

/// Parses a rate: a size as [`crate::platform::units::parse_size`] reads it, per second
/// (`2 MiB/s`, `500 kB/s`).
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let Some(size) = lower.strip_suffix("/s").or_else(|| lower.strip_suffix("/sec")) else {
        return Err(format!("{s:?}: a limit is a rate: write it per second, e.g. \"2 MiB/s\""));
    };
    let rate = crate::platform::units::parse_size(&t[..size.len()])?;
    if rate == 0 {
        return Err(format!(
            "{s:?} would stop all traffic: give a rate such as \"512 KiB/s\", or leave the limit out for none"
        ));
    }
    if rate < MIN_RATE {
        return Err(format!("{s:?} is too slow to move backups (a pack would take hours): at least \"16 KiB/s\""));
    }
    Ok(rate)
}

/// Local hours in which limits do not apply, e.g. `20:00-06:00` (which wraps midnight).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FullSpeedHours {
    /// Minutes after local midnight: the first minute at full speed, and the first after.
    start: u16,
    end: u16,
}

impl FullSpeedHours {
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("{s:?}: {why}; write local hours as \"HH:MM-HH:MM\", e.g. \"20:00-06:00\"");
        let (a, b) = s.split_once('-').ok_or_else(|| bad("no '-' between start and end"))?;
        let minute = |t: &str, end: bool| -> Result<u16, String> {
            let t = t.trim();
            let not_a_time = || bad(&format!("{t:?} is not a time of day"));
            let (h, m) = t.split_once(':').ok_or_else(not_a_time)?;
            let digits = |x: &str, len: std::ops::RangeInclusive<usize>| {
                len.contains(&x.len()) && x.bytes().all(|b| b.is_ascii_digit())
            };
            if !digits(h, 1..=2) || !digits(m, 2..=2) {
                return Err(not_a_time());
            }
            let (h, m): (u16, u16) = (h.parse().map_err(|_| not_a_time())?, m.parse().map_err(|_| not_a_time())?);
            // 24:00 ends a span at midnight; it starts none.
            if m >= 60 || h > 24 || (h == 24 && (m != 0 || !end)) {
                return Err(not_a_time());
            }
            Ok((h * 60 + m) % (24 * 60))
        };
        let (start, end) = (minute(a, false)?, minute(b, true)?);
        if start == end {
            return Err(bad("start and end are the same: for no limit at all, leave the limit out"));
        }
        Ok(Self { start, end })
    }

    /// Whether `minute` (after local midnight) is inside the hours.
    pub fn contains(&self, minute: u16) -> bool {
        if self.start < self.end {
            (self.start..self.end).contains(&minute)
        } else {
            minute >= self.start || minute < self.end
        }
    }
}

impl std::fmt::Display for FullSpeedHours {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
        write!(f, "{}-{}", hm(self.start), hm(self.end))
    }
}

/// The minute of the day on this machine's clock, in its time zone.
fn local_minute() -> u16 {
    let now = jiff::Zoned::now();
    (now.hour() as u16) * 60 + now.minute() as u16
}

/// A token bucket: `rate` bytes a second, at most `burst` saved up. A reservation the bucket
/// cannot cover yet is a debt the taker sleeps off, so takers are served in order, and
/// concurrent transfers share the rate and together never exceed it.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: u64, now: Instant) -> Self {
        let burst = rate.min(MAX_BURST) as f64;
        Self { rate: rate as f64, burst, tokens: burst, last: now }
    }

    /// Takes `n` bytes' worth at `now`; returns how long to wait before sending them.
    fn reserve(&mut self, n: u64, now: Instant) -> Duration {
        if now > self.last {
            let earned = now.duration_since(self.last).as_secs_f64() * self.rate;
            self.tokens = (self.tokens + earned).min(self.burst);
            self.last = now;
        }
        self.tokens -= n as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

/// Paces one direction of one target's traffic.
pub struct Pacer {
    rate: u64,
    full_speed: Option<FullSpeedHours>,
    bucket: Mutex<Bucket>,
    /// The local minute of the day; a test's clock in tests.
    minute_now: fn() -> u16,
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer").field("rate", &self.rate).field("full_speed", &self.full_speed).finish()
    }
}

impl Pacer {
    pub fn new(rate: u64, full_speed: Option<FullSpeedHours>) -> Self {
        Self::with_clock(rate, full_speed, local_minute)
    }

    fn with_clock(rate: u64, full_speed: Option<FullSpeedHours>, minute_now: fn() -> u16) -> Self {
        Self { rate, full_speed, bucket: Mutex::new(Bucket::new(rate, Instant::now())), minute_now }
    }

    /// Bytes per second outside the full-speed hours.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    pub fn full_speed_hours(&self) -> Option<FullSpeedHours> {
        self.full_speed
    }

    /// The piece size a paced transfer uses: a slice, or less at a very slow rate.
    pub fn slice(&self) -> usize {
        SLICE.min(self.rate.min(MAX_BURST) as usize)
    }

    fn at_full_speed(&self) -> bool {
        self.full_speed.is_some_and(|h| h.contains((self.minute_now)()))
    }

    /// Reserves `n` bytes now and returns how long to wait before sending them (zero in
    /// the full-speed hours).
    pub fn reserve(&self, n: usize) -> Duration {
        if self.at_full_speed() {
            return Duration::ZERO;
        }
        self.bucket.lock().unwrap_or_else(|p| p.into_inner()).reserve(n as u64, Instant::now())
    }

    /// Waits until `n` bytes may go. Cancel-safe: dropping it only forfeits the reservation.
    pub async fn take(&self, n: usize) {
        let wait = self.reserve(n);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Waits until a whole object of `n` bytes may go, slice by slice so that concurrent
    /// transfers interleave: for a backend that can only be paced per request.
    pub async fn take_all(&self, n: usize) {
        let slice = self.slice();
        let mut left = n;
        while left > 0 {
            let now = left.min(slice);
            self.take(now).await;
            left -= now;
        }
    }

    /// A time budget for a request moving `bytes` at this rate, on top of `base`: generous
    /// (the transfers in flight share the rate), yet bounded so that a dead connection fails.
    pub fn budget(&self, base: Duration, bytes: u64) -> Duration {
        base + Duration::from_secs_f64(8.0 * bytes as f64 / self.rate as f64)
    }
}

/// A target's bandwidth limits. Clones share the buckets, so every store opened for one
/// target (a backup and a sync at once) keeps to the target's limit together.
#[derive(Clone, Debug, Default)]
pub struct Limits {
    pub upload: Option<Arc<Pacer>>,
    pub download: Option<Arc<Pacer>>,
}

impl Limits {
    /// Limits of `upload` and `download` bytes a second (`None`: unlimited), lifted in the
    /// `full_speed` hours.
    pub fn new(upload: Option<u64>, download: Option<u64>, full_speed: Option<FullSpeedHours>) -> Self {
        let pacer = |rate: Option<u64>| rate.map(|r| Arc::new(Pacer::new(r, full_speed)));
        Self { upload: pacer(upload), download: pacer(download) }
    }

    pub fn is_none(&self) -> bool {
        self.upload.is_none() && self.download.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_sizes_per_second() {
        assert_eq!(parse_rate("2 MiB/s"), Ok(2 << 20));
        assert_eq!(parse_rate("500kB/s"), Ok(500_000));
        assert_eq!(parse_rate(" 1.5 MiB/sec "), Ok(1_572_864));
        assert_eq!(parse_rate("16 KiB/s"), Ok(16 << 10));
    }

    #[test]
    fn a_rate_without_per_second_zero_or_too_slow_is_refused_with_the_fix() {
        let e = parse_rate("2 MiB").unwrap_err();
        assert!(e.contains("per second") && e.contains("\"2 MiB/s\""), "{e}");
        let e = parse_rate("0/s").unwrap_err();
        assert!(e.contains("stop all traffic") && e.contains("leave the limit out"), "{e}");
        assert!(parse_rate("0 MiB/s").unwrap_err().contains("stop all traffic"));
        assert!(parse_rate("1 kB/s").unwrap_err().contains("at least"));
        assert!(parse_rate("fast/s").is_err());
        assert!(parse_rate("2 parsecs/s").unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn full_speed_hours_may_wrap_midnight() {
        let night = FullSpeedHours::parse("20:00-06:00").unwrap();
        let at = |h: u16, m: u16| night.contains(h * 60 + m);
        assert!(at(20, 0) && at(23, 59) && at(0, 0) && at(5, 59));
        assert!(!at(6, 0) && !at(12, 0) && !at(19, 59));
        assert_eq!(night.to_string(), "20:00-06:00");

        let lunch = FullSpeedHours::parse("12:30 - 13:15").unwrap();
        assert!(lunch.contains(12 * 60 + 30) && lunch.contains(13 * 60 + 14));
        assert!(!lunch.contains(12 * 60 + 29) && !lunch.contains(13 * 60 + 15));

        let evening = FullSpeedHours::parse("18:00-24:00").unwrap();
        assert!(evening.contains(23 * 60 + 59) && !evening.contains(0) && !evening.contains(17 * 60));
    }

    #[test]
    fn nonsense_hours_are_refused_with_the_format() {
        for bad in ["20-06", "20:00", "25:00-06:00", "20:60-06:00", "20:00-06:00-07:00", "08:00-08:00", "24:00-06:00"] {
            let e = FullSpeedHours::parse(bad).unwrap_err();
            assert!(e.contains("HH:MM-HH:MM"), "{bad}: {e}");
        }
        assert!(FullSpeedHours::parse("08:00-08:00").unwrap_err().contains("the same"));
    }

    #[test]
    fn the_bucket_lets_a_burst_through_then_paces_at_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(100_000, t0);
        assert_eq!(b.reserve(100_000, t0), Duration::ZERO, "one second's worth is saved up at first");
        assert_eq!(b.reserve(50_000, t0), Duration::from_millis(500));
        // A second taker queues behind the first's debt.
        assert_eq!(b.reserve(50_000, t0), Duration::from_secs(1));
        // After the debt is paid, idle time saves up no more than the burst.
        let later = t0 + Duration::from_secs(60);
        assert_eq!(b.reserve(100_000, later), Duration::ZERO);
        assert_eq!(b.reserve(10_000, later), Duration::from_millis(100));
    }

    #[test]
    fn a_fast_limit_saves_up_at_most_the_burst_cap() {
        let t0 = Instant::now();
        let mut b = Bucket::new(100 << 20, t0);
        assert_eq!(b.reserve(MAX_BURST, t0 + Duration::from_secs(10)), Duration::ZERO);
        let wait = b.reserve(1 << 20, t0 + Duration::from_secs(10));
        assert_eq!(wait, Duration::from_millis(10), "1 MiB at 100 MiB/s once the burst is spent");
    }

    #[tokio::test(start_paused = true)]
    async fn a_pacer_holds_a_transfer_to_its_rate_outside_the_full_speed_hours() {
        let hours = FullSpeedHours::parse("20:00-06:00").ok();
        let noon = Pacer::with_clock(64 << 10, hours, || 12 * 60);
        let started = Instant::now();
        noon.take_all(320 << 10).await;
        // 64 KiB saved up, then 256 KiB at 64 KiB/s (the paused clock jumps to each timer,
        // give or take the timer wheel's millisecond).
        assert!(started.elapsed().abs_diff(Duration::from_secs(4)) < Duration::from_millis(50));

        let night = Pacer::with_clock(64 << 10, hours, || 23 * 60);
        let started = Instant::now();
        night.take_all(10 << 20).await;
        assert_eq!(started.elapsed(), Duration::ZERO, "no limit in the full-speed hours");
    }

    #[test]
    fn limits_clones_share_one_bucket() {
        let limits = Limits::new(Some(100_000), None, None);
        let clone = limits.clone();
        let (a, b) = (limits.upload.unwrap(), clone.upload.unwrap());
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.reserve(100_000), Duration::ZERO);
        assert!(b.reserve(100_000) >= Duration::from_millis(900), "the clone sees the spent tokens");
    }
}
