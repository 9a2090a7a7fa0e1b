//! What steps 2 and 3 share: the course's table (`disktable`) and the lab's `persist` table.
//!
//! - [`run`]: a program under `strace -f` with a deadline, in a working directory.
//! - [`table`]: the table file observed from outside (length, count, value\[i\] = i), and
//!   where the step's table comes from (`--table FILE` or `disktable create --course`).
//! - [`fault`]: where a SIGSEGV/SIGBUS landed against the table's mapping and the file's end,
//!   and the ftruncate + mremap growths of a trace.
//! - [`program`]: `--program PATH [-- ARGS]`, someone else's reader or writer, judged.
//! - [`parse_persist`]: a `persist --json` document read into its type in `persist::doc`.
//! - The sample data both steps load into persist ([`sample_kv`], [`Rng`]).

pub mod fault;
pub mod program;
pub mod run;
pub mod table;

/// Reads a `persist --json` document into its type (`persist::doc`, defined where the binary
/// prints it); the error names the command and the missing or wrong field.
pub fn parse_persist<T: serde::de::DeserializeOwned>(
    what: &str,
    stdout: &str,
) -> anyhow::Result<T> {
    serde_json::from_str(stdout).map_err(|e| {
        anyhow::anyhow!("persist --json {what} printed a document xtask cannot read: {e}")
    })
}

/// A small deterministic PRNG (xorshift64*), seeded per run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn seeded_from_clock() -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x1234_5678);
        Rng::new(t ^ u64::from(std::process::id()) << 32)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The sample table's key and value for entry `i`.
pub fn sample_kv(i: u64) -> (String, String) {
    (
        format!("key-{i:07}"),
        format!("value-{i}-{:08x}", i.wrapping_mul(2_654_435_761) as u32),
    )
}

/// Tab-separated `KEY\tVALUE\n` lines for entries `0..n`.
pub fn sample_tsv(n: u64) -> Vec<u8> {
    let mut s = Vec::with_capacity(n as usize * 32);
    for i in 0..n {
        let (k, v) = sample_kv(i);
        s.extend_from_slice(k.as_bytes());
        s.push(b'\t');
        s.extend_from_slice(v.as_bytes());
        s.push(b'\n');
    }
    s
}

/// `scratch/name`, created.
pub fn subdir(scratch: &std::path::Path, name: &str) -> anyhow::Result<std::path::PathBuf> {
    let dir = scratch.join(name);
    std::fs::create_dir_all(&dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

/// Up to `limit` lines, then how many more there were.
pub fn excerpt<'a>(lines: impl IntoIterator<Item = &'a str>, limit: usize) -> String {
    let mut out = String::new();
    let mut more = 0usize;
    for (i, l) in lines.into_iter().enumerate() {
        if i < limit {
            out.push_str(l);
            out.push('\n');
        } else {
            more += 1;
        }
    }
    if more > 0 {
        out.push_str(&format!("... {more} more\n"));
    }
    out
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn sample_keys_are_distinct_and_tsv_has_one_line_each() {
        assert_ne!(sample_kv(1), sample_kv(2));
        let tsv = sample_tsv(3);
        assert_eq!(tsv.iter().filter(|b| **b == b'\n').count(), 3);
        assert!(tsv.starts_with(b"key-0000000\tvalue-0-"));
    }

    #[test]
    fn excerpts_say_how_much_was_left_out() {
        assert_eq!(excerpt(["a", "b", "c"], 2), "a\nb\n... 1 more\n");
        assert_eq!(excerpt(["a"], 2), "a\n");
    }
}
