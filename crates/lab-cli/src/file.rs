//! Opening a file a program was pointed at (a table, a ring) when it must be a regular file:
//! refuse a FIFO, directory, device or socket before anything can block on it, and name a
//! symbolic link to nothing as such. The programs word the refusal themselves.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// What a path names when it is not a regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Directory,
    Fifo,
    CharDevice,
    BlockDevice,
    Socket,
    Other,
}

impl FileKind {
    /// The kind of a file of type `t`; `None` for a regular file.
    pub fn of(t: std::fs::FileType) -> Option<FileKind> {
        Some(if t.is_file() {
            return None;
        } else if t.is_dir() {
            FileKind::Directory
        } else if t.is_fifo() {
            FileKind::Fifo
        } else if t.is_char_device() {
            FileKind::CharDevice
        } else if t.is_block_device() {
            FileKind::BlockDevice
        } else if t.is_socket() {
            FileKind::Socket
        } else {
            FileKind::Other
        })
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Directory => "a directory",
            FileKind::Fifo => "a FIFO",
            FileKind::CharDevice => "a character device",
            FileKind::BlockDevice => "a block device",
            FileKind::Socket => "a socket",
            FileKind::Other => "a special file",
        })
    }
}

/// Where `path` points when it is a symbolic link whose target does not exist (joined to the
/// link's directory when relative, so the message names the place to create it).
pub fn dangling_target(path: &Path) -> Option<PathBuf> {
    let is_link = std::fs::symlink_metadata(path)
        .ok()?
        .file_type()
        .is_symlink();
    if !is_link || std::fs::metadata(path).is_ok() {
        return None;
    }
    let target = std::fs::read_link(path).ok()?;
    Some(match path.parent() {
        Some(dir) if target.is_relative() => dir.join(target),
        _ => target,
    })
}

/// Why [`open_regular`] failed.
#[derive(Debug)]
pub enum OpenFailure {
    /// The path names a FIFO, directory, device or socket.
    NotRegular(FileKind),
    /// The path is a symbolic link to nothing (its target, as [`dangling_target`] gives it).
    Dangling(PathBuf),
    /// `open(2)` failed for any other reason (the caller names the path).
    Os(io::Error),
}

/// Opens an existing file, read-only or read-write (`write`), and refuses anything that is not
/// a regular file before it can block or misbehave.
///
/// `open(2)` with `O_NONBLOCK | O_NOCTTY | O_CLOEXEC`: `O_NONBLOCK` makes opening a FIFO return
/// at once (a plain read-only open waits for a writer, forever), `O_NOCTTY` keeps a terminal
/// device from becoming the controlling terminal. Then `fstat(2)` on the descriptor (so the
/// answer is about the file actually opened, not whatever the path names a moment later)
/// refuses what is not a regular file, and `fcntl(2)` `F_SETFL` clears `O_NONBLOCK` again (it
/// means nothing for a regular file, but the descriptor should say what it is). When `open`
/// itself fails because of what the path names (`EISDIR` for a directory opened for writing,
/// `ENXIO` for a socket), `stat(2)` on the path names the kind instead of the errno.
pub fn open_regular(path: &Path, write: bool) -> Result<File, OpenFailure> {
    let file = OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .map_err(|error| {
            if error.kind() == io::ErrorKind::NotFound {
                if let Some(target) = dangling_target(path) {
                    return OpenFailure::Dangling(target);
                }
            }
            match std::fs::metadata(path)
                .ok()
                .and_then(|m| FileKind::of(m.file_type()))
            {
                Some(kind) => OpenFailure::NotRegular(kind),
                None => OpenFailure::Os(error),
            }
        })?;
    let meta = file.metadata().map_err(OpenFailure::Os)?;
    if let Some(kind) = FileKind::of(meta.file_type()) {
        return Err(OpenFailure::NotRegular(kind));
    }
    // SAFETY: fcntl F_GETFL takes no argument beyond the open descriptor; no memory is passed.
    let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(OpenFailure::Os(io::Error::last_os_error()));
    }
    // SAFETY: F_SETFL with an integer flag word on the open descriptor; no memory is passed.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK) };
    if rc < 0 {
        return Err(OpenFailure::Os(io::Error::last_os_error()));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_regular_file_opens_and_a_dangling_link_is_named() {
        let dir = std::env::temp_dir().join(format!("lab-cli-file-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let regular = dir.join("f");
        std::fs::write(&regular, b"x").unwrap();
        assert!(open_regular(&regular, true).is_ok());
        let fifo = dir.join("p");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        for (path, kind) in [(&dir, FileKind::Directory), (&fifo, FileKind::Fifo)] {
            for write in [false, true] {
                match open_regular(path, write) {
                    Err(OpenFailure::NotRegular(k)) => assert_eq!(k, kind),
                    other => panic!("{}: {other:?}", path.display()),
                }
            }
        }
        let link = dir.join("l");
        std::os::unix::fs::symlink("missing", &link).unwrap();
        match open_regular(&link, false) {
            Err(OpenFailure::Dangling(t)) => assert_eq!(t, dir.join("missing")),
            other => panic!("{other:?}"),
        }
        match open_regular(&dir.join("absent"), false) {
            Err(OpenFailure::Os(e)) => assert_eq!(e.kind(), io::ErrorKind::NotFound),
            other => panic!("{other:?}"),
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
