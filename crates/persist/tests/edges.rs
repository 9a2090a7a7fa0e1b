//! The edges of issue 22, each reproduced with real files, links and processes: compaction
//! keeps the file's identity (the path through symlinks, mode, owner, group).

mod common;

use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::{is_root, ok, persist, skip, tempdir, Tmpfs};
use persist::doc::Loaded;
use persist::{Table, TableMut, WriteOptions};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Keys of [`garbage_table`].
const KEYS: u64 = 1500;

fn key(i: u64) -> Vec<u8> {
    format!("key-{i}").into_bytes()
}

fn value(i: u64, round: u64) -> Vec<u8> {
    format!("{i}-{round}-").repeat(40).into_bytes()
}

/// A table at `path` whose arena (about 2 MiB) is three quarters garbage: each key written
/// four times (rounds 0..4). Enough for a writer to compact it on its own when it must grow.
fn garbage_table(path: &Path) {
    let opts = WriteOptions {
        auto_compact: false,
        ..WriteOptions::default()
    };
    let mut t = TableMut::create_with(path, 3, opts).unwrap();
    for round in 0..4 {
        for i in 0..KEYS {
            t.put(&key(i), &value(i, round)).unwrap();
        }
    }
    t.close().unwrap();
}

/// Asserts the table `path` names holds every key of [`garbage_table`] with its last value.
fn holds_all(path: &Path, what: &str) {
    let t = Table::open(path).unwrap();
    for i in 0..KEYS {
        assert_eq!(
            t.get(&key(i)).unwrap(),
            Some(&value(i, 3)[..]),
            "{what}: key-{i} through {}",
            path.display()
        );
    }
    let v = persist(&["verify", s(path)], b"");
    assert!(
        v.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&v.stderr)
    );
}

#[derive(Debug, Clone, Copy)]
enum Way {
    /// `persist compact PATH`.
    Explicit,
    /// A `persist load PATH` that must grow the file, and compacts instead.
    Automatic,
}

/// Compacts the table `path` names, one way or the other.
fn compact_via(way: Way, path: &Path) {
    match way {
        Way::Explicit => {
            ok(&["compact", s(path)]);
        }
        Way::Automatic => {
            // Enough new bytes to grow the file past its free space: the writer compacts.
            let st = Table::open(path).unwrap().stats().unwrap();
            let lines = (st.file_bytes - st.arena_end) / 1000 + 20;
            let mut tsv = Vec::new();
            for j in 0..lines {
                tsv.extend_from_slice(format!("fill-{j}\t{}\n", "f".repeat(1000)).as_bytes());
            }
            let out = persist(&["--json", "load", s(path)], &tsv);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let doc: Loaded = serde_json::from_slice(&out.stdout).unwrap();
            assert!(
                doc.write_stats.compactions >= 1,
                "the load compacted: {:?}",
                doc.write_stats
            );
        }
    }
}

/// Names in `dir` of scratch files a compaction left.
fn scratch_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".persist-compact"))
        .collect()
}

#[test]
fn compaction_through_a_symlink_compacts_the_file_it_points_to() {
    let d = tempdir("symlink");
    let real = d.path().join("real");
    let links = d.path().join("links");
    std::fs::create_dir(&real).unwrap();
    std::fs::create_dir(&links).unwrap();
    // A link on another file system: the scratch file must be made beside the target (a
    // rename across file systems fails), not beside the link.
    let other_fs = Tmpfs::mount("1m");
    if let Err(why) = &other_fs {
        skip("compaction through a link on another file system", why);
    }
    for way in [Way::Explicit, Way::Automatic] {
        for case in ["absolute", "relative", "chain", "other-fs"] {
            let what = format!("{case} link, {way:?} compaction");
            let name = format!("{case}-{way:?}.tbl");
            let target = real.join(&name);
            garbage_table(&target);
            let mut hops = Vec::new();
            let link = match case {
                "absolute" => {
                    let link = links.join(&name);
                    symlink(&target, &link).unwrap();
                    link
                }
                "relative" => {
                    let link = links.join(&name);
                    symlink(Path::new("../real").join(&name), &link).unwrap();
                    link
                }
                "chain" => {
                    let (link, hop) = (links.join(&name), links.join(format!("hop-{name}")));
                    symlink(&target, &hop).unwrap();
                    symlink(format!("hop-{name}"), &link).unwrap();
                    hops.push(hop);
                    link
                }
                _ => match &other_fs {
                    Ok(fs) => {
                        let link = fs.path().join(&name);
                        symlink(&target, &link).unwrap();
                        link
                    }
                    Err(_) => continue,
                },
            };
            hops.push(link.clone());
            let texts: Vec<PathBuf> = hops
                .iter()
                .map(|l| std::fs::read_link(l).unwrap())
                .collect();
            let inode = std::fs::metadata(&target).unwrap().ino();

            compact_via(way, &link);

            for (l, text) in hops.iter().zip(&texts) {
                let meta = std::fs::symlink_metadata(l).unwrap();
                assert!(
                    meta.file_type().is_symlink(),
                    "{what}: {l:?} is still a link"
                );
                assert_eq!(&std::fs::read_link(l).unwrap(), text, "{what}: {l:?}");
            }
            assert_ne!(
                std::fs::metadata(&target).unwrap().ino(),
                inode,
                "{what}: the file the link points to was compacted"
            );
            // One table, whichever path is used.
            ok(&["put", s(&link), "via-link", case]);
            assert_eq!(ok(&["get", s(&target), "via-link"]), format!("{case}\n"));
            ok(&["put", s(&target), "via-target", case]);
            assert_eq!(ok(&["get", s(&link), "via-target"]), format!("{case}\n"));
            holds_all(&link, &what);
            holds_all(&target, &what);
            for dir in [&real, &links] {
                assert_eq!(scratch_files(dir), Vec::<String>::new(), "{what}");
            }
        }
    }
}

#[test]
fn compaction_keeps_the_files_mode_owner_and_group() {
    let give_away = is_root();
    if !give_away {
        skip(
            "compaction keeps the owner and group (the mode part runs)",
            "not root: cannot give a file to uid 65534",
        );
    }
    let d = tempdir("identity");
    for way in [Way::Explicit, Way::Automatic] {
        for mode in [0o600, 0o640, 0o604, 0o664] {
            let what = format!("mode {mode:o}, {way:?} compaction");
            let path = d.path().join(format!("t-{mode:o}-{way:?}.tbl"));
            garbage_table(&path);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            if give_away {
                // nobody:nogroup, and a group unlike the owner for one case.
                let gid = if mode == 0o640 { 65533 } else { 65534 };
                std::os::unix::fs::chown(&path, Some(65534), Some(gid)).unwrap();
            }
            let before = std::fs::metadata(&path).unwrap();
            compact_via(way, &path);
            let after = std::fs::metadata(&path).unwrap();
            assert_ne!(after.ino(), before.ino(), "{what}: compacted");
            assert_eq!(after.mode() & 0o7777, mode, "{what}: mode");
            assert_eq!(
                (after.uid(), after.gid()),
                (before.uid(), before.gid()),
                "{what}: owner and group"
            );
            holds_all(&path, &what);
        }
    }
}

