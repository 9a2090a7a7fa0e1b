//! An inotify watch on the table file for the length of one run, and the table's inode before
//! and after: the kernel's account of system calls on the file, which needs no tracer (so a
//! program that behaves differently under strace is still seen). What the events mean, as
//! measured, is `lab_analysis::disktable::watched`'s. Through rustix's safe wrappers.

use std::mem::MaybeUninit;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use lab_analysis::disktable::watched::FileEvents;
use rustix::fd::OwnedFd;
use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};

/// A watch on one file, started before a run and read after it.
pub struct Watch {
    fd: OwnedFd,
    path: PathBuf,
    /// (device, inode) when the watch began.
    inode: (u64, u64),
}

fn inode(path: &Path) -> anyhow::Result<(u64, u64)> {
    let m = std::fs::metadata(path).with_context(|| format!("cannot stat {}", path.display()))?;
    Ok((m.dev(), m.ino()))
}

impl Watch {
    /// Watches `path` for reads, writes and truncations by system call, and for being moved
    /// or deleted.
    pub fn start(path: &Path) -> anyhow::Result<Watch> {
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)
            .context("cannot create an inotify instance to watch the table")?;
        inotify::add_watch(
            &fd,
            path,
            WatchFlags::ACCESS
                | WatchFlags::MODIFY
                | WatchFlags::MOVE_SELF
                | WatchFlags::DELETE_SELF,
        )
        .with_context(|| format!("cannot watch {} with inotify", path.display()))?;
        Ok(Watch {
            fd,
            path: path.to_path_buf(),
            inode: inode(path)?,
        })
    }

    /// What happened to the file since [`Watch::start`] (call once the run has ended, before
    /// the lab reads the file itself).
    pub fn finish(self) -> anyhow::Result<FileEvents> {
        let mut events = FileEvents::default();
        let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
        let mut reader = inotify::Reader::new(&self.fd, &mut buf);
        loop {
            match reader.next() {
                Ok(e) => {
                    let mask = e.events();
                    events.access += u32::from(mask.contains(ReadFlags::ACCESS));
                    events.modify += u32::from(mask.contains(ReadFlags::MODIFY));
                    events.replaced |=
                        mask.intersects(ReadFlags::MOVE_SELF | ReadFlags::DELETE_SELF);
                    events.overflow |= mask.contains(ReadFlags::QUEUE_OVERFLOW);
                }
                Err(rustix::io::Errno::AGAIN) => break,
                Err(e) => {
                    return Err(anyhow::anyhow!(
                        "cannot read the table's inotify events: {e}"
                    ))
                }
            }
        }
        // Another file under the table's name (a rename over it), or no file at all.
        events.replaced |= inode(&self.path).ok() != Some(self.inode);
        Ok(events)
    }
}
