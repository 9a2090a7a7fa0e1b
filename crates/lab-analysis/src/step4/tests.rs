//! Findings asserted on evidence recorded by `run-step 4 --save-evidence` (xtask/tests/evidence),
//! and on variants of it built here.
//!
//! Here: the Findings and the narrative; the pictures, the measurement and live runs are
//! tested in xtask's `step4::tests`.

use std::path::Path;

use lab_trace::pagemap::PageEntry;
use lab_trace::smaps::Sharing;

use super::Step4;
use crate::step4::analyze::{analyze, ClientFinding};
use crate::step4::evidence::{Eviction, Evidence, Source};
use crate::{Block, Step as _};

pub(crate) fn fixture(name: &str) -> Evidence {
    let dir = Path::new(crate::testkit::XTASK_DIR)
        .join("tests/evidence")
        .join(name);
    crate::testkit::load(&dir, 4).unwrap_or_else(|e| panic!("{name}: {e:#}"))
}

fn explain_answers(ev: &Evidence) -> Vec<(String, String)> {
    let f = analyze(ev).unwrap();
    Step4::explain(&f, ev)
        .into_iter()
        .filter_map(|b| match b {
            Block::Answer(a) => Some((a.question, a.answer)),
            _ => None,
        })
        .collect()
}

fn answer(answers: &[(String, String)], question: &str) -> String {
    answers
        .iter()
        .find(|(q, _)| q.contains(question))
        .map(|(_, a)| a.clone())
        .unwrap_or_else(|| panic!("no question about {question:?}"))
}

#[test]
fn our_foo_and_bar_as_root_share_code_frames_and_keep_baz_private() {
    let ev = fixture("foobar-ours-root");
    let f = analyze(&ev).unwrap();
    assert_eq!(f.source, Source::Ours);
    assert_eq!(f.code_shared, Some(true));
    assert_eq!(f.baz_private, Some(true));
    assert!(f.same_library && f.same_calls);
    let (foo, bar) = (&f.programs[0], &f.programs[1]);
    assert_eq!((foo.name.as_str(), bar.name.as_str()), ("foo", "bar"));
    assert!(
        foo.library.ends_with("/deps/libfoobar.so"),
        "{}",
        foo.library
    );
    assert_eq!(foo.needed_as.as_deref(), Some("libfoobar.so"));
    // The reservation, code, RELRO+data, data: four mmaps, one mprotect (RELRO).
    assert_eq!(foo.mmaps, 4);
    assert_eq!(foo.mprotects.len(), 1);
    assert_eq!(foo.mprotects[0].inside, Some(3));
    assert!(foo.maps[0].reservation && !foo.maps[0].fixed);
    assert!(foo.maps[1..]
        .iter()
        .all(|m| m.fixed && m.private && m.denywrite));
    for name in ["setbaz", "getbaz"] {
        let s = &foo.symbols[name];
        assert_eq!((s.prot.as_str(), s.mmap), ("PROT_READ|PROT_EXEC", Some(2)));
    }
    let baz = &foo.symbols["baz"];
    assert_eq!(
        (baz.prot.as_str(), baz.mmap),
        ("PROT_READ|PROT_WRITE", Some(4))
    );
    assert_eq!(foo.printed_agrees, Some(true));
    assert_eq!(bar.printed_agrees, Some(true));
    // baz from /proc/PID/mem: foo keeps 17 while bar counts.
    assert!(foo.baz_values.len() >= 3 && foo.baz_values.iter().all(|&v| v == 17));
    assert!(bar.baz_values.windows(2).all(|w| w[1] > w[0]));
    assert_eq!(f.values.first_constant, Some(17));
    assert_eq!(f.values.differed, f.values.both_read);
    // Evicted, so the pages were clean: Shared_Clean shows the sharing, Pss about Rss/2.
    assert_eq!(foo.sharing.code.sharing, Sharing::SharedClean);
    assert_eq!(foo.sharing.code.mappers, Some(2));
    assert!(foo.sharing.written.iter().any(|w| w.perms == "rw-p"));
    // The frames: code pages the same, RELRO and data pages private anonymous copies.
    assert!(f.frames.code_pages_compared > 0);
    let data = f
        .frames
        .rows
        .iter()
        .find(|r| r.symbols.contains(&"baz".into()))
        .unwrap();
    assert!(data.same.is_empty() && data.sides.iter().all(|s| s.anonymous > 0));
    assert_eq!(f.frames.baz_exclusive, [Some(true), Some(true)]);
    // Loading: read from disk by foo's start, not again by bar's.
    let l = &f.loading;
    assert!(l.evicted == Some(true) && l.matches_loaded);
    assert_eq!(l.resident_after_eviction, Some(0));
    assert_eq!(l.first_from_disk, Some(true));
    assert_eq!(l.second_from_cache, Some(true));
    assert_eq!(l.starts[1].pages_read, Some(0));
    match &f.client {
        ClientFinding::Ran {
            relocation,
            inside_library,
            getbaz_in_library,
            one_baz,
            ..
        } => {
            assert_eq!(relocation.as_deref(), Some("R_X86_64_COPY"));
            assert!(!inside_library && *getbaz_in_library);
            assert_eq!(*one_baz, Some(true));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(foo.baz_relocation.as_deref(), Some("R_X86_64_GLOB_DAT"));
}

#[test]
fn the_courses_programs_found_through_dt_needed_and_ld_library_path() {
    let ev = fixture("foobar-course-c");
    let f = analyze(&ev).unwrap();
    assert_eq!(f.source, Source::Given);
    let foo = &f.programs[0];
    assert!(foo.library.ends_with("/foobar.so"));
    assert_eq!(foo.needed_as.as_deref(), Some("foobar.so"));
    assert_eq!(foo.runpath, None);
    assert!(foo.ld_library_path.is_some());
    assert!(foo.trace.iter().any(|l| l.contains("read(3, \"\\177ELF")));
    assert_eq!(foo.mmaps, 4);
    assert_eq!(foo.symbols["baz"].prot, "PROT_READ|PROT_WRITE");
    assert_eq!(foo.symbols["setbaz"].prot, "PROT_READ|PROT_EXEC");
    // Not our programs: nothing printed is read, the course's foo names no baz.
    assert_eq!(foo.printed_agrees, None);
    assert_eq!(foo.baz_relocation, None);
    // foo: setbaz(17); bar: setbaz(i), i = 0, 1, 2, … once a second.
    assert!(foo.baz_values.iter().all(|&v| v == 17));
    assert_eq!(f.programs[1].baz_values[..2], [0, 1]);
    assert_eq!(f.code_shared, Some(true));
    assert_eq!(f.baz_private, Some(true));
    assert_eq!(f.loading.first_from_disk, Some(true));
    assert_eq!(f.loading.second_from_cache, Some(true));
}

/// The misreading of issue 9: right after the library was built its page-cache pages are dirty,
/// so the code's sharing shows in Shared_Dirty and in Pss ≈ Rss/2, not in Shared_Clean.
#[test]
fn dirty_library_pages_show_sharing_in_shared_dirty_and_pss() {
    let ev = fixture("foobar-library-pages-dirty");
    let f = analyze(&ev).unwrap();
    for p in &f.programs {
        let c = &p.sharing.code;
        assert_eq!(c.shared_clean_kb, 0);
        assert_eq!(c.shared_dirty_kb, 120);
        assert_eq!(c.sharing, Sharing::SharedDirty, "{}", p.name);
        assert_eq!(c.mappers, Some(2));
    }
    // Not evicted: the loading claim is not shown, and the answer says why.
    assert_eq!(f.loading.evicted, Some(false));
    assert_eq!(f.loading.first_from_disk, None);
    let report = explain_answers(&ev);
    let sharing = answer(&report, "share the library's code");
    assert!(
        sharing.contains("Shared_Dirty 120 kB, not Shared_Clean"),
        "{sharing}"
    );
    assert!(!sharing.contains("no sign of sharing"));
    let loading = answer(&report, "loaded into RAM");
    assert!(
        loading.starts_with("Not shown in this run: eviction was not tried"),
        "{loading}"
    );
}

/// Without CAP_SYS_ADMIN the kernel zeroes the frame numbers (flags stay readable).
#[test]
fn hidden_frame_numbers_are_unknown_not_shared() {
    let mut ev = fixture("foobar-ours-root");
    for p in &mut ev.programs {
        for page in &mut p.pages {
            page.entry = PageEntry(page.entry.0 & !((1 << 55) - 1));
        }
    }
    let f = analyze(&ev).unwrap();
    assert!(!f.frames.readable);
    assert_eq!((f.code_shared, f.baz_private), (None, None));
    assert_eq!(f.frames.baz_exclusive, [Some(true), Some(true)]);
    assert_eq!(f.frames.baz_anonymous, [Some(true), Some(true)]);
    let json = serde_json::to_value(&f).unwrap();
    assert!(json["code_shared"].is_null() && json["baz_private"].is_null());
    let said = answer(&explain_answers(&ev), "share the library's code");
    assert!(said.contains("frame numbers are hidden"), "{said}");
    assert!(said.contains("mapped by this process only and anonymous"));
}

/// A run that contradicts the theory is reported as such.
#[test]
fn one_frame_for_both_bazes_and_equal_values_are_contradictions() {
    let mut ev = fixture("foobar-ours-root");
    let f = analyze(&ev).unwrap();
    let baz_page = |i: usize| {
        let a = u64::from_str_radix(
            f.programs[i].symbols["baz"]
                .address
                .trim_start_matches("0x"),
            16,
        )
        .unwrap();
        a / ev.page_size * ev.page_size
    };
    let (foo_page, bar_page) = (baz_page(0), baz_page(1));
    let foo_entry = ev.programs[0]
        .pages
        .iter()
        .find(|p| p.addr == foo_page)
        .unwrap()
        .entry;
    let bar = ev.programs[1]
        .pages
        .iter_mut()
        .find(|p| p.addr == bar_page)
        .unwrap();
    bar.entry = foo_entry;
    for s in &mut ev.samples {
        s.baz[1] = s.baz[0];
    }
    let f = analyze(&ev).unwrap();
    assert_eq!(f.baz_private, Some(false));
    assert_eq!(f.values.differed, 0);
    let said = answer(&explain_answers(&ev), "share the library's code");
    assert!(said.contains("contradicts copy-on-write"), "{said}");
    assert!(said.contains("does not show two copies"), "{said}");
}

#[test]
fn eviction_that_did_not_take_is_said() {
    let mut ev = fixture("foobar-ours-root");
    ev.page_cache.resident_after = 7;
    let f = analyze(&ev).unwrap();
    assert_eq!(f.loading.evicted, Some(false));
    assert_eq!(f.loading.second_from_cache, None);
    let said = answer(&explain_answers(&ev), "loaded into RAM");
    assert!(said.contains("7 of 1049 pages stayed resident"), "{said}");
    ev.page_cache.eviction = Eviction::Failed {
        error: "EIO".into(),
    };
    let said = answer(&explain_answers(&ev), "loaded into RAM");
    assert!(said.contains("eviction failed (EIO)"), "{said}");
}

/// The `--json` findings have the shape DESIGN.md documents.
#[test]
fn json_findings_have_the_documented_shape() {
    for name in ["foobar-ours-root", "foobar-course-c"] {
        let f = serde_json::to_value(analyze(&fixture(name)).unwrap()).unwrap();
        assert!(f["code_shared"].is_boolean() && f["baz_private"].is_boolean());
        let programs = f["programs"].as_array().unwrap();
        assert_eq!(programs.len(), 2);
        for p in programs {
            assert!(p["name"].is_string() && p["library"].is_string());
            assert!(p["mmaps"].as_u64().unwrap() >= 4);
            for s in ["setbaz", "getbaz", "baz"] {
                let sym = &p["symbols"][s];
                assert!(
                    sym["address"].as_str().unwrap().starts_with("0x"),
                    "{name} {s}"
                );
                assert!(
                    sym["prot"].as_str().unwrap().starts_with("PROT_"),
                    "{name} {s}"
                );
            }
            assert!(p["baz_values"]
                .as_array()
                .unwrap()
                .iter()
                .all(|v| v.is_i64()));
        }
    }
}

/// A section of the recorded course library, at its virtual address (the mappings of
/// `foobar-course-c`: #1 at 0, #2 code at 0x1000, #3 read-only at 0x2000, #4 data at 0x3000,
/// baz at 0x400c).
fn section(name: &str, addr: u64, size: u64, nobits: bool) -> lab_trace::elf::LoadedSection {
    lab_trace::elf::LoadedSection {
        name: name.into(),
        addr,
        offset: if nobits { addr - 0x1000 } else { addr },
        size,
        nobits,
    }
}

#[test]
fn each_mapping_is_named_from_the_librarys_sections_or_said_not_recorded() {
    let mut ev = fixture("foobar-course-c");
    let f = analyze(&ev).unwrap();
    // Recorded before the lab read section headers: honest, not prose.
    assert!(f.programs[0].maps.iter().all(|m| m.contents.is_none()));
    let text = format!("{:?}", Step4::explain(&f, &ev));
    assert!(text.contains("which sections it holds: not recorded with this evidence"));
    assert!(!text.contains(".rodata"), "{text}");

    let sections = lab_trace::elf::Sections {
        header_bytes: 0x238,
        loaded: vec![
            section(".dynsym", 0x2f0, 0x90, false),
            section(".text", 0x1040, 0xd0, false),
            section(".eh_frame_hdr", 0x2000, 0x2c, false),
            section(".eh_frame", 0x2030, 0x9c, false),
            section(".got", 0x3fd8, 0x28, false),
            section(".bss", 0x400c, 4, true),
        ],
    };
    for p in &mut ev.programs {
        p.library.sections = Some(sections.clone());
    }
    let f = analyze(&ev).unwrap();
    for p in &f.programs {
        let got: Vec<(bool, Vec<String>)> = p
            .maps
            .iter()
            .map(|m| {
                let c = m.contents.clone().unwrap();
                (c.headers, c.sections)
            })
            .collect();
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            got,
            [
                (true, names(&[".dynsym"])),
                (false, names(&[".text"])),
                (false, names(&[".eh_frame_hdr", ".eh_frame"])),
                (false, names(&[".got", ".bss"])),
            ]
        );
    }
    let text = format!("{:?}", Step4::explain(&f, &ev));
    assert!(
        text.contains("read-only; holds .eh_frame_hdr, .eh_frame (the library's section headers)"),
        "{text}"
    );
}

/// Review 30 B3: run as a user who neither owns the library nor may write it, mincore(2)
/// reports every page resident (Linux >= 5.2). The counts are then no measurement: nothing is
/// concluded from them, and the answer says so with the faults /proc/PID/stat gave.
#[test]
fn mincore_that_cannot_see_the_file_is_not_measured() {
    let mut ev = fixture("foobar-ours-root");
    let total = ev.page_cache.pages_total;
    ev.page_cache.resident_before = total;
    ev.page_cache.resident_after = total;
    for p in &mut ev.programs {
        p.resident_when_ready = Some(total);
    }
    ev.page_cache.mincore_blind = Some(
        "the lab runs as uid 65534, the file belongs to uid 0 and uid 65534 may not open it \
         for writing"
            .into(),
    );
    let f = analyze(&ev).unwrap();
    let l = &f.loading;
    assert_eq!(l.evicted, None);
    assert_eq!(
        (l.resident_before_eviction, l.resident_after_eviction),
        (None, None)
    );
    assert_eq!((l.first_from_disk, l.second_from_cache), (None, None));
    assert!(l.starts.iter().all(|s| s.pages_read.is_none()));
    let said = answer(&explain_answers(&ev), "loaded into RAM");
    assert!(
        said.starts_with("Not measured in this run: mincore(2) cannot be believed"),
        "{said}"
    );
    assert!(said.contains("uid 65534"), "{said}");
    assert!(
        said.contains(&format!(
            "foo took {} major fault",
            ev.programs[0].faults_ready.majflt
        )),
        "{said}"
    );
    assert!(!said.contains("stayed resident"), "{said}");
    assert!(!said.contains('?'), "{said}");
    let json = serde_json::to_value(&f).unwrap();
    assert!(json["loading"]["evicted"].is_null(), "{json}");
}

/// Review 30 B4, recorded (`course-foo-bar-maps-the-file`: the course's foo, and a bar that is
/// not linked with foobar.so but read()s it, maps the whole file read-only itself and keeps its
/// own baz): bar is named as not loaded by ld.so, nothing is read or framed at library base +
/// baz (outside its 16 KiB mapping of the file), and foo's answers stand.
#[test]
fn a_program_that_mapped_the_file_itself_is_named_and_not_read_outside_it() {
    let ev = fixture("course-foo-bar-maps-the-file");
    let f = analyze(&ev).unwrap();
    let (foo, bar) = (&f.programs[0], &f.programs[1]);
    assert_eq!((foo.mmaps, bar.mmaps), (4, 0));
    assert!(foo.not_loaded.is_none() && foo.baz_unmapped.is_none());
    assert!(
        bar.not_loaded
            .as_deref()
            .is_some_and(|w| w.contains("r--p at file offset 0x0")),
        "{:?}",
        bar.not_loaded
    );
    let why = bar
        .baz_unmapped
        .as_deref()
        .expect("baz is outside bar's mapping");
    assert!(
        why.contains("(+0x400c)") && why.contains("end at +0x4000"),
        "{why}"
    );
    assert!(bar.baz_values.is_empty());
    assert_eq!(foo.baz_values, [17, 17, 17]);
    assert_eq!(f.baz_private, None);
    assert_eq!(f.frames.baz_frames[1], None);
    assert_eq!(f.values.differed, 0);
    let answers = explain_answers(&ev);
    let many = answer(&answers, "more than one per program");
    assert!(
        many.starts_with("Yes for foo: mmaps of the library: foo 4"),
        "{many}"
    );
    assert!(
        many.contains("bar did not load the library the way the loader does"),
        "{many}"
    );
    let shared = answer(&answers, "share the library's code");
    assert!(
        shared.starts_with("Values: not compared: bar maps nothing"),
        "{shared}"
    );
    assert!(shared.contains("No frame of baz is compared"), "{shared}");
    assert!(!shared.contains("two private copies"), "{shared}");
    assert!(!shared.contains("two variables"), "{shared}");
    for (q, a) in &answers {
        assert!(!a.contains('?'), "{q}: {a}");
    }
}

/// Programs that name baz directly (an `R_X86_64_COPY`): ld.so pointed the library's GOT slot
/// at each program's own copy, so baz's frames, and the answer to "is baz private?", are those
/// of the copy's page, not of the library's unused baz; the answer says where baz lives.
#[test]
fn a_copy_of_baz_in_each_program_is_where_baz_is_compared() {
    use crate::step4::evidence::BazHome;
    let mut ev = fixture("foobar-course-c");
    let present_exclusive = |pfn: u64| PageEntry((1 << 63) | (1 << 56) | pfn);
    for (i, p) in ev.programs.iter_mut().enumerate() {
        p.baz_relocation = Some("R_X86_64_COPY".into());
        p.baz_home = Some(BazHome {
            address: 0x5555_5555_8030,
            got_slot: Some(p.library.base + 0x3fc0),
            object: p.path.clone(),
            in_program: true,
            page: Some(present_exclusive(0x1000 + i as u64)),
        });
    }
    let f = analyze(&ev).unwrap();
    assert_eq!(f.frames.baz_frames, [Some(0x1000), Some(0x1001)]);
    assert_eq!(f.frames.baz_anonymous, [Some(true), Some(true)]);
    assert_eq!(f.baz_private, Some(true));
    for p in &f.programs {
        let home = p.baz_home.as_ref().unwrap();
        assert!(home.in_program && home.address == "0x555555558030");
        assert!(p.baz_unmapped.is_none());
    }
    // The library's rows no longer say they hold the baz the programs use.
    assert!(f
        .frames
        .rows
        .iter()
        .all(|r| !r.symbols.contains(&"baz".to_string())));
    let shared = answer(&explain_answers(&ev), "share the library's code");
    assert!(
        shared.starts_with(
            "Where baz lives (the address ld.so wrote into the library's GOT slot for baz, read \
             from /proc/PID/mem): foo's at 0x555555558030, its own copy in /tmp/course/foo \
             (R_X86_64_COPY in foo); bar's at 0x555555558030, its own copy in /tmp/course/bar"
        ),
        "{shared}"
    );
    assert!(shared.contains("baz is not shared even where the library's code is"));

    // The same frame in both would contradict copy-on-write: said, not hidden.
    for p in &mut ev.programs {
        p.baz_home.as_mut().unwrap().page = Some(present_exclusive(0x2000));
    }
    let f = analyze(&ev).unwrap();
    assert_eq!(f.baz_private, Some(false));

    // foo uses the library's baz (no COPY), bar its own: each named where it is.
    let foo = &mut ev.programs[0];
    foo.baz_relocation = None;
    let home = foo.baz_home.as_mut().unwrap();
    home.in_program = false;
    home.object = foo.library.path.clone();
    let shared = answer(&explain_answers(&ev), "share the library's code");
    assert!(
        shared.contains(
            "foo's at 0x555555558030, the library's own in /tmp/course/foobar.so (foo has no \
             COPY of it); bar's at 0x555555558030, its own copy in /tmp/course/bar"
        ),
        "{shared}"
    );
}
