//! Opening metadata under the agent key's current or retired metadata keys, and refusing
//! what a retired key wrote after its retirement (FORMAT.md §5, SECURITY.md §4).
//!
//! `arka key rotate-agent` keeps the old metadata key inside the new agent key, so the
//! snapshots, index and audit records written before still open. But the old key may have
//! leaked: whoever holds it can still seal objects that open under it. What tells them
//! apart is when the storage recorded the object (its clock, not the writer's): an object
//! that opens only under a retired key and was stored after that key's retirement, plus
//! clock skew, is refused. It is then skipped when loading, like other junk, and named by
//! `arka verify`.

use arka_proto::{ObjectId, OpenedBy};

use crate::error::{Error, Result};
use crate::repo::timeline::MAX_SKEW_NS;
use crate::repo::Repository;
use crate::store::ObjectKind;

const NS: i64 = 1_000_000_000;

impl Repository {
    /// Opens the metadata object `id` of `kind` (fetched and checked) with `open`, under the
    /// current metadata key or a retired one. `stored_at_ns` is when the store recorded it,
    /// if the caller listed it; otherwise it is listed here, and only for an object that a
    /// retired key opened.
    pub(crate) async fn open_meta<T>(
        &self,
        kind: ObjectKind,
        id: &ObjectId,
        stored_at_ns: Option<i64>,
        open: impl Fn(&[u8; 32]) -> arka_proto::error::Result<T>,
    ) -> Result<T> {
        let key = kind.key(id);
        let (value, by) =
            self.key.open_meta_with(open).map_err(|e| Error::Corrupt { key: key.clone(), reason: e.to_string() })?;
        let OpenedBy::Retired(old) = by else { return Ok(value) };
        // A retired key the config does not name: there is no retirement to judge against
        // (the config is the key holder's own; refusing would hide every older snapshot).
        let Some(retired) = self.config.retired_at(&old) else { return Ok(value) };
        let stored_at_ns = match stored_at_ns {
            Some(at) => at,
            None => self.stored_at_ns(kind, id).await?,
        };
        check_not_after_retirement(&key, &old, retired, stored_at_ns)?;
        Ok(value)
    }

    /// When the store recorded `id`; `i64::MAX` (refused) if the listing does not show it.
    async fn stored_at_ns(&self, kind: ObjectKind, id: &ObjectId) -> Result<i64> {
        let listed = self.store.list_detailed(kind).await?;
        Ok(listed.iter().find(|l| l.id == *id).map_or(i64::MAX, |l| l.stored_at_ns))
    }
}

/// Refuses an object sealed under the key `old`, retired at `retired` (Unix seconds), that
/// the store recorded more than clock skew after that.
pub(crate) fn check_not_after_retirement(key: &str, old: &str, retired: i64, stored_at_ns: i64) -> Result<()> {
    if stored_at_ns <= retired.saturating_mul(NS).saturating_add(MAX_SKEW_NS) {
        return Ok(());
    }
    let stored =
        if stored_at_ns == i64::MAX { "at a time the storage does not give".into() } else { day(stored_at_ns / NS) };
    Err(Error::Corrupt {
        key: key.into(),
        reason: format!(
            "it is sealed under the agent key {old}, which `arka key rotate-agent` retired on {}, but was \
             stored {stored}, after that: written with a retired (possibly leaked) agent key, it is not used",
            day(retired)
        ),
    })
}

/// A time for messages: "2026-12-05 02:24 UTC".
pub(crate) fn day(secs: i64) -> String {
    jiff::Timestamp::from_second(secs).map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_objects_stored_after_the_retirement_and_skew_are_refused() {
        let retired = 1_800_000_000;
        let at = |secs: i64| secs * NS;
        assert!(check_not_after_retirement("snapshots/x", "0a1b2c3d", retired, at(retired - 3600)).is_ok());
        assert!(check_not_after_retirement("snapshots/x", "0a1b2c3d", retired, at(retired + 14 * 60)).is_ok());
        let err = check_not_after_retirement("snapshots/x", "0a1b2c3d", retired, at(retired + 16 * 60)).unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::Damaged);
        assert!(err.to_string().contains("retired") && err.to_string().contains("0a1b2c3d"), "{err}");
        assert!(check_not_after_retirement("snapshots/x", "0a1b2c3d", retired, i64::MAX).is_err());
    }
}
