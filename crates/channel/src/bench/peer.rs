//! The benchmark's second process (`channel bench-peer`, hidden): started by [`super::run()`]
//! with fork+exec of the same binary, pinned to its CPU, it echoes `ECHO` messages, takes
//! `ONEWAY` messages without reply, and stops on `QUIT` or at the end of the stream.
//!
//! A separate process, not a thread: the point is what crosses a process boundary (separate
//! address spaces, the kernel's pipe and socket paths, futexes keyed on a shared file page).
//! Exec rather than a bare fork keeps the peer a clean single-threaded program.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{bail, Context as _};

use super::transport::{
    check_interrupt, command, read_message, set_command, spin_until, Mailbox, CMD_ECHO, CMD_ONEWAY,
    CMD_QUIT, CMD_READY, MAILBOX_EMPTY, MAILBOX_QUIT, MAILBOX_READY,
};
use super::Transport;
use crate::{Options, Receiver, Sender, Wait};

/// The peer's command line, as the runner passes it.
#[derive(Debug, Clone)]
pub struct PeerArgs {
    pub transport: Transport,
    /// Message size in bytes (pipe and socket read exactly this many per message).
    pub size: u64,
    /// The CPU to pin to.
    pub cpu: usize,
    /// Ring: the ring this peer receives from; cacheline: the mailbox file.
    pub path_in: Option<PathBuf>,
    /// Ring: the ring this peer sends on.
    pub path_out: Option<PathBuf>,
    /// Ring-wait: spin budget before sleeping, in nanoseconds.
    pub spin_ns: u64,
}

/// Runs the peer until the runner says quit.
pub fn main(args: &PeerArgs) -> anyhow::Result<()> {
    crate::sys::kill_me_when_parent_dies().context("prctl(PR_SET_PDEATHSIG) failed")?;
    crate::set_affinity(&[args.cpu])
        .with_context(|| format!("cannot pin the bench peer to CPU {}", args.cpu))?;
    let need = |p: &Option<PathBuf>, what: &str| {
        p.clone()
            .with_context(|| format!("bench-peer {} needs {what}", args.transport.name()))
    };
    match args.transport {
        Transport::RingSpin | Transport::RingWait => ring(
            &need(&args.path_in, "--path-in")?,
            &need(&args.path_out, "--path-out")?,
            args,
        ),
        Transport::Cacheline => cacheline(&need(&args.path_in, "--path-in")?),
        Transport::Pipe => {
            let input = File::from(std::io::stdin().as_fd().try_clone_to_owned()?);
            let output = File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
            stream(input, output, args.size)
        }
        Transport::UnixSocket => {
            let socket = UnixStream::from(std::io::stdin().as_fd().try_clone_to_owned()?);
            stream(&socket, &socket, args.size)
        }
    }
}

fn ring(
    path_in: &std::path::Path,
    path_out: &std::path::Path,
    args: &PeerArgs,
) -> anyhow::Result<()> {
    let opts = Options {
        wait: if args.transport == Transport::RingSpin {
            Wait::Spin
        } else {
            Wait::Futex
        },
        spin: Some(Duration::from_nanos(args.spin_ns)),
        interrupt: Some(crate::interrupt_flag()),
        create: false,
        ..Options::default()
    };
    let mut rx = Receiver::open(path_in, opts)?;
    let mut tx = Sender::open(path_out, opts)?;
    let mut ready = [0u8; 8];
    set_command(&mut ready, CMD_READY);
    tx.send(&ready)?;
    loop {
        let Some(msg) = rx.recv()? else {
            break; // The runner closed its end.
        };
        match command(&msg) {
            CMD_ECHO => tx.send(&msg)?,
            CMD_ONEWAY => {}
            CMD_QUIT => {
                drop(msg);
                let (r, t) = (rx.stats(), tx.stats());
                let mut stats = [0u8; 24];
                stats[..8].copy_from_slice(&(r.sleeps + t.sleeps).to_le_bytes());
                stats[8..16].copy_from_slice(&(r.wakes + t.wakes).to_le_bytes());
                stats[16..].copy_from_slice(&(r.timeouts + t.timeouts).to_le_bytes());
                tx.send(&stats)?;
                break;
            }
            c => bail!("bench-peer: unexpected command {c}"),
        }
    }
    tx.close()?;
    rx.close()?;
    Ok(())
}

fn cacheline(path: &std::path::Path) -> anyhow::Result<()> {
    let mailbox = Mailbox::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let word = mailbox.word();
    word.store(MAILBOX_READY, Ordering::Release);
    loop {
        let mut value = MAILBOX_EMPTY;
        spin_until(
            || {
                value = word.load(Ordering::Acquire);
                value != MAILBOX_EMPTY && value != MAILBOX_READY
            },
            check_interrupt,
        )?;
        word.store(MAILBOX_EMPTY, Ordering::Release);
        if value == MAILBOX_QUIT {
            return Ok(());
        }
    }
}

fn stream(mut input: impl std::io::Read, mut output: impl Write, size: u64) -> anyhow::Result<()> {
    let mut ready = [0u8; 8];
    set_command(&mut ready, CMD_READY);
    output.write_all(&ready)?;
    let mut buf = vec![0u8; size as usize];
    while read_message(&mut input, &mut buf)? {
        match command(&buf) {
            CMD_ECHO => output.write_all(&buf)?,
            CMD_ONEWAY => {}
            CMD_QUIT => break,
            c => bail!("bench-peer: unexpected command {c}"),
        }
    }
    Ok(())
}
