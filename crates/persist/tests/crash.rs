//! Crash safety: a writer streaming puts (`persist load --echo`, which prints each key after
//! its put has returned) is killed with SIGKILL at random moments, many times. Every time, the
//! table must pass `persist verify` and hold every key that was echoed, with its value; and the
//! next writer must recover it (recount) and close it cleanly.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use common::{ok, tempdir, Rng, BIN};
use persist::{Table, TableMut, WriteOptions};

fn value_of(key: &str) -> String {
    format!("value-of-{key}-{}", "z".repeat(key.len() % 29))
}

#[test]
fn sigkill_at_random_moments_leaves_a_valid_table_with_every_returned_put() {
    let d = tempdir("crash");
    let mut rng = Rng(common::seed());
    let rounds = 30;
    let mut killed_mid_stream = 0;
    for round in 0..rounds {
        let path = d.path().join(format!("t{round}.tbl"));
        let ts = path.to_str().unwrap().to_string();
        ok(&["create", "--slots", "8", &ts]);
        // Some rounds start from a table that already holds data (and overwrite it).
        let preload = round % 3 == 0;
        if preload {
            let tsv: String = (0..500)
                .map(|i| format!("r{round}-k{i}\t{}\n", value_of(&format!("old{i}"))))
                .collect();
            let out = common::persist(&["load", &ts], tsv.as_bytes());
            assert!(out.status.success());
        }
        let mut child = Command::new(BIN)
            .args(["load", "--echo", &ts])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let feeder = std::thread::spawn(move || {
            let mut buf = String::new();
            for i in 0..20_000 {
                let key = format!("r{round}-k{i}");
                buf.push_str(&format!("{key}\t{}\n", value_of(&key)));
                if buf.len() > 4096 {
                    if stdin.write_all(buf.as_bytes()).is_err() {
                        return; // the writer was killed
                    }
                    buf.clear();
                }
            }
            let _ = stdin.write_all(buf.as_bytes());
        });
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let kill_after = rng.below(4000);
        let mut echoed = Vec::new();
        let mut line = String::new();
        while (echoed.len() as u64) < kill_after {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 {
                break;
            }
            echoed.push(line.trim_end().to_string());
        }
        // A random extra delay so the kill lands anywhere inside a put, a growth or a rehash.
        for _ in 0..rng.below(200_000) {
            std::hint::spin_loop();
        }
        child.kill().unwrap();
        let status = child.wait().unwrap();
        if status.signal() == Some(libc::SIGKILL) {
            killed_mid_stream += 1;
        }
        // Keys echoed before the kill landed were put too: read them all.
        loop {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 {
                break;
            }
            echoed.push(line.trim_end().to_string());
        }
        feeder.join().unwrap();

        let verify = common::persist(&["verify", &ts], b"");
        assert!(
            verify.status.success(),
            "round {round}: verify rejected the table after a kill after {} puts: {}",
            echoed.len(),
            String::from_utf8_lossy(&verify.stderr)
        );
        let t = Table::open(&path).unwrap();
        for key in &echoed {
            let got = t.get(key.as_bytes()).unwrap();
            assert_eq!(
                got,
                Some(value_of(key).as_bytes()),
                "round {round}: {key} was echoed (its put returned) but is missing or wrong"
            );
        }
        drop(t);
        // The next writer recovers: recounts, writes, closes cleanly.
        let mut w = TableMut::open(&path, WriteOptions::default()).unwrap();
        w.put(b"after-crash", b"ok").unwrap();
        w.close().unwrap();
        let report = Table::open(&path).unwrap().verify().unwrap();
        assert!(
            !report.dirty && report.counts_match,
            "round {round}: {report:?}"
        );
        // Echoed keys and preloaded keys share names (r{round}-k{i}), plus `after-crash`.
        let distinct = echoed.len().max(if preload { 500 } else { 0 }) as u64;
        assert!(report.entries > distinct, "round {round}: {report:?}");
    }
    assert!(
        killed_mid_stream >= rounds / 2,
        "only {killed_mid_stream} of {rounds} writers were killed mid-stream"
    );
}
