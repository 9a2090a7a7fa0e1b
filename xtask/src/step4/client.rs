//! A C client that names `baz` directly, built with `cc` against the library foo loaded: the
//! compiler treats `baz` as the executable's own variable, so the linker gives the executable a
//! copy of it (an `R_X86_64_COPY` relocation) and the library's code uses that copy.

use std::path::Path;
use std::process::Command;

use lab_analysis::step4::evidence::{Client, ClientRun};

/// The client. It declares what it uses itself (the course's ABI), so it builds against any
/// library that exports `baz`, `getbaz` and `setbaz`; it prints the addresses, two checks that
/// show one `baz` is in use, then its own /proc/self/maps.
pub const CLIENT_C: &str = r#"/* A C client that names baz directly (step 4 of mmap-lab). */
#include <stdio.h>

extern int baz;
int getbaz();
int setbaz(int newbaz);

int main(void) {
    printf("baz: %p\n", (void *)&baz);
    printf("getbaz: %p\n", (void *)&getbaz);
    setbaz(42);
    printf("setbaz(42): baz=%d getbaz=%d\n", baz, getbaz());
    baz = 7;
    printf("baz=7: getbaz=%d\n", getbaz());
    printf("maps:\n");
    FILE *f = fopen("/proc/self/maps", "r");
    if (f) {
        int c;
        while ((c = getc(f)) != EOF)
            putchar(c);
        fclose(f);
    }
    return 0;
}
"#;

/// Builds the client in `dir` against `library` and runs it; a missing or failing compiler is
/// recorded, not an error: the rest of the step stands without it.
pub fn build_and_run(dir: &Path, library: &str) -> Client {
    match try_build_and_run(dir, library) {
        Ok(run) => Client::Ran(run),
        Err(why) => Client::Skipped { why },
    }
}

fn try_build_and_run(dir: &Path, library: &str) -> Result<ClientRun, String> {
    let lib = Path::new(library);
    let (Some(lib_dir), Some(lib_name)) = (lib.parent(), lib.file_name()) else {
        return Err(format!("{library} is not a path to a file"));
    };
    let src = dir.join("client.c");
    let exe = dir.join("client");
    std::fs::write(&src, CLIENT_C).map_err(|e| format!("cannot write client.c: {e}"))?;
    let args: Vec<String> = vec![
        src.display().to_string(),
        "-L".into(),
        lib_dir.display().to_string(),
        // `-l:NAME` links the file by its name, lib prefix or not (the course's foobar.so).
        format!("-l:{}", lib_name.to_string_lossy()),
        format!("-Wl,-rpath,{}", lib_dir.display()),
        "-o".into(),
        exe.display().to_string(),
    ];
    let command = format!("cc {}", args.join(" "));
    let built = Command::new("cc").args(&args).output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            "cc is not installed (apt-get install gcc)".to_string()
        } else {
            format!("cannot run cc: {e}")
        }
    })?;
    if !built.status.success() {
        return Err(format!(
            "{command} failed: {}",
            String::from_utf8_lossy(&built.stderr).trim()
        ));
    }
    let ran = Command::new(&exe)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .map_err(|e| format!("cannot run the C client: {e}"))?;
    if !ran.status.success() {
        return Err(format!(
            "the C client failed ({}): {}",
            ran.status,
            String::from_utf8_lossy(&ran.stderr).trim()
        ));
    }
    let relocation = lab_trace::elf::ElfInfo::read(&exe)
        .map_err(|e| e.to_string())?
        .relocation_against("baz")
        .map(str::to_string);
    Ok(ClientRun {
        command,
        library: library.to_string(),
        output: String::from_utf8_lossy(&ran.stdout).into_owned(),
        relocation,
    })
}
