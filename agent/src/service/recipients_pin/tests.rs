use super::*;

fn config(recipients: &[&str], generation: u32, reader: &str) -> RepoConfig {
    RepoConfig {
        repo_id: arka_proto::RepoId([1; 32]),
        created: 0,
        chunker_files: arka_proto::ChunkerParams::FILES,
        chunker_stream: arka_proto::ChunkerParams::STREAM,
        zstd_level: 3,
        pack_size: 16 << 20,
        recipients: recipients.iter().map(|r| r.to_string()).collect(),
        sealed_agent_key: vec![],
        generation,
        reader: Some(reader.into()),
        keyring: None,
        retired_agent_keys: vec![],
    }
}

fn pin(list: &[&str]) -> Vec<String> {
    list.iter().map(|r| r.to_string()).collect()
}

#[test]
fn the_same_set_in_any_order_passes_and_a_swap_is_refused_naming_both_sides() {
    let pinned = pin(&["age1owner", "age1contractor"]);
    let ok = check(Some(&pinned), &config(&["age1contractor", " age1owner"], 1, "age1r1"), &Accepted::default(), false);
    assert!(ok.unwrap().1.is_none());
    let e = check(Some(&pinned), &config(&["age1owner", "age1attacker"], 1, "age1r1"), &Accepted::default(), false);
    let e = e.unwrap_err().to_string();
    assert!(e.contains("1 not pinned (age1attacker)") && e.contains("1 pinned but missing (age1contractor)"), "{e}");
    assert!(e.contains("recipients = [\"age1owner\", \"age1attacker\"]"), "the instruction gives the new list: {e}");
    let removed = check(Some(&pinned), &config(&["age1owner"], 1, "age1r1"), &Accepted::default(), false);
    assert!(removed.is_err(), "a removed recipient must be refused until the pin says so");
}

#[test]
fn an_added_recipient_is_only_a_warning_while_the_reader_key_stays() {
    let pinned = pin(&["age1owner"]);
    let (seen, _) = check(Some(&pinned), &config(&["age1owner"], 1, "age1r1"), &Accepted::default(), false).unwrap();
    let (_, warning) = check(Some(&pinned), &config(&["age1owner", "age1new"], 2, "age1r1"), &seen, false).unwrap();
    assert!(warning.unwrap().contains("age1new"));
    let e = check(Some(&pinned), &config(&["age1owner", "age1new"], 2, "age1evil"), &seen, false).unwrap_err();
    assert!(e.to_string().contains("not pinned"), "{e}");
}

#[test]
fn a_new_reader_key_needs_the_pin_updated_to_the_new_recipients() {
    let old_pin = pin(&["age1owner", "age1contractor"]);
    let first = config(&["age1owner", "age1contractor"], 2, "age1r1");
    let (seen, _) = check(Some(&old_pin), &first, &Accepted::default(), false).unwrap();
    // `arka key remove`: new recipients and a new reader key. Refused until the pin follows.
    let after_remove = config(&["age1owner"], 3, "age1r2");
    assert!(check(Some(&old_pin), &after_remove, &seen, false).is_err());
    let new_pin = pin(&["age1owner"]);
    let (now, _) = check(Some(&new_pin), &after_remove, &seen, false).unwrap();
    assert_eq!((now.generation, now.reader.as_deref()), (3, Some("age1r2")));
    // A forger keeps the recipients and swaps the reader key, with a higher generation.
    let forged = config(&["age1owner"], 4, "age1evil");
    let e = check(Some(&new_pin), &forged, &now, false).unwrap_err().to_string();
    assert!(e.contains("reader key") && e.contains("did not change"), "{e}");
    // A holder added and removed again leaves the recipients as pinned: a person confirms.
    let (_, _) = check(Some(&new_pin), &forged, &now, true).unwrap();
    // Even without a pin, a reader key cannot change within a generation.
    let (unpinned, _) = check(None, &after_remove, &seen, false).unwrap();
    assert!(check(None, &config(&["age1owner"], 3, "age1evil"), &unpinned, false).is_err());
}

#[test]
fn an_older_generation_is_refused_as_a_rollback() {
    let (seen, _) = check(None, &config(&["age1owner"], 3, "age1r2"), &Accepted::default(), false).unwrap();
    let e = check(None, &config(&["age1owner", "age1contractor"], 2, "age1r1"), &seen, false).unwrap_err();
    assert!(e.to_string().contains("older than the generation 3"), "{e}");
    let other_repo = RepoConfig { repo_id: arka_proto::RepoId([2; 32]), ..config(&["age1x"], 0, "age1r") };
    assert!(check(None, &other_repo, &seen, false).is_ok(), "another repository starts afresh");
}
