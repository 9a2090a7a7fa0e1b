//! Nothing lost: numbered lines of random length streamed through a small ring by
//! `channel send` into `channel recv --json`, two processes, and every message the receiver
//! printed compared with the line sent at its place.
//!
//! The ring is small (4 KiB) and the lines long (up to ~1.2 KiB), so records wrap at the end
//! of the data area at ever-different offsets, and the sender keeps waiting for space: the
//! ring's two indexes, each written by one side only, are exercised thousands of times.

use anyhow::Context as _;
use channel::report::{RecvLine, SendReport};
use serde::{Deserialize, Serialize};

/// The ring's data area for the stream: small, so it wraps often.
pub const CAPACITY: u64 = 4096;
/// Payload lengths are below this (a line is also its number and a space).
const MAX_PAYLOAD: u64 = 1200;

/// What the stream showed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stream {
    /// The command lines, for the reader.
    pub commands: Vec<String>,
    /// The ring's data area, bytes.
    pub capacity: u64,
    /// Lines given to the sender (newlines included in the bytes).
    pub lines_written: u64,
    pub bytes_written: u64,
    /// The sender's `--json` document.
    pub send: SendReport,
    /// Messages the receiver printed, and their bytes (as the receiver counted them).
    pub received: u64,
    pub received_bytes: u64,
    /// Messages equal to the line sent at their place (number, and every byte).
    pub matched: u64,
    /// The first message that was not, described.
    pub first_mismatch: Option<String>,
    /// The receiver's last line (`{"end": ...}`), if it printed one.
    pub end: Option<RecvLine>,
    /// Wall time of the stream, seconds.
    pub seconds: f64,
}

/// The deterministic line `i` (from 1): `0000042 ` and a payload of random letters and digits.
pub fn line(i: u64) -> String {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut next = || {
        // xorshift64*
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let len = next() % MAX_PAYLOAD;
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut s = format!("{i:07} ");
    s.extend((0..len).map(|_| CHARS[(next() % CHARS.len() as u64) as usize] as char));
    s
}

/// The receiver's output checked against lines `1..=n`.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub received: u64,
    pub received_bytes: u64,
    pub matched: u64,
    pub first_mismatch: Option<String>,
    pub end: Option<RecvLine>,
}

/// Checks `channel recv --json` output (one JSON object per line) against lines `1..=n`.
/// Pure; a line that is not a `RecvLine` is an error naming it.
pub fn check(output: &str, n: u64) -> anyhow::Result<Check> {
    let mut c = Check {
        received: 0,
        received_bytes: 0,
        matched: 0,
        first_mismatch: None,
        end: None,
    };
    for (i, text) in output.lines().enumerate() {
        let parsed: RecvLine = serde_json::from_str(text).with_context(|| {
            format!(
                "line {} of channel recv --json is not a message or the end",
                i + 1
            )
        })?;
        match parsed {
            RecvLine::Message {
                seq, bytes, text, ..
            } => {
                c.received += 1;
                c.received_bytes += bytes;
                let expected = (c.received <= n).then(|| line(c.received));
                let ok = seq == c.received
                    && expected
                        .as_ref()
                        .is_some_and(|e| *e == text && e.len() as u64 + 1 == bytes);
                if ok {
                    c.matched += 1;
                } else if c.first_mismatch.is_none() {
                    c.first_mismatch = Some(format!(
                        "message {} (seq {seq}, {bytes} bytes) is {:?}, expected {}",
                        c.received,
                        clip(&text, 24),
                        match &expected {
                            Some(e) => format!("{:?}", clip(e, 24)),
                            None => format!("nothing (only {n} lines were sent)"),
                        }
                    ));
                }
            }
            end @ RecvLine::End { .. } => c.end = Some(end),
        }
    }
    Ok(c)
}

/// At most `n` characters of `s`, with an ellipsis when cut.
pub fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_numbered_deterministic_and_of_varied_length() {
        assert_eq!(line(7), line(7));
        assert!(line(42).starts_with("0000042 "));
        let lens: Vec<usize> = (1..=200).map(|i| line(i).len()).collect();
        assert!(lens
            .iter()
            .all(|&l| (8..8 + MAX_PAYLOAD as usize).contains(&l)));
        let short = lens.iter().filter(|&&l| l < 300).count();
        let long = lens.iter().filter(|&&l| l > 900).count();
        assert!(short > 20 && long > 20, "{short} {long}");
    }

    fn message(seq: u64, text: &str) -> String {
        serde_json::to_string(&RecvLine::Message {
            seq,
            bytes: text.len() as u64 + 1,
            text: text.into(),
            lossy: false,
        })
        .unwrap()
    }

    #[test]
    fn a_complete_stream_matches_and_a_lost_or_changed_message_is_named() {
        let end = r#"{"end":{"reason":"closed","messages":3,"bytes":0,"removed":true}}"#;
        let ok = [
            message(1, &line(1)),
            message(2, &line(2)),
            message(3, &line(3)),
        ]
        .join("\n");
        let c = check(&format!("{ok}\n{end}\n"), 3).unwrap();
        assert_eq!((c.received, c.matched), (3, 3));
        assert!(c.first_mismatch.is_none());
        assert!(matches!(c.end, Some(RecvLine::End { messages: 3, .. })));

        // Message 2 lost: message 3 arrives second, numbered 2 by the receiver.
        let lost = [message(1, &line(1)), message(2, &line(3))].join("\n");
        let c = check(&lost, 3).unwrap();
        assert_eq!((c.received, c.matched), (2, 1));
        assert!(c.first_mismatch.unwrap().starts_with("message 2 "));
        assert!(c.end.is_none());

        // One byte changed.
        let mut bad = line(1);
        bad.replace_range(10..11, "#");
        let c = check(&message(1, &bad), 1).unwrap();
        assert_eq!(c.matched, 0);

        // More than was sent.
        let c = check(&[message(1, &line(1)), message(2, "x")].join("\n"), 1).unwrap();
        assert!(c.first_mismatch.unwrap().contains("only 1 lines were sent"));
    }

    #[test]
    fn output_that_is_not_recv_json_is_an_error() {
        let err = check("{\"message\":{\"seq\":1}}", 1).unwrap_err();
        assert!(format!("{err:#}").contains("line 1"), "{err:#}");
    }
}
