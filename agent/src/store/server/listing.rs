//! Checking a listing page from the server before believing it. The server is not trusted
//! with the listing's shape: a page that is too long, out of order, outside the asked
//! prefix, or whose `next_after` does not move forward is refused, so a broken or hostile
//! server can neither loop the client forever nor slip in names it was not asked for.

use object_store::path::Path;
use object_store::ObjectMeta;

use arka_proto::server::{ListPage, LIST_PAGE_MAX};

/// The largest listing page body read (5000 keys of arka's layout take about 600 kB).
pub const LIST_BODY_MAX: usize = 8 << 20;
/// Longer keys are not arka's (the longest, a pack's, is 76 bytes).
pub const KEY_MAX: usize = 512;
/// A listing that goes on past this many objects is refused rather than held in memory.
pub const LISTING_MAX_OBJECTS: usize = 50_000_000;

/// Whether `key` is `/`-separated segments of `A-Z a-z 0-9 . _ -`, none empty, `.` or
/// `..` (the empty string passes: the whole repository's prefix). Every key of arka's
/// layout is; nothing else needs escaping in a URL or can be normalised into another path.
pub fn key_chars(key: &str) -> bool {
    key.is_empty()
        || key.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        })
}

/// The objects of one page, and where the next page starts (if any).
pub struct CheckedPage {
    pub objects: Vec<ObjectMeta>,
    pub next_after: Option<String>,
}

/// Whether `key` is under `prefix` (by whole path segments, as object_store lists).
fn under(prefix: &str, key: &str) -> bool {
    prefix.is_empty() || key.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
}

/// Validates a page asked with `prefix` (without a trailing `/`) and `after`.
pub fn check_page(prefix: &str, after: Option<&str>, page: ListPage) -> Result<CheckedPage, String> {
    if page.objects.len() > LIST_PAGE_MAX {
        return Err(format!("a listing page of {} objects (the API allows {LIST_PAGE_MAX})", page.objects.len()));
    }
    let mut last: Option<&str> = after;
    let mut objects = Vec::with_capacity(page.objects.len());
    for o in &page.objects {
        if o.key.len() > KEY_MAX {
            return Err(format!("a listed key of {} bytes", o.key.len()));
        }
        if !under(prefix, &o.key) {
            return Err(format!("the listing of {prefix:?} holds {:?}, which is outside it", o.key));
        }
        if last.is_some_and(|l| o.key.as_str() <= l) {
            return Err(format!("the listing is not in key order (or repeats) at {:?}", o.key));
        }
        let location = Path::parse(&o.key).map_err(|e| format!("a listed key is not a path: {e}"))?;
        objects.push(ObjectMeta {
            location,
            last_modified: super::time_of_ns(o.stored_at_ns).into(),
            size: o.size,
            e_tag: None,
            version: None,
        });
        last = Some(&o.key);
    }
    if let Some(next) = &page.next_after {
        if next.len() > KEY_MAX || next.is_empty() || !key_chars(next) {
            return Err(format!("next_after {:?} is not a key", sanitize_short(next)));
        }
        // Each page must move the listing forward, past everything it returned.
        if last.is_some_and(|l| next.as_str() < l) || after.is_some_and(|a| next.as_str() <= a) {
            return Err(format!("next_after {next:?} does not move the listing forward"));
        }
    }
    Ok(CheckedPage { objects, next_after: page.next_after })
}

fn sanitize_short(s: &str) -> String {
    s.chars().take(80).filter(|c| !c.is_control()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arka_proto::server::ListedObject;

    fn obj(key: &str) -> ListedObject {
        ListedObject { key: key.into(), size: 7, stored_at_ns: 1_700_000_000_000_000_000 }
    }

    fn page(keys: &[&str], next: Option<&str>) -> ListPage {
        ListPage { objects: keys.iter().map(|k| obj(k)).collect(), next_after: next.map(String::from) }
    }

    #[test]
    fn a_well_formed_page_passes_with_its_times() {
        let p = check_page("index", None, page(&["index/aa", "index/bb"], Some("index/bb"))).unwrap();
        assert_eq!(p.objects.len(), 2);
        assert_eq!(p.objects[1].location.as_ref(), "index/bb");
        assert_eq!(p.objects[0].last_modified.timestamp_nanos_opt(), Some(1_700_000_000_000_000_000));
        assert_eq!(p.next_after.as_deref(), Some("index/bb"));
        let next = check_page("index", Some("index/bb"), page(&["index/cc"], None)).unwrap();
        assert!(next.next_after.is_none());
        assert!(check_page("", None, page(&["config", "index/aa"], None)).is_ok());
        assert!(check_page("index", Some("index/zz"), page(&[], None)).unwrap().objects.is_empty());
    }

    #[test]
    fn hostile_pages_are_refused() {
        let too_many: Vec<String> = (0..=LIST_PAGE_MAX).map(|i| format!("index/{i:08}")).collect();
        let refs: Vec<&str> = too_many.iter().map(String::as_str).collect();
        let long = format!("index/{}", "a".repeat(KEY_MAX));
        let too_long = format!("page of {}", LIST_PAGE_MAX + 1);
        let cases: Vec<(&str, Option<&str>, ListPage, &str)> = vec![
            ("index", None, page(&refs, None), &too_long),
            ("index", None, page(&["index/bb", "index/aa"], None), "not in key order"),
            ("index", None, page(&["index/aa", "index/aa"], None), "not in key order"),
            ("index", Some("index/bb"), page(&["index/aa"], None), "not in key order"),
            ("index", Some("index/bb"), page(&["index/bb"], None), "not in key order"),
            ("index", None, page(&["snapshots/aa"], None), "outside it"),
            ("index", None, page(&["indexes/aa"], None), "outside it"),
            ("index", None, page(&["index"], None), "outside it"),
            ("index", None, page(&[&long], None), "a listed key of"),
            ("index", None, page(&["index//x"], None), "not a path"),
            ("index", None, page(&["index/../config"], None), "not a path"),
            // next_after that loops or goes back
            ("index", Some("index/bb"), page(&[], Some("index/bb")), "does not move"),
            ("index", Some("index/bb"), page(&[], Some("index/aa")), "does not move"),
            ("index", None, page(&["index/cc"], Some("index/bb")), "does not move"),
            ("index", Some("index/aa"), page(&["index/bb"], Some("index/aa")), "does not move"),
            ("index", None, page(&["index/aa"], Some("index/zz&prefix=")), "is not a key"),
            ("index", None, page(&["index/aa"], Some("index/zz/../x")), "is not a key"),
            ("index", None, page(&["index/aa"], Some("")), "is not a key"),
        ];
        for (prefix, after, p, want) in cases {
            let shown = format!("{prefix:?} after {after:?}: {:?}", p.next_after);
            match check_page(prefix, after, p) {
                Ok(_) => panic!("accepted {shown}"),
                Err(e) => assert!(e.contains(want), "{shown}: {e} (wanted {want:?})"),
            }
        }
    }
}
