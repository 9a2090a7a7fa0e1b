//! What a student reads says "not measured" where the run did not measure, on recorded evidence
//! altered the way a machine alters it: frames hidden without root, a scan OOM-killed in the
//! cgroup, a "floor" slower than a pipe, a call count that shrank with more messages, a busy
//! machine.

use std::path::Path;

use crate::{answers_first, step2, step4, step5, step6, Block, Step};

fn load<S: Step>(set: &str) -> (S::Findings, S::Evidence) {
    let dir = Path::new(crate::testkit::XTASK_DIR)
        .join("tests/evidence")
        .join(set);
    let e: S::Evidence = crate::testkit::load(&dir, S::NUMBER)
        .unwrap_or_else(|e| panic!("{set} step {}: {e:#}", S::NUMBER));
    (S::analyze(&e).unwrap(), e)
}

/// Everything explain says, as one string (raw blocks included).
fn text(blocks: &[Block]) -> String {
    serde_json::to_string(blocks).unwrap()
}

#[test]
fn hidden_frames_are_not_measured_never_none_shared() {
    let (mut f, e) = load::<step4::Step4>("foobar-ours-root");
    f.frames.readable = false;
    let t = text(&step4::Step4::explain(&f, &e));
    assert!(
        t.contains("same frame in both: not measured, frames hidden (needs root)"),
        "{t}"
    );
    assert!(!t.contains("same frame in both: none"), "{t}");
    assert!(!t.contains("own frames"), "{t}");
    assert!(t.contains("frame of baz's page: hidden (needs root)"));
    // As root the frames are compared.
    let (f, e) = load::<step4::Step4>("foobar-ours-root");
    assert!(text(&step4::Step4::explain(&f, &e)).contains("same frame in both: none"));
}

#[test]
fn a_scan_oom_killed_in_the_cgroup_is_named_and_the_conclusion_rests_elsewhere() {
    let (mut f, e) = load::<step2::Step2>("course-table");
    let step2::cgroup::Findings::Ran(r) = &mut f.cgroup else {
        panic!("the cgroup part did not run in this recording")
    };
    let scan = r
        .children
        .iter_mut()
        .find(|c| c.role == step2::cgroup::Role::Scan)
        .unwrap();
    scan.completed = false;
    scan.signal = Some("SIGKILL".into());
    scan.oom_kills = Some(1);
    scan.oom_killed = true;
    let t = text(&step2::Step2::explain(&f, &e));
    assert!(!t.contains("FAILED (SIGKILL)"), "{t}");
    assert!(t.contains("scan was killed by the OOM killer"), "{t}");
    assert!(t.contains("the conclusion rests on every key"), "{t}");
}

#[test]
fn drop_caches_is_not_blamed_on_root() {
    let (f, e) = load::<step2::Step2>("course-table");
    assert!(!text(&step2::Step2::explain(&f, &e)).contains("drop_caches needs root"));
}

#[test]
fn a_floor_slower_than_a_pipe_is_not_measured_never_met() {
    let (mut f, e) = load::<step6::Step6>("channel-two-cpus");
    let before = text(&step6::Step6::explain(&f, &e));
    assert!(before.contains("the floor ("), "{before}");
    let floor = f.floor.as_mut().unwrap();
    let spin = floor.spin.as_mut().unwrap();
    // The run: a "floor" of 5.21 ms, slower than everything it should bound.
    spin.denominator.value = 5_211_984.0;
    spin.ratio = spin.numerator.value / spin.denominator.value;
    floor.spin_overhead_ns = Some(spin.numerator.value - spin.denominator.value);
    let t = text(&step6::Step6::explain(&f, &e));
    assert!(
        t.contains(
            "How close to the cache-line floor?\",\"answer\":\"Not measured: the measured floor"
        ),
        "{t}"
    );
    assert!(!t.contains("ns more)"), "{t}");
    assert!(
        t.contains("[not measured] ring-spin 64 B round trip within 1.5x"),
        "{t}"
    );
    assert!(!t.contains("[met] ring-spin 64 B round trip within"), "{t}");
    assert!(!t.contains("Goals (issue"), "{t}");
}

#[test]
fn a_call_count_that_shrank_is_noise_not_a_negative_cost() {
    let (f, e) = load::<step6::Step6>("one-cpu-taskset");
    let t = text(&step6::Step6::explain(&f, &e));
    assert!(!t.contains(" -0.100 "), "{t}");
    assert!(!t.contains("clock_nanosleep -0.05"), "{t}");
    assert!(
        t.contains("not measured: the long run made fewer calls than the short one"),
        "{t}"
    );
    assert!(t.contains("Not measured for cacheline on one CPU"), "{t}");
}

#[test]
fn a_busy_machine_is_said_before_the_answers_and_symbols_read_as_rust() {
    let (f, e) = load::<step5::Step5>("two-cpus-one-busy");
    let blocks = answers_first(step5::Step5::explain(&f, &e));
    let Block::Text { text: first } = &blocks[0] else {
        panic!("{:?}", blocks[0])
    };
    assert!(
        first.starts_with("Busy machine: in 4 of 6 races"),
        "{first}"
    );
    let shown: Vec<&Block> = blocks.iter().filter(|b| !b.is_raw()).collect();
    let t = serde_json::to_string(&shown).unwrap();
    assert!(!t.contains("_ZN4race"), "{t}");
    assert!(t.contains("race::race_atomic"), "{t}");
    // Its runtimes rose beyond the CPUs with one race there: no "speed of 2 CPUs" claim, and
    // no footnote calling a starred runtime longer than the machine's.
    assert!(!t.contains("the speed of 2"), "{t}");
    assert!(!t.contains("longer than the machine's"), "{t}");
    // Two measures, two names.
    assert!(t.contains("ns per increment of total"), "{t}");
    assert!(t.contains("ns per increment made"), "{t}");
    assert!(!t.contains("each cost"), "{t}");
    // The atomic runtimes are printed once.
    assert_eq!(t.matches("atomic (target 40000000)").count(), 1, "{t}");
    // Not busy: nothing said.
    let (f, e) = load::<step5::Step5>("one-cpu-taskset");
    let blocks = step5::Step5::explain(&f, &e);
    assert!(!text(&blocks).contains("Busy machine"));
}

#[test]
fn answers_come_first_and_empty_headings_go() {
    let blocks = vec![
        Block::text("setting"),
        Block::heading("evidence"),
        Block::evidence("table", "row"),
        Block::heading("Answers"),
        Block::answer("Q?", "A."),
    ];
    let out = answers_first(blocks);
    let kinds: Vec<String> = out
        .iter()
        .map(|b| match b {
            Block::Heading { title } => format!("h:{title}"),
            Block::Text { text } => format!("t:{text}"),
            Block::Evidence(e) => format!("e:{}", e.title),
            Block::Answer(a) => format!("a:{}", a.question),
        })
        .collect();
    assert_eq!(
        kinds,
        ["t:setting", "h:Answers", "a:Q?", "h:evidence", "e:table"]
    );
}
