//! `persist`: the command-line face of the [`persist`] library, a hash table of byte strings that
//! lives in one file and is read and written through `mmap(2)` only (steps 2 and 3 of the lab).
//!
//! Run `persist create t.tbl`, `persist put t.tbl KEY VALUE`, `persist get t.tbl KEY`; under
//! `strace -e trace=openat,mmap,read,pread64,write,pwrite64,msync,ftruncate,mremap` the table's
//! descriptor shows an `mmap` and never a `read` or `write`. `cargo xtask run-step 2` and `3` do
//! exactly that and explain it. Every command takes `--json` (one JSON document on stdout).
//!
//! Readers (`get`, `list`, `stats`) take no lock and never wait for a writer; writers (`put`,
//! `del`, `load`, `compact`) exclude each other with `flock`; `verify` waits for a writer to
//! finish. `list` and `load` share a TSV format with four escapes (`\\`, `\t`, `\n`, `\r`), so
//! any bytes round-trip (the `tsv` module below). A production tool would add backups (a
//! consistent copy under the writers' lock).

use std::ffi::OsString;
use std::io::{self, BufRead, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use persist::doc::{self, FaultCount, Mode, WriteOp};
use persist::{shown, Access, Table, TableMut, WriteOptions};

const EXAMPLES: &str = "\
Examples:
  persist create t.tbl                      # a new, empty table (grows by itself)
  persist put t.tbl hello world             # store through a MAP_SHARED mapping
  persist get t.tbl hello                   # prints: world
  persist put --private t.tbl hello moon    # MAP_PRIVATE: the file keeps `world`
  printf 'a\\t1\\nb\\t2\\n' | persist load t.tbl  # KEY<TAB>VALUE lines
  persist list t.tbl                        # KEY<TAB>VALUE, file order
  persist stats --json t.tbl                # header numbers, resident pages
  persist residency --evict t.tbl           # drop it from the page cache (fadvise)
  persist get t.tbl k1 k2 k3                # several keys: one batched lookup
  persist compact t.tbl                     # give back overwritten/deleted space
  persist verify t.tbl                      # check every slot and record
  strace -e trace=mmap,read,pread64 persist get t.tbl hello   # no read of the table

Exit status: 0 success; 1 runtime failure (key not found, not a valid table, locked, I/O,
stdout closed or full, file size limit); 2 usage error.";

/// A hash table of byte strings in one file, used through mmap (never read/write).
#[derive(Parser)]
#[command(name = "persist", version, after_help = EXAMPLES)]
struct Cli {
    /// Print one JSON document on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone, Copy)]
struct WriteFlags {
    /// Map MAP_PRIVATE: the change is visible in this process only and never reaches the file.
    #[arg(long)]
    private: bool,
    /// msync(MS_SYNC) before returning, so the change is on disk, not just in the page cache.
    #[arg(long)]
    sync: bool,
    /// Fail at once if another writer holds the lock, instead of waiting for it.
    #[arg(long)]
    no_wait: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a new, empty table (the file must not exist).
    Create {
        file: PathBuf,
        /// Initial number of slots (rounded up to a power of two; the table grows by itself).
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=(1 << 30)))]
        slots: u64,
    },
    /// Print the value of each KEY (one per line); a missing key is an error (exit 1).
    ///
    /// Each KEY is a byte string: any bytes but NUL, UTF-8 or not (an error shows one that is
    /// not UTF-8 as \xNN, as in: key not found: caf\xe9).
    Get {
        file: PathBuf,
        #[arg(required = true)]
        keys: Vec<OsString>,
        /// Testing aid: after mapping, print `mapped` on stderr and wait for a line on stdin.
        #[arg(long, hide = true)]
        pause_after_map: bool,
    },
    /// Insert or replace KEY.
    ///
    /// KEY and VALUE are byte strings: any bytes but NUL, UTF-8 or not. The line printed
    /// (KEY: inserted) shows KEY as `persist list` does; an error on stderr also writes bytes
    /// that are not UTF-8 and control characters as \xNN.
    Put {
        file: PathBuf,
        key: OsString,
        value: OsString,
        #[command(flatten)]
        flags: WriteFlags,
    },
    /// Delete KEY; a missing key is an error (exit 1).
    ///
    /// KEY is a byte string: any bytes but NUL, UTF-8 or not.
    Del {
        file: PathBuf,
        key: OsString,
        #[command(flatten)]
        flags: WriteFlags,
    },
    /// Print every KEY<TAB>VALUE line (in file order: one pass over the file).
    ///
    /// Escaped, so that any bytes make one line and `persist load` reads them back exactly: in
    /// keys and values a backslash is written \\, a tab \t, a newline \n and a carriage return
    /// \r; every other byte as it is (NUL and bytes that are not UTF-8 included). `persist get`
    /// prints values raw.
    List { file: PathBuf },
    /// Print the header's numbers and how many pages are resident (mincore).
    ///
    /// The first line after the file is the format version (3; a version 2 table is read-only
    /// until `persist compact` upgrades it).
    ///
    /// Also names FILE.persist-compact if one lies beside the table: the scratch copy of a
    /// compaction that was interrupted (or, as stats takes no lock, one running now). Readers
    /// leave it; the next writer removes it.
    Stats { file: PathBuf },
    /// Check every slot and record; exit 1 with the reason if anything is wrong.
    ///
    /// Also names FILE.persist-compact if one lies beside the table: the scratch copy of a
    /// compaction that was interrupted (verify holds the lock, so none is running). The table
    /// does not need it; the next writer removes it.
    Verify { file: PathBuf },
    /// Put every KEY<TAB>VALUE line of stdin (the format `persist list` prints)
    ///
    /// The key ends at the first tab. In keys and values \\ is a backslash, \t a tab, \n a
    /// newline and \r a carriage return; any other byte stands for itself, so a plain TSV
    /// without backslashes loads as it reads. A backslash followed by anything else (\x) is an
    /// error naming the line, as is a line without a tab; the lines before it are stored.
    /// Lines end in \n or \r\n (a carriage return that is data is written \r); empty lines
    /// are skipped.
    Load {
        file: PathBuf,
        #[command(flatten)]
        flags: WriteFlags,
        /// Print each key on stdout as soon as its put has returned (for crash tests).
        #[arg(long)]
        echo: bool,
    },
    /// Give back the space of overwritten and deleted entries (a compacted copy renamed over FILE)
    ///
    /// Copies the live entries into FILE.persist-compact, fsyncs it and renames it over FILE.
    /// When FILE is a symlink (or a chain of them), the file it points to is compacted, in its
    /// own directory, and the link stays a link. The new file keeps the owner, group and mode
    /// of the old (an error, and no compaction, when that is not allowed). A table with more
    /// than one hard link is not compacted (an error): the other names would keep the old file.
    /// Readers that have the old file open keep reading it and move to the new one; a writer
    /// waiting for the lock writes to the new one. Killed at any instant, nothing is lost; a
    /// kill before the rename leaves FILE.persist-compact, which the next writer removes. (For
    /// a FILE name over 239 bytes, the scratch name is its first 222 bytes, a dot, a 16-digit
    /// hash of the whole name and .persist-compact: 255 bytes, the most a name may have.)
    ///
    /// This is also the upgrade of a version 2 table (read-only in this build: every other
    /// write refuses it): the copy is written in format version 3, every entry byte for byte.
    Compact {
        file: PathBuf,
        /// Fail at once if another writer holds the lock, instead of waiting for it.
        #[arg(long)]
        no_wait: bool,
    },
    /// Show how many of the table's pages are in the page cache; --evict drops them first.
    Residency {
        file: PathBuf,
        /// fsync, then posix_fadvise(POSIX_FADV_DONTNEED): evict the clean pages.
        #[arg(long)]
        evict: bool,
    },
}

fn main() -> ExitCode {
    let cli: Cli = match lab_cli::parse() {
        Ok(cli) => cli,
        Err(status) => return status,
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `persist list t.tbl | head`: a closed stdout is not worth an error.
            if e.chain().any(|c| {
                c.downcast_ref::<io::Error>()
                    .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            // Never eprintln!: it panics when stderr is unwritable (`2>/dev/full`). The status
            // still says what happened.
            let _ = writeln!(io::stderr(), "error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `println!` that returns an error instead of panicking when stdout cannot be written
/// (`>/dev/full`): the command then fails with `error: cannot write to stdout: …`, exit 1.
macro_rules! outln {
    ($($arg:tt)*) => {
        writeln!(io::stdout().lock(), $($arg)*).context("cannot write to stdout")?
    };
}

/// Prints one JSON document (and a newline) on stdout: one of the [`persist::doc`] types.
fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    emit(&json_bytes(v)?, None)
}

/// One JSON document and a newline, to print.
fn json_bytes(v: &impl serde::Serialize) -> anyhow::Result<Vec<u8>> {
    let mut text = serde_json::to_vec_pretty(v).context("cannot encode JSON")?;
    text.push(b'\n');
    Ok(text)
}

/// Writes `out` on stdout (and flushes it). `made` says what the command changed, for a
/// command that changed the table before printing: then an unwritable stdout is reported with
/// it, so that nobody takes the change for not made.
fn emit(out: &[u8], made: Option<String>) -> anyhow::Result<()> {
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(out)
        .and_then(|_| stdout.flush())
        .map_err(|e| unwritten(e, made))
}

/// The error for stdout that cannot be written, naming what was made. A closed pipe after the
/// change was complete stays the quiet success `main` makes of it (nothing was lost).
fn unwritten(e: io::Error, made: Option<String>) -> anyhow::Error {
    match made {
        Some(made) if e.kind() != io::ErrorKind::BrokenPipe => {
            anyhow::anyhow!("cannot write to stdout: {e} ({made})")
        }
        _ => anyhow::Error::new(e).context("cannot write to stdout"),
    }
}

/// Bytes as text for a JSON document: bytes that are not UTF-8 replaced with U+FFFD (as the
/// [`persist::doc`] types say).
fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A key where the output is data (stdout): as `list` writes it, every byte as it is but the
/// four escaped ones (`\\`, `\t`, `\n`, `\r`), so that a key stays on its line.
fn key_out(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len());
    tsv::escape_into(&mut out, key);
    out
}

fn mode(private: bool) -> Mode {
    if private {
        Mode::Private
    } else {
        Mode::Shared
    }
}

/// The TSV of `list` and `load`: one `KEY<TAB>VALUE` line per entry, with a backslash, a tab,
/// a newline and a carriage return in keys and values written `\\`, `\t`, `\n`, `\r`. Every
/// other byte stands for itself, so a TSV with no backslashes reads as it did before there were
/// escapes, and a line of `list` is always one entry whatever bytes it holds.
mod tsv {
    /// Appends `bytes` to `out`, escaped.
    pub fn escape_into(out: &mut Vec<u8>, bytes: &[u8]) {
        for &b in bytes {
            match b {
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\t' => out.extend_from_slice(b"\\t"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                _ => out.push(b),
            }
        }
    }

    /// Replaces `out` with `field` unescaped. For an escape that is not one of the four, what
    /// the field has ("an unknown escape \\x", "a backslash at its end").
    pub fn unescape_into(out: &mut Vec<u8>, field: &[u8]) -> Result<(), String> {
        out.clear();
        let mut bytes = field.iter();
        while let Some(&b) = bytes.next() {
            if b != b'\\' {
                out.push(b);
                continue;
            }
            out.push(match bytes.next() {
                Some(b'\\') => b'\\',
                Some(b't') => b'\t',
                Some(b'n') => b'\n',
                Some(b'r') => b'\r',
                Some(&c) => {
                    let shown = if c.is_ascii_graphic() || c == b' ' {
                        format!("\\{}", c as char)
                    } else {
                        format!("\\ followed by byte {c:#04x}")
                    };
                    return Err(format!("an unknown escape {shown}"));
                }
                None => return Err("a backslash at its end".into()),
            });
        }
        Ok(())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn every_byte_round_trips_and_unknown_escapes_are_refused() {
            let all: Vec<u8> = (0..=255u8).chain(*b"\\\\t\r\n\\").collect();
            let mut escaped = Vec::new();
            escape_into(&mut escaped, &all);
            assert!(!escaped.iter().any(|b| matches!(b, b'\t' | b'\n' | b'\r')));
            let mut back = Vec::new();
            unescape_into(&mut back, &escaped).unwrap();
            assert_eq!(back, all);
            unescape_into(&mut back, b"plain text, no escapes").unwrap();
            assert_eq!(back, b"plain text, no escapes");
            let e = unescape_into(&mut back, b"C:\\dir").unwrap_err();
            assert_eq!(e, "an unknown escape \\d");
            let e = unescape_into(&mut back, b"\\\xff").unwrap_err();
            assert!(e.contains("byte 0xff"), "{e}");
            let e = unescape_into(&mut back, b"end\\").unwrap_err();
            assert_eq!(e, "a backslash at its end");
        }
    }
}

fn pages(bytes: u64) -> u64 {
    bytes.div_ceil(persist::page_size() as u64)
}

/// Opens for writing; `bulk` (load) asks for huge pages, a single put or del does not (it
/// touches two pages, and msync should write back no more than those). A table of the
/// previous format version is refused (it is read-only until compacted).
fn open_write(file: &Path, flags: WriteFlags, bulk: bool) -> anyhow::Result<TableMut> {
    open_write_as(file, flags, bulk, |p, o| TableMut::open(p, o))
}

/// [`open_write`] with the opener: [`TableMut::open`], or for `compact`
/// [`TableMut::open_to_upgrade`], which accepts the previous version too.
fn open_write_as(
    file: &Path,
    flags: WriteFlags,
    bulk: bool,
    open: fn(&Path, WriteOptions) -> Result<TableMut, persist::Error>,
) -> anyhow::Result<TableMut> {
    let t = open(
        file,
        WriteOptions {
            private: flags.private,
            wait: !flags.no_wait,
            huge_pages: bulk,
            auto_compact: true,
        },
    );
    match t {
        Err(persist::Error::Open { error, .. }) if error.kind() == io::ErrorKind::NotFound => {
            bail!(
                "cannot open {}: no such file; create it first with `persist create {}`",
                file.display(),
                file.display()
            )
        }
        t => Ok(t?),
    }
}

fn open_read(file: &Path, access: Access) -> anyhow::Result<Table> {
    match Table::open_for(file, access) {
        Err(persist::Error::Open { error, .. }) if error.kind() == io::ErrorKind::NotFound => {
            bail!(
                "cannot open {}: no such file; create it with `persist create {}`",
                file.display(),
                file.display()
            )
        }
        t => Ok(t?),
    }
}

/// Closes a writer: msync first when asked, then the clean-close store.
fn finish_write(t: TableMut, sync: bool) -> anyhow::Result<()> {
    if sync && !t.is_private() {
        t.sync()?;
    }
    t.close()?;
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let json = cli.json;
    // Every command reports on stdout: with stdout closed (`>&-`) it would change the table, or
    // read it, for nobody. Refused before the table is touched (see lab_cli::out).
    lab_cli::out::stdout_usable().context("cannot write to stdout")?;
    // Past `ulimit -f` a write fails with EFBIG (one error line, cleaned up), not SIGXFSZ.
    lab_cli::out::ignore_file_size_signal().context("cannot ignore SIGXFSZ")?;
    match cli.cmd {
        Cmd::Create { file, slots } => create(json, file, slots),
        Cmd::Get {
            file,
            keys,
            pause_after_map,
        } => get(json, file, keys, pause_after_map),
        Cmd::Put {
            file,
            key,
            value,
            flags,
        } => put(json, file, key, value, flags),
        Cmd::Del { file, key, flags } => del(json, file, key, flags),
        Cmd::List { file } => list(json, file),
        Cmd::Stats { file } => stats(json, file),
        Cmd::Verify { file } => verify(json, file),
        Cmd::Load { file, flags, echo } => load(json, file, flags, echo),
        Cmd::Compact { file, no_wait } => compact(json, file, no_wait),
        Cmd::Residency { file, evict } => residency(json, file, evict),
    }?;
    io::stdout().flush().context("cannot write to stdout")?;
    Ok(())
}

/// `persist create`: a new, empty table.
fn create(json: bool, file: PathBuf, slots: u64) -> anyhow::Result<()> {
    let log2 = slots.next_power_of_two().trailing_zeros();
    let t = TableMut::create(&file, log2)?;
    let stats = t.stats();
    t.close()?;
    let made = format!("{} was created", file.display());
    let out = if json {
        json_bytes(&doc::Created {
            file,
            created: true,
            stats,
        })?
    } else {
        format!(
            "created {} ({} bytes, {} slots)\n",
            file.display(),
            stats.file_bytes,
            stats.slot_count
        )
        .into_bytes()
    };
    emit(&out, Some(made))
}

/// `persist get`: the values of the keys, looked up in one batch.
fn get(
    json: bool,
    file: PathBuf,
    keys: Vec<OsString>,
    pause_after_map: bool,
) -> anyhow::Result<()> {
    let keys: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
    let start = persist::faults();
    let t = open_read(&file, Access::RandomPages)?;
    if pause_after_map {
        let _ = writeln!(io::stderr(), "mapped");
        let mut line = String::new();
        io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read stdin")?;
    }
    // One batched lookup (Table::get_many overlaps the cache misses of the keys).
    let found = t.get_many(&keys)?;
    let mut values = Vec::with_capacity(keys.len());
    for (key, v) in keys.iter().zip(found) {
        match v {
            Some(v) => values.push(v),
            None => bail!("key not found: {}", shown(key)),
        }
    }
    // Copy out only after every lookup, then confirm no truncation hit us meanwhile.
    let owned: Vec<Vec<u8>> = values.iter().map(|v| v.to_vec()).collect();
    t.check()?;
    let faults = FaultCount::since(start);
    if json {
        let results = keys
            .iter()
            .zip(&owned)
            .map(|(k, v)| doc::GetResult {
                key: text(k),
                value: text(v),
                value_bytes: v.len() as u64,
            })
            .collect();
        print_json(&doc::Got {
            file,
            lookups: keys.len() as u64,
            results,
            faults,
            pages_total: pages(t.mapped_len()),
            pages_resident_after: t.resident_pages()? as u64,
        })?;
    } else {
        let mut out = io::BufWriter::new(io::stdout().lock());
        for v in &owned {
            out.write_all(v)
                .and_then(|_| out.write_all(b"\n"))
                .context("cannot write to stdout")?;
        }
        out.flush().context("cannot write to stdout")?;
    }
    Ok(())
}

/// `persist put`: stores one value.
fn put(
    json: bool,
    file: PathBuf,
    key: OsString,
    value: OsString,
    flags: WriteFlags,
) -> anyhow::Result<()> {
    let key = key.as_bytes();
    let mut t = open_write(&file, flags, false)?;
    let replaced = t.put(key, value.as_bytes())?;
    let readback = text(t.get(key)?.unwrap_or_default());
    report_write(
        json,
        &file,
        t,
        WriteOp::Put,
        key,
        Some(replaced),
        &readback,
        flags,
    )
}

/// `persist del`: deletes one key (its absence is an error).
fn del(json: bool, file: PathBuf, key: OsString, flags: WriteFlags) -> anyhow::Result<()> {
    let key = key.as_bytes();
    let mut t = open_write(&file, flags, false)?;
    if !t.delete(key)? {
        bail!("key not found: {}", shown(key));
    }
    report_write(json, &file, t, WriteOp::Del, key, None, "", flags)
}

/// `persist list`: every entry, as escaped TSV (or JSON).
fn list(json: bool, file: PathBuf) -> anyhow::Result<()> {
    let t = open_read(&file, Access::Sequential)?;
    if json {
        let mut entries = Vec::new();
        t.for_each(|k, v| {
            entries.push(doc::Entry {
                key: text(k),
                value: text(v),
            })
        })?;
        print_json(&doc::Listed {
            file,
            count: entries.len() as u64,
            entries,
        })?;
    } else {
        let mut out = io::BufWriter::new(io::stdout().lock());
        let mut err = Ok(());
        let mut line = Vec::new();
        t.for_each(|k, v| {
            if err.is_ok() {
                line.clear();
                tsv::escape_into(&mut line, k);
                line.push(b'\t');
                tsv::escape_into(&mut line, v);
                line.push(b'\n');
                err = out.write_all(&line);
            }
        })?;
        err.context("cannot write to stdout")?;
        out.flush().context("cannot write to stdout")?;
    }
    Ok(())
}

/// `persist stats`: the table's sizes, residency and any scratch file left.
fn stats(json: bool, file: PathBuf) -> anyhow::Result<()> {
    let start = persist::faults();
    let t = open_read(&file, Access::RandomPages)?;
    let stats = t.stats()?;
    let resident = t.resident_pages()?;
    let total = pages(t.mapped_len());
    let scratch = persist::compact_scratch(&file);
    if json {
        print_json(&doc::StatsDoc {
            file,
            stats,
            pages_total: total,
            pages_resident: resident as u64,
            faults: FaultCount::since(start),
            compact_scratch: scratch,
        })?;
    } else {
        outln!("file            {}", file.display());
        if stats.version == persist::VERSION {
            outln!("version         {}", stats.version);
        } else {
            outln!(
                "version         {} (read-only: `persist compact` upgrades it to version {})",
                stats.version,
                persist::VERSION
            );
        }
        outln!("file bytes      {}", stats.file_bytes);
        outln!("entries         {}", stats.entries);
        outln!(
            "slots           {} used of {} (array at offset {})",
            stats.used_slots,
            stats.slot_count,
            stats.slots_offset
        );
        outln!("arena end       {}", stats.arena_end);
        outln!(
            "live records    {} bytes; garbage {} bytes (persist compact gives it back)",
            stats.live_record_bytes,
            stats.garbage_bytes
        );
        outln!("dirty           {}", stats.dirty);
        outln!("pages resident  {resident} of {total} (mincore)");
        if let Some(sc) = scratch {
            outln!(
                "compact scratch {}: {} bytes left by an interrupted compaction (or made \
                 by one running now); the next writer removes it",
                sc.path.display(),
                sc.bytes
            );
        }
    }
    Ok(())
}

/// `persist verify`: checks the whole table.
fn verify(json: bool, file: PathBuf) -> anyhow::Result<()> {
    let start = persist::faults();
    let t = open_read(&file, Access::Sequential)?;
    let (r, scratch) = t.verify_noting_scratch()?;
    if json {
        let faults = FaultCount::since(start);
        print_json(&doc::Verified {
            file,
            valid: true,
            report: r,
            faults,
            compact_scratch: scratch,
        })?;
    } else {
        outln!(
            "{}: valid table: {} entries, {} deleted slots, {} slots, {} bytes{}",
            file.display(),
            r.entries,
            r.deleted,
            r.slot_count,
            r.file_len,
            if r.dirty {
                " (a writer was killed before closing it; the next writer recounts)"
            } else {
                ""
            }
        );
        if let Some(sc) = scratch {
            outln!(
                "{}: {} bytes left by an interrupted compaction (the table does not need \
                 it; the next writer removes it)",
                sc.path.display(),
                sc.bytes
            );
        }
    }
    Ok(())
}

/// `persist load`: puts every `KEY<TAB>VALUE` line of stdin (the escapes undone).
fn load(json: bool, file: PathBuf, flags: WriteFlags, echo: bool) -> anyhow::Result<()> {
    let mut t = open_write(&file, flags, true)?;
    let stdin = io::stdin();
    let mut input = stdin.lock();
    let (mut line, mut key, mut value) = (Vec::new(), Vec::new(), Vec::new());
    let (mut n, mut lineno) = (0u64, 0u64);
    let mut out = io::stdout().lock();
    loop {
        line.clear();
        if input
            .read_until(b'\n', &mut line)
            .context("cannot read stdin")?
            == 0
        {
            break;
        }
        lineno += 1;
        // A CRLF line end; a carriage return that is data is escaped (\r).
        let l = line.strip_suffix(b"\n").unwrap_or(&line);
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        if l.is_empty() {
            continue;
        }
        let Some(tab) = l.iter().position(|b| *b == b'\t') else {
            bail!(
                "stdin line {lineno} has no tab: expected KEY<TAB>VALUE \
                 ({n} lines before it were stored)"
            );
        };
        let field = |bytes: &[u8], buf: &mut Vec<u8>, what: &str| {
            tsv::unescape_into(buf, bytes).map_err(|e| {
                anyhow::anyhow!(
                    "stdin line {lineno}: the {what} has {e}; the escapes are \\\\ \\t \\n \
                     \\r (a backslash itself is \\\\) ({n} lines before it were stored)"
                )
            })
        };
        field(&l[..tab], &mut key, "key")?;
        field(&l[tab + 1..], &mut value, "value")?;
        t.put(&key, &value)?;
        n += 1;
        if echo {
            if let Err(e) = out
                .write_all(&l[..tab])
                .and_then(|_| out.write_all(b"\n"))
                .and_then(|_| out.flush())
            {
                // The load stops here, short of its input: an error even for a closed pipe.
                drop(out);
                finish_write(t, flags.sync)?;
                bail!(
                    "cannot write to stdout: {e} (the load stopped: {n} entries up to stdin \
                     line {lineno} were stored in {}, the rest was not read)",
                    file.display()
                );
            }
        }
    }
    drop(out);
    let ws = t.write_stats();
    let stats = t.stats();
    let private = t.is_private();
    finish_write(t, flags.sync)?;
    let made =
        (!private).then(|| format!("the load was made: {n} lines stored in {}", file.display()));
    let out = if json {
        json_bytes(&doc::Loaded {
            file,
            op: WriteOp::Load,
            puts: n,
            mode: mode(private),
            synced: flags.sync && !private,
            write_stats: ws,
            stats,
        })?
    } else if !echo {
        format!(
            "loaded {n} entries into {} ({} entries, {} bytes; grew the file {} times, \
             the slot array {} times)\n",
            file.display(),
            stats.entries,
            stats.file_bytes,
            ws.file_growths,
            ws.rehashes
        )
        .into_bytes()
    } else {
        Vec::new()
    };
    emit(&out, made)
}

/// `persist compact`: rewrites the table without its garbage.
fn compact(json: bool, file: PathBuf, no_wait: bool) -> anyhow::Result<()> {
    let flags = WriteFlags {
        private: false,
        sync: false,
        no_wait,
    };
    // Also the upgrade of a table of the previous version: the copy is written in this one.
    let mut t = open_write_as(&file, flags, true, |p, o| TableMut::open_to_upgrade(p, o))?;
    let c = t.compact()?;
    let ws = t.write_stats();
    finish_write(t, false)?;
    let made = format!("the compaction was made: {} is compacted", file.display());
    let out = if json {
        json_bytes(&doc::Compacted {
            file,
            op: WriteOp::Compact,
            compact: c,
            write_stats: ws,
        })?
    } else {
        format!(
            "compacted {}: {} entries; file {} -> {} bytes, arena {} -> {} bytes\n",
            file.display(),
            c.entries,
            c.file_bytes_before,
            c.file_bytes_after,
            c.arena_bytes_before,
            c.arena_bytes_after
        )
        .into_bytes()
    };
    emit(&out, Some(made))
}

/// `persist residency`: the table's pages in the page cache (and evicts them with --evict).
fn residency(json: bool, file: PathBuf, evict: bool) -> anyhow::Result<()> {
    let r = persist::page_cache_residency(&file, evict).map_err(|e| match e {
        persist::Error::Open { error, .. } if error.kind() == io::ErrorKind::NotFound => {
            anyhow::anyhow!("cannot open {}: no such file", file.display())
        }
        e => e.into(),
    })?;
    if json {
        print_json(&doc::ResidencyDoc {
            file: file.clone(),
            residency: r.clone(),
        })?;
    } else {
        outln!(
            "{}: {} of {} pages resident",
            file.display(),
            r.pages_resident_before,
            r.pages_total
        );
        if evict {
            outln!(
                "after fsync + posix_fadvise(DONTNEED): {} of {} pages resident{}",
                r.pages_resident_after,
                r.pages_total,
                if r.note.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", r.note)
                }
            );
        }
    }
    Ok(())
}

/// Closes the writer `t` of a put or del (msync first with `--sync`), then prints what was
/// done. Written out before the close, printed after it: stdout that cannot be written is
/// reported as such, with what was made (the change is in the table by then).
#[allow(clippy::too_many_arguments)]
fn report_write(
    json: bool,
    file: &Path,
    t: TableMut,
    op: WriteOp,
    key: &[u8],
    replaced: Option<bool>,
    readback: &str,
    flags: WriteFlags,
) -> anyhow::Result<()> {
    let private = t.is_private();
    let out = if json {
        json_bytes(&doc::Written {
            file: file.to_path_buf(),
            op,
            key: text(key),
            replaced,
            mode: mode(private),
            synced: flags.sync && !private,
            readback: (op == WriteOp::Put).then(|| readback.to_string()),
            write_stats: t.write_stats(),
            stats: t.stats(),
        })?
    } else {
        let what = match (op, replaced) {
            (WriteOp::Put, Some(true)) => "replaced",
            (WriteOp::Put, _) => "inserted",
            _ => "deleted",
        };
        let mut line = key_out(key);
        if private {
            line.extend_from_slice(
                format!(
                    ": {what} in a MAP_PRIVATE copy (this process now reads {readback:?}); \
                     the file is unchanged\n"
                )
                .as_bytes(),
            );
        } else {
            line.extend_from_slice(format!(": {what}\n").as_bytes());
        }
        line
    };
    finish_write(t, flags.sync)?;
    let made = (!private).then(|| {
        let (k, f) = (shown(key), file.display());
        if op == WriteOp::Put {
            format!("the put was made: {k} is in {f}")
        } else {
            format!("the del was made: {k} is no longer in {f}")
        }
    });
    emit(&out, made)
}
