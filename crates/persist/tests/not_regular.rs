//! Every command of `persist` and `disktable` that opens a table refuses what is not a regular
//! file — a FIFO, a directory, a character device, a socket — with one line and exit 1, before
//! anything can block on it (issue 22: a FIFO used to block every reader forever).
//!
//! Each command runs as a real process with a deadline: if a regression makes it block, the
//! test kills it and fails instead of hanging.

mod bounded;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use bounded::run_bounded;
use tempfile::TempDir;

const PERSIST: &str = env!("CARGO_BIN_EXE_persist");
const DISKTABLE: &str = env!("CARGO_BIN_EXE_disktable");

fn tempdir() -> TempDir {
    tempfile::Builder::new()
        .prefix("persist-test-not-regular-")
        .tempdir()
        .unwrap()
}

/// Makes a FIFO at `path` (`mkfifo(3)`).
fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
    assert_eq!(rc, 0, "mkfifo: {}", std::io::Error::last_os_error());
}

/// The commands of both programs that open an existing table, for `file`.
fn commands(file: &str) -> Vec<(&'static str, Vec<String>)> {
    let p = |args: &[&str]| -> Vec<String> {
        args.iter()
            .map(|a| {
                if *a == "F" {
                    file.to_string()
                } else {
                    a.to_string()
                }
            })
            .collect()
    };
    vec![
        (PERSIST, p(&["get", "F", "k"])),
        (PERSIST, p(&["list", "F"])),
        (PERSIST, p(&["verify", "F"])),
        (PERSIST, p(&["stats", "F"])),
        (PERSIST, p(&["residency", "F"])),
        (PERSIST, p(&["--json", "stats", "F"])),
        (PERSIST, p(&["put", "F", "k", "v"])),
        (PERSIST, p(&["put", "--private", "F", "k", "v"])),
        (PERSIST, p(&["del", "F", "k"])),
        (PERSIST, p(&["load", "F"])),
        (PERSIST, p(&["compact", "F"])),
        (DISKTABLE, p(&["print", "F"])),
        (DISKTABLE, p(&["print", "--json", "F"])),
        (DISKTABLE, p(&["print", "--evict", "F"])),
        (DISKTABLE, p(&["append", "F"])),
        (DISKTABLE, p(&["append", "--naive", "F"])),
    ]
}

/// Runs every command on `file` and asserts the one line `error: FILE is KIND, not a table
/// file`, exit 1, no signal.
fn all_refuse(file: &Path, kind: &str) {
    let f = file.to_str().unwrap();
    let expect = format!("error: {f} is {kind}, not a table file");
    for (bin, args) in commands(f) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (status, err) = run_bounded(bin, &args);
        let what = format!("{bin} {args:?}");
        assert_eq!(status.signal(), None, "{what}: {err}");
        assert_eq!(status.code(), Some(1), "{what}: {err}");
        assert_eq!(err.trim_end(), expect, "{what}");
    }
}

#[test]
fn a_fifo_is_refused_by_every_command_without_blocking() {
    let d = tempdir();
    let fifo = d.path().join("t.fifo");
    mkfifo(&fifo);
    all_refuse(&fifo, "a FIFO");
    // Reached through a symlink, it is the same FIFO.
    let link = d.path().join("link");
    std::os::unix::fs::symlink(&fifo, &link).unwrap();
    all_refuse(&link, "a FIFO");
    // Nothing was created next to it, and it is still a FIFO.
    let names: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
}

#[test]
fn a_directory_is_refused_by_every_command() {
    let d = tempdir();
    let dir = d.path().join("sub");
    std::fs::create_dir(&dir).unwrap();
    all_refuse(&dir, "a directory");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}

#[test]
fn a_character_device_is_refused_by_every_command() {
    // /dev/null: a writer that mapped it would "succeed" at writing nowhere.
    all_refuse(Path::new("/dev/null"), "a character device");
}

#[test]
fn a_socket_is_refused_by_every_command() {
    let d = tempdir();
    let sock = d.path().join("t.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    all_refuse(&sock, "a socket");
}

#[test]
fn creating_over_a_fifo_is_refused_and_leaves_it() {
    let d = tempdir();
    let fifo = d.path().join("t.fifo");
    mkfifo(&fifo);
    let f = fifo.to_str().unwrap();
    for (bin, args) in [(PERSIST, vec!["create", f]), (DISKTABLE, vec!["create", f])] {
        let (status, err) = run_bounded(bin, &args);
        assert_eq!(status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(
            err.trim_end(),
            format!("error: {f} already exists; remove it or choose another name"),
            "{args:?}"
        );
    }
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
}

/// persist's open errors (through the same helper) name the user's path once and the OS cause
/// once.
#[test]
fn persist_open_errors_name_the_path_and_the_cause_once() {
    let d = tempdir();
    let missing = d.path().join("missing.tbl");
    let nowhere = d.path().join("no/such/dir/t.tbl");
    let file = d.path().join("plain");
    std::fs::write(&file, b"x").unwrap();
    let through_file = file.join("t.tbl");
    let (m, n, t) = (
        missing.to_str().unwrap(),
        nowhere.to_str().unwrap(),
        through_file.to_str().unwrap(),
    );
    for (args, expect) in [
        (
            vec!["get", m, "k"],
            format!("error: cannot open {m}: no such file; create it with `persist create {m}`"),
        ),
        (
            vec!["create", n],
            format!("error: cannot open {n}: No such file or directory (os error 2)"),
        ),
        (
            vec!["list", t],
            format!("error: cannot open {t}: Not a directory (os error 20)"),
        ),
        (
            vec!["put", t, "k", "v"],
            format!("error: cannot open {t}: Not a directory (os error 20)"),
        ),
    ] {
        let (status, err) = run_bounded(PERSIST, &args);
        assert_eq!(status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.trim_end(), expect, "{args:?}");
    }
    assert!(!missing.exists());
}

/// A dangling symbolic link is named as one by every command, `create` included: `create`
/// used to say it "already exists" while every other command said "no such file; create it
/// first", sending the user round in a circle.
#[test]
fn a_dangling_symlink_is_named_by_every_command_and_by_create() {
    let d = tempdir();
    let link = d.path().join("link");
    let target = d.path().join("gone.tbl");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let (l, t) = (link.to_str().unwrap(), target.to_str().unwrap());
    let expect = format!(
        "error: {l} is a symbolic link to {t}, which does not exist; create the table there \
         (or remove the link)"
    );
    let mut all = commands(l);
    all.push((PERSIST, vec!["create".into(), l.into()]));
    all.push((DISKTABLE, vec!["create".into(), l.into()]));
    for (bin, args) in all {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (status, err) = run_bounded(bin, &args);
        assert_eq!(status.code(), Some(1), "{bin} {args:?}: {err}");
        assert_eq!(err.trim_end(), expect, "{bin} {args:?}");
    }
    assert!(!target.exists());
    assert!(
        std::fs::symlink_metadata(&link).is_ok(),
        "the link was removed"
    );
}
