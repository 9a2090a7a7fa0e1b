//! What steps 2 and 3 share: the course's table (`disktable`) and someone else's program.
//!
//! - [`traced`]: how a program run under strace ended, its stderr and its trace.
//! - [`table`]: the table file as observed from outside, and where the step's table came from.
//! - [`fault`]: where a SIGSEGV/SIGBUS landed against the table's mapping and the file's end,
//!   and the ftruncate + mremap growths of a trace.
//! - [`program`]: `--program PATH [-- ARGS]`, someone else's reader or writer, judged.
//! - [`watched`]: what an inotify watch on the table saw during a run (no tracer involved).
//! - [`parse_persist`]: a `persist --json` document read into its type in `persist::doc`.
//! - [`sample_kv`]: the sample data both steps load into persist, checked against.

pub mod fault;
pub mod picture;
pub mod program;
pub mod table;
pub mod traced;
pub mod watched;

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

/// The sample table's key and value for entry `i`.
pub fn sample_kv(i: u64) -> (String, String) {
    (
        format!("key-{i:07}"),
        format!("value-{i}-{:08x}", i.wrapping_mul(2_654_435_761) as u32),
    )
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
mod tests {
    use super::*;

    #[test]
    fn excerpts_say_how_much_was_left_out() {
        assert_eq!(excerpt(["a", "b", "c"], 2), "a\nb\n... 1 more\n");
        assert_eq!(excerpt(["a"], 2), "a\n");
    }
}
