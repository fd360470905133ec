//! Sizes and time spans as people write them in agent.toml and on the command line. One
//! syntax everywhere: `m` is minutes in a schedule, a timeout and a retention rule alike,
//! and months are `mo`.

use std::time::Duration;

/// The longest span [`parse_span`] accepts (ten years): anything longer is a typo, and
/// would overflow the clock arithmetic that schedules and RPO checks do.
pub const MAX_SPAN: Duration = Duration::from_secs(3650 * 86_400);

/// Parses a time span: `30s`, `15m` (minutes), `90min`, `1h`, `1h30m`, `2d`, `1w`,
/// `6mo` (30-day months), `2y` (365-day years).
pub fn parse_span(s: &str) -> Result<Duration, String> {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
    let bad =
        |why: &str| format!("{s:?}: {why}; write a number and a unit (s, m, h, d, w, mo, y), e.g. 30s, 15m, 2d, 6mo");
    if compact.is_empty() {
        return Err(bad("empty"));
    }
    let mut total: u64 = 0;
    for (n, unit) in span_terms(&compact) {
        let n: u64 = n.parse().map_err(|_| bad("a number is missing"))?;
        let unit = match unit {
            "s" | "sec" | "secs" | "second" | "seconds" => 1,
            "m" | "min" | "mins" | "minute" | "minutes" => 60,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3600,
            "d" | "day" | "days" => 86_400,
            "w" | "week" | "weeks" => 7 * 86_400,
            "mo" | "month" | "months" => 30 * 86_400,
            "y" | "yr" | "year" | "years" => 365 * 86_400,
            "" => return Err(bad("the unit is missing")),
            other => return Err(bad(&format!("unknown unit {other:?}"))),
        };
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .filter(|&t| t <= MAX_SPAN.as_secs())
            .ok_or_else(|| bad("too long (at most 3650d)"))?;
    }
    Ok(Duration::from_secs(total))
}

/// Parses a span that says how long to keep backups. Minutes there are almost always
/// months written the way older versions read them (`6m`), so the bare `m` is refused
/// with the fix; `min` says minutes on purpose.
pub fn parse_keep_span(s: &str) -> Result<Duration, String> {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
    if span_terms(&compact).any(|(_, unit)| unit == "m") {
        let months = compact.replace('m', "mo");
        return Err(format!(
            "{s:?} would keep backups for minutes (m is minutes everywhere in arka): for months write {months:?}; \
             for minutes, write min"
        ));
    }
    parse_span(s)
}

/// `1h30m` as (number, unit) pairs: ("1", "h"), ("30", "m").
fn span_terms(compact: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut rest = compact;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let (n, after) = rest.split_at(digits);
        let letters = after.find(|c: char| c.is_ascii_digit()).unwrap_or(after.len());
        let (unit, next) = after.split_at(letters);
        rest = next;
        Some((n, unit))
    })
}

/// Parses `500 MiB`, `2GiB`, `1.5 GB`, `64k`, `1000` (bytes): binary units (KiB, MiB,
/// GiB, TiB, and K, M, G, T as their short forms) are powers of 1024, decimal ones (kB, MB,
/// GB, TB) powers of 1000. Case does not matter.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = (&t[..split], t[split..].trim());
    let n: f64 = num.parse().map_err(|_| format!("{s:?}: expected a size such as \"500 MiB\" or \"2 GB\""))?;
    let factor: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024f64.powi(2),
        "g" | "gib" => 1024f64.powi(3),
        "t" | "tib" => 1024f64.powi(4),
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        _ => return Err(format!("{s:?}: unknown unit {unit:?}; use B, KiB, MiB, GiB, TiB (or kB, MB, GB, TB)")),
    };
    let bytes = n * factor;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("{s:?} is too large"));
    }
    Ok(bytes.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_have_one_syntax() {
        assert_eq!(parse_span("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_span("90min"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_span("1d 2h"), Ok(Duration::from_secs(93_600)));
        assert_eq!(parse_span("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_span("1w"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_span("6mo"), Ok(Duration::from_secs(180 * 86_400)));
        assert_eq!(parse_span("2y"), Ok(Duration::from_secs(730 * 86_400)));
        assert!(parse_span("7").unwrap_err().contains("unit is missing"));
        assert!(parse_span("6q").unwrap_err().contains("unknown unit"));
        assert!(parse_span("99999999999999999999d").is_err());
        assert!(parse_span("11y").unwrap_err().contains("too long"));
    }

    #[test]
    fn a_retention_in_bare_minutes_is_refused_with_the_fix() {
        let e = parse_keep_span("10m").unwrap_err();
        assert!(e.contains("minutes") && e.contains("\"10mo\""), "{e}");
        assert!(parse_keep_span("1h30m").is_err());
        assert_eq!(parse_keep_span("90min"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_keep_span("6mo"), Ok(Duration::from_secs(180 * 86_400)));
        assert_eq!(parse_keep_span("48h"), Ok(Duration::from_secs(172_800)));
    }

    #[test]
    fn sizes_parse_in_binary_and_decimal_units() {
        assert_eq!(parse_size("500 MiB").unwrap(), 500 << 20);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("64k").unwrap(), 64 << 10);
        assert_eq!(parse_size("1.5 GB").unwrap(), 1_500_000_000);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert!(parse_size("5 parsecs").unwrap_err().contains("unknown unit"));
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("1e30 TiB").is_err());
    }
}
