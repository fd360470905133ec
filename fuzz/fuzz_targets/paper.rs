//! Paper keys typed back by hand (`--identity -`): any text is read or refused, never a
//! panic; a text that reads is a key that prints and reads back as the same secret; and a
//! refusal names places, never what was typed.
#![no_main]

use arka_proto::paper::{self, PaperKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = paper::looks_like_paper(&text);
    match paper::decode(&text) {
        Ok(secret) => {
            let again = paper::decode(&PaperKey::encode(&secret).to_text()).expect("a printed key reads back");
            assert_eq!(*again, *secret);
        }
        Err(e) => {
            // Messages are the module's own words and numbers: nothing typed (which would
            // show here as the non-ASCII the fuzzer feeds) is ever copied into one.
            let msg = e.to_string();
            assert!(msg.is_ascii(), "the message {msg:?} holds what was typed");
            assert!(e.line().is_none_or(|l| (1..=paper::LINES).contains(&l)));
        }
    }
    for (i, line) in text.lines().enumerate().take(5) {
        let _ = paper::check_line(i + 1, line);
    }
});
