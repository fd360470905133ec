//! The recipient set pinned in agent.toml (`recipients = ["age1…", …]`), checked against
//! the repository whenever the agent opens it.
//!
//! Why: `config` names the recipients every pack is sealed to, and it authenticates under
//! the agent key. Whoever holds that key and may overwrite `config` (ransomware on the
//! clinic server with a writable target) can write one that names their own recipient:
//! every later backup would be readable by them and by no one at the clinic. A list kept
//! outside the repository makes that a refusal instead (SECURITY.md §4.9).

use std::collections::BTreeSet;

use crate::error::{Error, Result};

/// Refuses a repository whose recipients are not exactly `pinned` (in any order).
pub fn check(pinned: &[String], in_repository: &[String]) -> Result<()> {
    let pinned: BTreeSet<&str> = pinned.iter().map(|r| r.trim()).collect();
    let actual: BTreeSet<&str> = in_repository.iter().map(|r| r.trim()).collect();
    if pinned == actual {
        return Ok(());
    }
    let added: Vec<&str> = actual.difference(&pinned).copied().collect();
    let missing: Vec<&str> = pinned.difference(&actual).copied().collect();
    Err(Error::Refused(format!(
        "the repository's recipients are not the ones pinned in agent.toml (`recipients`): {} not pinned ({}), \
         {} pinned but missing ({}). Someone holding the agent key may have replaced the repository's config so \
         that new backups are readable by another key; nothing is written until this is resolved. Compare with \
         the clinic's key records; if the change was made on purpose (`arka key`), put the new list in agent.toml",
        added.len(),
        added.join(", "),
        missing.len(),
        missing.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_set_in_any_order_passes_and_a_swap_is_refused_naming_both_sides() {
        let pinned = vec!["age1owner".to_string(), "age1contractor".to_string()];
        assert!(check(&pinned, &["age1contractor".into(), " age1owner".into()]).is_ok());
        let e = check(&pinned, &["age1owner".into(), "age1attacker".into()]).unwrap_err().to_string();
        assert!(
            e.contains("1 not pinned (age1attacker)") && e.contains("1 pinned but missing (age1contractor)"),
            "{e}"
        );
        assert!(check(&pinned, &["age1owner".into()]).is_err(), "a removed recipient must be refused too");
    }
}
