//! What steps 2 and 3 share when they measure: the course's table (`disktable`) and the lab's
//! `persist` table. (Analyzing them is `lab_analysis::disktable`'s.)
//!
//! - [`run`]: a program under `strace -f` with a deadline, in a working directory.
//! - [`table`]: the table file read from outside (length, count, value\[i\] = i), and
//!   where the step's table comes from (`--table FILE` or `disktable create --course`).
//! - [`program`]: `--program PATH [-- ARGS]`, someone else's reader or writer, run.
//! - [`check_options`]: `--table` and `--program` checked before anything runs.
//! - The sample data both steps load into persist ([`sample_tsv`], [`Rng`]).

pub use lab_analysis::disktable::{parse_persist, sample_kv};

pub mod program;
pub mod run;
pub mod table;

/// Checks the options that name files (`--table`, `--program`) before anything runs.
pub fn check_options(options: &crate::model::StepOptions) -> anyhow::Result<()> {
    if let Some(table) = &options.table {
        match std::fs::metadata(table) {
            Ok(m) if m.is_file() => {}
            Ok(_) => anyhow::bail!("--table {}: not a regular file", table.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                anyhow::bail!("--table {}: no such file", table.display())
            }
            Err(e) => anyhow::bail!("--table {}: {e}", table.display()),
        }
    }
    if let Some(program) = &options.program {
        program::resolve(program)?;
    }
    Ok(())
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
}
