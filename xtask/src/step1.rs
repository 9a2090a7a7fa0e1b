//! Step 1: where glibc malloc switches from the heap to mmap.
//!
//! Runs `malloc-probe --mark sweep` under `strace -e trace=brk,mmap,munmap,write`. The probe
//! writes `write(-1, "malloc N")` before each malloc (a call that fails with EBADF and does
//! nothing else), so every brk/mmap/munmap between two markers belongs to one malloc. Then
//! `malloc-probe free-bit` and `malloc-probe threshold` (each child process measured apart)
//! answer the other questions; every answer is computed from this run.
//!
//! `data` shape (for the report's pictures):
//! `{"rows":[{"request":N,"chunk_size":N,"region":"heap"|"mmap","mmap_len":N|null,
//! "address":"0x…"}],"threshold_request":N,"threshold_chunk_size":N,"prev_inuse_bit":N,
//! "is_mmapped_bit":N}`; rows are the sweep's allocations in the order made, `mmap_len` is the
//! length of the mmap call paired with the row (null when none), the bits are numbered from 0.

use std::path::Path;

use anyhow::{bail, Context as _};
use serde_json::{json, Value};

use crate::model::{Answer, Ctx, Evidence, StepReport};
use crate::out;
use crate::say;
use crate::strace::{self, Syscall};

/// The strace filter: the allocator's syscalls plus `write` for the markers.
const FILTER: &str = "brk,mmap,munmap,write";

/// One malloc and the system calls it caused.
#[derive(Debug, Clone)]
pub struct Group {
    pub request: u64,
    pub calls: Vec<Syscall>,
    /// The program break before this malloc (from the last brk seen), if known.
    pub brk_before: Option<u64>,
}

impl Group {
    /// The anonymous mmap that returned `chunk` (the block's address minus 16), if any.
    pub fn mmap_for(&self, block_addr: u64) -> Option<&Syscall> {
        self.calls.iter().find(|c| {
            c.name == "mmap"
                && c.ok()
                && c.arg_flags(3).contains(&"MAP_ANONYMOUS")
                && c.ret_u64()
                    .is_some_and(|r| block_addr.checked_sub(r).is_some_and(|d| d < 4096))
        })
    }

    /// How far brk moved the program break during this malloc.
    pub fn brk_growth(&self) -> u64 {
        let last = self
            .calls
            .iter()
            .rev()
            .filter(|c| c.name == "brk")
            .filter_map(Syscall::ret_u64)
            .next();
        match (self.brk_before, last) {
            (Some(b), Some(l)) => l.saturating_sub(b),
            _ => 0,
        }
    }
}

/// A marker line: `write(-1, "malloc 131072", 13) = -1 EBADF`; returns `(word, number)`.
pub fn marker(c: &Syscall) -> Option<(&str, u64)> {
    if c.name != "write" || c.arg_i64(0) != Some(-1) {
        return None;
    }
    let (word, n) = c.arg_str(1)?.split_once(' ')?;
    Some((word, n.parse().ok()?))
}

/// Splits a trace at the `malloc N` markers: each group holds the brk/mmap/munmap calls made
/// after its marker and before the next marker (`malloc`, `free` or `done`).
pub fn pair(calls: &[Syscall]) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let mut open = false;
    let mut brk: Option<u64> = None;
    for c in calls {
        if let Some((word, n)) = marker(c) {
            open = word == "malloc";
            if open {
                groups.push(Group {
                    request: n,
                    calls: Vec::new(),
                    brk_before: brk,
                });
            }
            continue;
        }
        if c.name == "brk" {
            if let Some(r) = c.ret_u64() {
                brk = Some(r);
            }
        }
        if matches!(c.name.as_str(), "brk" | "mmap" | "munmap") && open {
            if let Some(g) = groups.last_mut() {
                g.calls.push(c.clone());
            }
        }
    }
    groups
}

/// The page-rounded mmap length glibc asks for, `align_up(align_up(x + 8, 16) + 8, page)`:
/// used to check the measured lengths, never to produce them.
pub fn glibc_mmap_len(x: u64, page: u64) -> u64 {
    let nb = ((x + 8 + 15) & !15).max(32);
    (nb + 8).div_ceil(page) * page
}

fn run_json(prog: &Path, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Value> {
    let mut cmd = std::process::Command::new(prog);
    cmd.args(args).stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {}", prog.display()))?;
    if !out.status.success() {
        bail!(
            "malloc-probe {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout)
        .with_context(|| format!("malloc-probe {} printed invalid JSON", args.join(" ")))
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn hex(v: &Value) -> u64 {
    v.as_str()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .unwrap_or(0)
}

pub fn run(ctx: &Ctx) -> anyhow::Result<StepReport> {
    ctx.build_release(&["malloc-probe"])?;
    strace::check()?;
    let probe = ctx.bin("malloc-probe");
    let scratch = ctx.scratch("step1")?;
    let mut answers = Vec::new();
    let mut evidence = Vec::new();

    // --- The sweep, traced -------------------------------------------------------------
    out::subheading("malloc-probe --mark sweep, under strace -e trace=brk,mmap,munmap,write");
    let max = if ctx.quick { "1MiB" } else { "4MiB" };
    let args = ["--json", "--mark", "sweep", "--max", max];
    let traced = strace::run(&probe, args, FILTER, scratch.path())?;
    if !traced.status.success() {
        bail!(
            "malloc-probe sweep failed under strace ({}): {}",
            traced.status,
            traced.stderr.trim()
        );
    }
    let sweep: Value =
        serde_json::from_str(&traced.stdout).context("malloc-probe sweep printed invalid JSON")?;
    let page = u(&sweep["allocator"]["page_size"]).max(1);
    say!(
        "glibc {} (malloc from {}), page size {page}",
        sweep["allocator"]["glibc_version"].as_str().unwrap_or("?"),
        sweep["allocator"]["malloc_object"].as_str().unwrap_or("?")
    );
    let rows = sweep["allocations"]
        .as_array()
        .context("sweep JSON has no allocations")?;
    let groups = pair(&traced.calls);
    if groups.len() != rows.len() {
        bail!(
            "the trace has {} malloc markers but the probe made {} allocations; cannot pair them",
            groups.len(),
            rows.len()
        );
    }

    let mut table = format!(
        "{:>9}  {:<6} {:<18} {:>9}  {:>9}  {:>11}  {}\n",
        "request x", "region", "syscall", "length L", "L - x", "tag", "glibc formula"
    );
    let mut data_rows = Vec::new();
    let mut raw_lines = String::new();
    let (mut mmaps, mut formula_ok, mut tag_ok, mut ptr16) = (0, 0, 0, 0);
    let mut overheads = Vec::new();
    let mut unpaired_mmap_rows = 0;
    let mut brk_rows = 0;
    for (row, g) in rows.iter().zip(&groups) {
        let request = u(&row["request"]);
        if request != g.request {
            bail!(
                "marker {} does not match allocation {request}; the trace is out of order",
                g.request
            );
        }
        let addr = hex(&row["address"]);
        let region = row["region"].as_str().unwrap_or("?");
        let mapped = g.mmap_for(addr);
        let (syscall, len) = match mapped {
            Some(m) => ("mmap".to_string(), m.arg_u64(1)),
            None if g.brk_growth() > 0 => {
                brk_rows += 1;
                (format!("brk +{}", g.brk_growth()), None)
            }
            None => ("none".to_string(), None),
        };
        if region == "mmap" && mapped.is_none() {
            unpaired_mmap_rows += 1;
        }
        let check = match len {
            Some(l) => {
                mmaps += 1;
                let want = glibc_mmap_len(request, page);
                formula_ok += usize::from(l == want);
                tag_ok += usize::from(row["mapped_length"].as_u64() == Some(l));
                overheads.push(l - request.min(l));
                let offset = addr - mapped.and_then(Syscall::ret_u64).unwrap_or(addr);
                ptr16 += usize::from(offset == 16);
                format!(
                    "{} (pointer = mmap + {offset})",
                    if l == want { "ok" } else { "MISMATCH" },
                )
            }
            None => String::new(),
        };
        table += &format!(
            "{:>9}  {:<6} {:<18} {:>9}  {:>9}  {:>11}  {}\n",
            request,
            region,
            syscall,
            len.map(|l| l.to_string()).unwrap_or_else(|| "-".into()),
            len.map(|l| (l as i64 - request as i64).to_string())
                .unwrap_or_else(|| "-".into()),
            row["tag"].as_str().unwrap_or("?"),
            check
        );
        for c in &g.calls {
            raw_lines += &format!("[malloc {request}] {}\n", c.raw);
        }
        data_rows.push(json!({
            "request": request,
            "chunk_size": u(&row["chunk_size"]),
            "region": region,
            "mmap_len": len,
            "address": row["address"],
        }));
    }
    say!("request -> syscall -> length -> overhead, paired through the markers:");
    say!("{table}");
    say!("The raw strace lines of every malloc that made a system call:");
    say!("{raw_lines}");
    let marker_example = traced
        .calls
        .iter()
        .find(|c| marker(c).is_some())
        .map(|c| c.raw.clone())
        .unwrap_or_default();
    say!("(a marker line looks like: {marker_example})");
    evidence.push(Evidence {
        title: "Sweep: request -> syscall -> length (paired through write(-1) markers)".into(),
        text: table.clone(),
    });
    evidence.push(Evidence {
        title: "Raw strace lines, per malloc".into(),
        text: raw_lines.clone(),
    });

    // Q2: the mmap bit, from the sweep.
    let mmap_bit = sweep["findings"]["is_mmapped_bit"].as_u64();
    let n_heap = rows.iter().filter(|r| r["region"] == "heap").count();
    let n_mmap = rows.iter().filter(|r| r["region"] == "mmap").count();
    let q2 = match mmap_bit {
        Some(b) => format!(
            "Bit {b} (value {:#x}, IS_MMAPPED): it is set in all {n_mmap} allocations that \
             /proc/self/maps places in an anonymous mmap region and clear in all {n_heap} that lie \
             in [heap]; no other low bit follows the region.",
            1u64 << b
        ),
        None => format!(
            "No single bit followed the region in this run ({n_heap} heap rows, {n_mmap} mmap \
             rows; bits that did: {}): this contradicts glibc's IS_MMAPPED = bit 1.",
            sweep["findings"]["bits_following_region"]
        ),
    };

    // Q4: mmap lengths.
    if mmaps > 0 && formula_ok < mmaps {
        say!(
            "Note: {} mmap lengths contradict glibc's formula; see MISMATCH rows.",
            mmaps - formula_ok
        );
    }

    // --- free-bit --------------------------------------------------------------------------
    out::subheading("malloc-probe free-bit");
    let fb = run_json(&probe, &["--json", "free-bit"], &[])?;
    let mut fb_table = format!(
        "{:>6} {:>7}  {:>8} -> {:<8}  {:>8} -> {:<8}  {:>10}\n",
        "x", "chunk A", "tag A", "after", "tag B", "after", "B.prev_size after"
    );
    for a in fb["attempts"].as_array().into_iter().flatten() {
        fb_table += &format!(
            "{:>6} {:>7}  {:>8} -> {:<8}  {:>8} -> {:<8}  {:>10}\n",
            u(&a["request_a"]),
            u(&a["chunk_size_a"]),
            a["tag_a_before"].as_str().unwrap_or("?"),
            a["tag_a_after"].as_str().unwrap_or("?"),
            a["tag_b_before"].as_str().unwrap_or("?"),
            a["tag_b_after"].as_str().unwrap_or("?"),
            a["b_prev_size_after"].as_str().unwrap_or("?"),
        );
    }
    say!("A = malloc(x), B = malloc(24) carved right after it; free(A); tags before -> after:");
    say!("{fb_table}");
    evidence.push(Evidence {
        title: "free-bit: tags of A and of its neighbour B before and after free(A)".into(),
        text: fb_table,
    });
    let f = &fb["findings"];
    let prev_inuse_bit = f["prev_inuse_bit"].as_u64();
    let attempts = fb["attempts"].as_array().cloned().unwrap_or_default();
    let q1 =
        match prev_inuse_bit {
            Some(b) => format!(
            "Bit {b} (value {:#x}, PREV_INUSE) of the NEXT chunk's tag: 1 = the previous chunk \
             is in use, 0 = free. Freeing chunks of up to {} bytes changed no bit at all (they \
             went to the tcache, which keeps them marked in use); freeing a {}-byte request \
             cleared bit {b} in its neighbour's tag and wrote A's size into the neighbour's \
             prev_size. A's own tag stayed the same in {own_same} of {n_attempts} frees: a \
             chunk's tag describes its size and its predecessor, not itself.",
            1u64 << b,
            u(&f["largest_chunk_freed_without_change"]),
            u(&f["first_request_that_changed_the_bit"]),
            own_same = attempts.iter().filter(|a| a["tag_a_before"] == a["tag_a_after"]).count(),
            n_attempts = attempts.len(),
        ),
            None => "No free changed exactly one bit of the neighbour's tag in this run: this \
                 contradicts glibc's PREV_INUSE behaviour (see the table)."
                .to_string(),
        };

    // --- threshold -------------------------------------------------------------------------
    out::subheading("malloc-probe threshold (each probe in a fresh process, top chunk drained)");
    let th = run_json(&probe, &["--json", "threshold"], &[])?;
    let tf = &th["findings"];
    let (tr, tc) = (u(&tf["threshold_request"]), u(&tf["threshold_chunk_size"]));
    let t = &th["threshold"];
    let mut th_text = String::new();
    for c in t["drained_probes"].as_array().into_iter().flatten() {
        let r = &c["row"];
        let req = u(&r["request"]);
        if req + 64 >= tr && req <= tr + 64 {
            th_text += &format!(
                "malloc({req:>7}) with top = {} bytes -> {:<4} tag {:<9} chunk {:>7}  brk grew {}\n",
                u(&c["drain"]["top_after"]),
                r["region"].as_str().unwrap_or("?"),
                r["tag"].as_str().unwrap_or("?"),
                u(&r["chunk_size"]),
                u(&r["brk_growth"])
            );
        }
    }
    let w = &t["with_room"];
    th_text += &format!(
        "after malloc({}) grew the heap by {} bytes the top had {} bytes: malloc({}) -> {} \
         (chunk {})\n",
        u(&w["grow"]["request"]),
        u(&w["grow"]["brk_growth"]),
        u(&w["grow"]["top_size"]),
        u(&w["row"]["request"]),
        w["row"]["region"].as_str().unwrap_or("?"),
        u(&w["row"]["chunk_size"])
    );
    let d = &t["dynamic"];
    th_text += &format!(
        "after free() of an mmapped {}-byte block (mapping {}), malloc({tr}) -> {}; the switch \
         moved to request {} (chunk {})\n",
        u(&d["freed_request"]),
        u(&d["freed_mapped_length"]),
        d["same_request_after_free"]["row"]["region"]
            .as_str()
            .unwrap_or("?"),
        u(&d["new_threshold_request"]),
        u(&d["new_threshold_chunk_size"])
    );
    // A tuned threshold must be found too: half the measured one, set through the environment.
    let tuned = (tc / 2).max(4096);
    let tuned_doc = run_json(
        &probe,
        &["--json", "threshold"],
        &[("MALLOC_MMAP_THRESHOLD_", &tuned.to_string())],
    )?;
    let tuned_found = u(&tuned_doc["findings"]["threshold_chunk_size"]);
    th_text += &format!(
        "with MALLOC_MMAP_THRESHOLD_={tuned}: threshold_request {} and chunk size {tuned_found} \
         ({})\n",
        u(&tuned_doc["findings"]["threshold_request"]),
        if tuned_found == tuned {
            "the probe follows the setting"
        } else {
            "UNEXPECTED: differs from the setting"
        }
    );
    say!("{th_text}");
    evidence.push(Evidence {
        title: "threshold: probes around the switch, the top chunk, the dynamic threshold".into(),
        text: th_text,
    });
    let q3 =
        format!(
        "malloc switches to mmap at a request of {tr} bytes, i.e. a chunk size of {tc} ({tc:#x}): \
         with the top chunk drained to {} bytes, malloc({}) still came from the heap as a {}-byte \
         chunk and malloc({tr}) was mmapped (glibc compares the chunk size, request + 8 rounded up \
         to 16, with the threshold). Three effects blur this: (1) the top chunk serves any request \
         that fits — right after a heap growth the top had {} bytes and malloc({tr}) came from \
         {}; (2) each brk growth adds padding, which is why the top was that large (the \
         heap grew by {} bytes for a {}-byte chunk); (3) freeing an mmapped chunk raises the \
         threshold to that chunk's size — after freeing a {}-byte mapping the switch moved to \
         request {} ({}). In the single-process sweep the switch appeared between requests {} \
         and {}.",
        u(&tf["top_after_drain"]),
        u(&tf["largest_heap_request"]),
        u(&t["largest_heap_chunk_size"]),
        u(&w["grow"]["top_size"]),
        if w["row"]["region"] == "heap" {
            "the heap".to_string()
        } else {
            format!(
                "{} anyway (the top was smaller than the chunk plus 32 bytes)",
                w["row"]["region"].as_str().unwrap_or("?")
            )
        },
        u(&w["grow"]["brk_growth"]),
        u(&w["grow"]["chunk_size"]),
        u(&d["freed_mapped_length"]),
        u(&d["new_threshold_request"]),
        if d["moved"].as_bool() == Some(true) { "the threshold moved" } else { "it did NOT move" },
        u(&sweep["findings"]["largest_heap_request"]),
        u(&sweep["findings"]["smallest_mmap_request"]),
    );

    // The page edge: two requests 8 bytes apart on either side of `x + 24 = k pages`, where
    // the extra word of an mmapped chunk decides whether one more page is mapped.
    out::subheading("malloc-probe --mark alloc at a page edge, under strace");
    let k = (tc + 2 * page).div_ceil(page);
    let edge = [k * page - 24, k * page - 16];
    let edge_args = [
        "--json".to_string(),
        "--mark".into(),
        "alloc".into(),
        edge[0].to_string(),
        edge[1].to_string(),
    ];
    let edge_traced = strace::run(&probe, &edge_args, FILTER, scratch.path())?;
    if !edge_traced.status.success() {
        bail!(
            "malloc-probe alloc failed under strace: {}",
            edge_traced.stderr.trim()
        );
    }
    let edge_doc: Value = serde_json::from_str(&edge_traced.stdout)
        .context("malloc-probe alloc printed invalid JSON")?;
    let edge_rows = edge_doc["allocations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let edge_groups = pair(&edge_traced.calls);
    let mut edge_text = String::new();
    let mut edge_lens = Vec::new();
    for (r, g) in edge_rows.iter().zip(&edge_groups) {
        match g
            .mmap_for(hex(&r["address"]))
            .and_then(|m| Some((m.arg_u64(1)?, m.raw.clone())))
        {
            Some((l, raw)) => {
                edge_text += &format!("malloc({}) -> {raw}\n", g.request);
                edge_lens.push((g.request, l));
            }
            None => edge_text += &format!("malloc({}) -> no mmap ({})\n", g.request, r["region"]),
        }
    }
    say!("{edge_text}");
    evidence.push(Evidence {
        title: "Page edge: the extra 8 bytes of an mmapped chunk".into(),
        text: edge_text,
    });
    let edge_sentence = match edge_lens.as_slice() {
        [(x1, l1), (x2, l2)] if l2 > l1 => format!(
            "At a page edge the extra word shows: malloc({x1}) mapped {l1} bytes but \
             malloc({x2}), 8 bytes more, mapped {l2} ({} more page(s)) although x + 16 = {} still \
             fits in {l1}.",
            (l2 - l1) / page,
            x2 + 16
        ),
        [(x1, l1), (x2, l2)] => format!(
            "At a page edge malloc({x1}) mapped {l1} and malloc({x2}) mapped {l2}: no extra page \
             (unexpected for glibc's formula)."
        ),
        _ => "The page-edge requests were not mmapped here, so that edge could not be shown."
            .to_string(),
    };

    let q4 = if mmaps == 0 {
        "No malloc in this sweep made an mmap call, so the question cannot be answered here."
            .to_string()
    } else {
        let (lo, hi) = (
            overheads.iter().min().copied().unwrap_or(0),
            overheads.iter().max().copied().unwrap_or(0),
        );
        let ex = rows.iter().zip(&groups).find_map(|(r, g)| {
            let m = g.mmap_for(hex(&r["address"]))?;
            Some((u(&r["request"]), m.arg_u64(1)?, m.raw.clone()))
        });
        let (ex_x, ex_l, ex_raw) = ex.unwrap_or_default();
        let exact = overheads.iter().filter(|&&o| o == 0).count();
        format!(
            "Something different: {}. For {mmaps} mmapped requests the length L \
             exceeded x by {lo} to {hi} bytes. L = align_up(align_up(x + 8, 16) + 8, page {page}): \
             x plus the 8-byte size field rounded to 16 (the chunk), plus 8 more because an \
             mmapped chunk has no next chunk to lend it a prev_size word, rounded up to whole \
             pages. This held for {formula_ok} of {mmaps} calls, and the chunk's tag recorded the \
             same L in {tag_ok} of {mmaps}; the pointer was 16 bytes (prev_size + size) past \
             the start of the mapping in {ptr16} of {mmaps}. Example: malloc({ex_x}) -> `{ex_raw}` (L = {ex_l}). \
             {edge_sentence} {}",
            if exact == 0 {
                "never x itself".to_string()
            } else {
                format!("L was x itself in {exact} of {mmaps} calls")
            },
            if unpaired_mmap_rows > 0 {
                format!("{unpaired_mmap_rows} mmap-region rows had no paired mmap call (unexpected).")
            } else {
                format!(
                    "Below the switch, {brk_rows} mallocs grew the heap with brk and the rest made \
                     no system call at all."
                )
            }
        )
    };
    answers.push(Answer {
        question: "Which bit (and value) corresponds to free/in-use?".into(),
        answer: q1,
    });
    answers.push(Answer {
        question: "Which bit corresponds to heap/mmap?".into(),
        answer: q2,
    });
    answers.push(Answer {
        question: "At what exact size does malloc switch from the heap to mmap?".into(),
        answer: q3,
    });
    answers.push(Answer {
        question: "For a request of x bytes, does malloc ask mmap for x bytes or something \
                   different?"
            .into(),
        answer: q4,
    });
    out::subheading("Answers (computed from this run)");
    for a in &answers {
        say!("Q: {}\nA: {}\n", a.question, a.answer);
    }

    Ok(crate::model::legacy(
        1,
        "Find the cut-off for a large memory allocation",
        answers,
        evidence,
        json!({
            "rows": data_rows,
            "threshold_request": tr,
            "threshold_chunk_size": tc,
            "prev_inuse_bit": prev_inuse_bit,
            "is_mmapped_bit": mmap_bit,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "\
500 brk(NULL)                          = 0x55d000000000
500 write(-1, \"malloc 24\", 9)          = -1 EBADF (Bad file descriptor)
500 write(-1, \"malloc 200000\", 13)     = -1 EBADF (Bad file descriptor)
500 mmap(NULL, 204800, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000
500 write(-1, \"malloc 100000\", 13)     = -1 EBADF (Bad file descriptor)
500 brk(0x55d000044000)                = 0x55d000044000
500 write(-1, \"done 3\", 6)             = -1 EBADF (Bad file descriptor)
500 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000100000
500 write(1, \"{\", 1) = 1
";

    #[test]
    fn pairs_each_malloc_with_its_syscalls() {
        let groups = pair(&strace::parse(TRACE));
        assert_eq!(groups.len(), 3);
        assert_eq!(groups[0].request, 24);
        assert!(groups[0].calls.is_empty(), "the top chunk served it");
        let m = groups[1].mmap_for(0x7f0000000010).expect("paired mmap");
        assert_eq!(m.arg_u64(1), Some(204800));
        assert!(groups[1].mmap_for(0x7f0000200010).is_none());
        assert_eq!(groups[2].brk_growth(), 0x44000);
        // The mmap after `done` (printing the JSON) belongs to nobody.
        assert!(groups
            .iter()
            .all(|g| g.calls.iter().all(|c| c.ret_u64() != Some(0x7f0000100000))));
    }

    #[test]
    fn glibc_formula_checks() {
        assert_eq!(glibc_mmap_len(131072, 4096), 135168);
        assert_eq!(glibc_mmap_len(135152, 4096), 139264);
        assert_eq!(glibc_mmap_len(200000, 4096), 200704);
    }

    #[test]
    fn live_pairing_of_the_real_probe() {
        // A live strace of the real malloc-probe (debug build made by cargo for this test run
        // is not available to xtask's tests, so build through cargo like the step does).
        let root = crate::build::workspace_root();
        let target = crate::build::target_dir(&root).expect("cargo metadata");
        let status = crate::build::cargo()
            .args(["build", "--quiet", "-p", "malloc-probe"])
            .current_dir(&root)
            .status()
            .expect("cargo build runs");
        assert!(status.success());
        let probe = target.join("debug").join("malloc-probe");
        let dir = tempfile::Builder::new()
            .prefix("xtask-step1-test-")
            .tempdir()
            .unwrap();
        let traced = strace::run(
            &probe,
            ["--json", "--mark", "alloc", "24", "300000", "1MiB"],
            FILTER,
            dir.path(),
        );
        let traced = traced.expect("strace runs (CI installs it)");
        assert!(traced.status.success(), "{}", traced.stderr);
        let doc: Value = serde_json::from_str(&traced.stdout).unwrap();
        let rows = doc["allocations"].as_array().unwrap();
        let groups = pair(&traced.calls);
        assert_eq!(groups.len(), 3);
        for (row, g) in rows.iter().zip(&groups) {
            assert_eq!(u(&row["request"]), g.request);
            let m = g.mmap_for(hex(&row["address"]));
            if row["region"] == "mmap" {
                let m = m.expect("an mmapped block is paired with its mmap call");
                assert_eq!(m.arg_u64(1), row["mapped_length"].as_u64());
                assert_eq!(m.ret_u64().unwrap() + 16, hex(&row["address"]));
            } else {
                assert!(m.is_none());
            }
        }
        // 1 MiB can never come from the top chunk: it is mmapped, length per glibc's formula.
        assert_eq!(rows[2]["region"], "mmap");
        let l = groups[2]
            .mmap_for(hex(&rows[2]["address"]))
            .unwrap()
            .arg_u64(1)
            .unwrap();
        assert_eq!(l, glibc_mmap_len(1 << 20, 4096));
    }
}
