//! What the dynamic loader reads from an ELF file (`elf(5)`): DT_NEEDED, RUNPATH/RPATH, SONAME,
//! the dynamic symbols (where `setbaz` and `baz` lie relative to the load address) and the
//! dynamic relocations (a C client's `R_X86_64_COPY` of `baz` against Rust's `GLOB_DAT`), and
//! what the loader maps: the `SHF_ALLOC` sections with their addresses and file ranges
//! ([`Sections`]), which name what each mapping of the file holds.

use std::path::Path;

use object::read::elf::SectionHeader as _;
use object::read::elf::{Dyn as _, ElfFile64, FileHeader as _};
use object::{elf, Object as _, ObjectSymbol as _, ObjectSymbolTable as _};
use serde::{Deserialize, Serialize};

/// Why an ELF file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a 64-bit ELF file: {reason}")]
    Parse { path: String, reason: String },
}

/// What the ELF header at the start of a file says about preloading it (`LD_PRELOAD`): the
/// dynamic loader uses only a shared object of its own class, byte order and machine, and
/// merely warns about anything else (then runs the program without it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreloadKind {
    /// Not an ELF file (or shorter than an ELF header).
    NotElf,
    /// ELF, but not a 64-bit little-endian shared object (`ET_DYN`).
    NotSharedObject,
    /// A shared object built for another machine (its `e_machine`).
    OtherMachine(u16),
    /// A shared object this build's loader can preload.
    Preloadable,
}

/// [`PreloadKind`] of the file whose first bytes are `head` (64 bytes hold the whole header).
pub fn preload_kind(head: &[u8]) -> PreloadKind {
    if head.len() < 4 || head[..4] != elf::ELFMAG {
        return PreloadKind::NotElf;
    }
    let Ok(header) = elf::FileHeader64::<object::Endianness>::parse(head) else {
        return PreloadKind::NotSharedObject;
    };
    let Ok(endian) = header.endian() else {
        return PreloadKind::NotSharedObject;
    };
    if header.e_ident().data != elf::ELFDATA2LSB || header.e_type(endian) != elf::ET_DYN {
        return PreloadKind::NotSharedObject;
    }
    let machine = header.e_machine(endian);
    if machine != native_machine() {
        return PreloadKind::OtherMachine(machine);
    }
    PreloadKind::Preloadable
}

/// This build's ELF `e_machine` (`EM_NONE` on an architecture not listed).
fn native_machine() -> u16 {
    if cfg!(target_arch = "x86_64") {
        elf::EM_X86_64
    } else if cfg!(target_arch = "aarch64") {
        elf::EM_AARCH64
    } else if cfg!(target_arch = "riscv64") {
        elf::EM_RISCV
    } else {
        elf::EM_NONE
    }
}

/// A symbol of `.dynsym`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DynSymbol {
    pub name: String,
    /// Its address relative to the load base (for a shared object; absolute for a non-PIE).
    pub value: u64,
    pub size: u64,
    /// Defined here (not an undefined reference to another object).
    pub defined: bool,
    /// A function (`STT_FUNC`) rather than data.
    pub function: bool,
}

/// A dynamic relocation that names a symbol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DynReloc {
    pub offset: u64,
    /// `R_X86_64_COPY`, `R_X86_64_GLOB_DAT`, …
    pub kind: String,
    pub symbol: String,
}

/// A section the loader maps (`SHF_ALLOC`, not empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadedSection {
    pub name: String,
    /// Its virtual address (relative to the load base, for a shared object).
    pub addr: u64,
    /// Its offset in the file (`sh_offset`).
    pub offset: u64,
    pub size: u64,
    /// `SHT_NOBITS` (.bss): memory only, no bytes in the file.
    pub nobits: bool,
}

/// What of an ELF file is loaded, from its own headers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sections {
    /// The bytes at the start of the file that the ELF header and the program headers take.
    pub header_bytes: u64,
    /// The `SHF_ALLOC` sections of non-zero size, in section-header order (`.tbss` left out:
    /// it takes no room in a segment, only a template for each thread's copy).
    pub loaded: Vec<LoadedSection>,
}

/// The dynamic-linking facts of one ELF file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElfInfo {
    pub needed: Vec<String>,
    pub runpath: Option<String>,
    pub rpath: Option<String>,
    pub soname: Option<String>,
    pub symbols: Vec<DynSymbol>,
    pub relocations: Vec<DynReloc>,
    /// Its loaded sections.
    #[serde(default)]
    pub sections: Sections,
}

impl ElfInfo {
    /// Reads the file at `path`.
    pub fn read(path: &Path) -> Result<ElfInfo, ElfError> {
        let data = std::fs::read(path).map_err(|source| ElfError::Io {
            path: path.display().to_string(),
            source,
        })?;
        ElfInfo::parse(&data).map_err(|e| ElfError::Parse {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// Parses the bytes of an ELF file.
    pub fn parse(data: &[u8]) -> object::Result<ElfInfo> {
        let file = ElfFile64::<object::Endianness>::parse(data)?;
        let endian = file.endian();
        let mut info = ElfInfo::default();
        let sections = file.elf_header().sections(endian, data)?;
        info.sections = loaded_sections(file.elf_header(), &sections, endian)?;
        if let Some((dyns, link)) = sections.dynamic(endian, data)? {
            let strings = sections.strings(endian, data, link)?;
            for d in dyns {
                let text = || {
                    d.string(endian, strings)
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                };
                match d.tag32(endian) {
                    Some(elf::DT_NEEDED) => info.needed.push(text()?),
                    Some(elf::DT_RUNPATH) => info.runpath = Some(text()?),
                    Some(elf::DT_RPATH) => info.rpath = Some(text()?),
                    Some(elf::DT_SONAME) => info.soname = Some(text()?),
                    _ => {}
                }
            }
        }
        for sym in file.dynamic_symbols() {
            let Ok(name) = sym.name() else { continue };
            if name.is_empty() {
                continue;
            }
            info.symbols.push(DynSymbol {
                name: name.to_string(),
                value: sym.address(),
                size: sym.size(),
                defined: sym.is_definition(),
                function: sym.kind() == object::SymbolKind::Text,
            });
        }
        if let (Some(relocs), Some(dynsym)) =
            (file.dynamic_relocations(), file.dynamic_symbol_table())
        {
            for (offset, r) in relocs {
                // Dynamic relocations index .dynsym, not .symtab.
                let object::RelocationTarget::Symbol(idx) = r.target() else {
                    continue;
                };
                let Ok(sym) = dynsym.symbol_by_index(idx) else {
                    continue;
                };
                let object::RelocationFlags::Elf { r_type } = r.flags() else {
                    continue;
                };
                info.relocations.push(DynReloc {
                    offset,
                    kind: reloc_name(file.architecture(), r_type),
                    symbol: sym.name().unwrap_or("").to_string(),
                });
            }
        }
        Ok(info)
    }

    /// The defined dynamic symbol called `name`.
    pub fn symbol(&self, name: &str) -> Option<&DynSymbol> {
        self.symbols.iter().find(|s| s.defined && s.name == name)
    }

    /// The kind of the dynamic relocation against `name` (`R_X86_64_COPY`), if there is one.
    pub fn relocation_against(&self, name: &str) -> Option<&str> {
        self.relocations
            .iter()
            .find(|r| r.symbol == name)
            .map(|r| r.kind.as_str())
    }
}

fn loaded_sections(
    header: &elf::FileHeader64<object::Endianness>,
    sections: &object::read::elf::SectionTable<'_, elf::FileHeader64<object::Endianness>>,
    endian: object::Endianness,
) -> object::Result<Sections> {
    let ehsize = u64::from(header.e_ehsize(endian));
    let phoff = header.e_phoff(endian);
    let phdrs = u64::from(header.e_phnum(endian)) * u64::from(header.e_phentsize(endian));
    let header_bytes = if phoff == 0 {
        ehsize
    } else {
        ehsize.max(phoff + phdrs)
    };
    let mut loaded = Vec::new();
    for section in sections.iter() {
        let flags = section.sh_flags(endian);
        let nobits = section.sh_type(endian) == elf::SHT_NOBITS;
        let tls = flags & u64::from(elf::SHF_TLS) != 0;
        if flags & u64::from(elf::SHF_ALLOC) == 0 || section.sh_size(endian) == 0 || (nobits && tls)
        {
            continue;
        }
        let name = sections.section_name(endian, section)?;
        loaded.push(LoadedSection {
            name: String::from_utf8_lossy(name).into_owned(),
            addr: section.sh_addr(endian),
            offset: section.sh_offset(endian),
            size: section.sh_size(endian),
            nobits,
        });
    }
    Ok(Sections {
        header_bytes,
        loaded,
    })
}

fn reloc_name(arch: object::Architecture, r_type: u32) -> String {
    if arch == object::Architecture::X86_64 {
        let name = match r_type {
            elf::R_X86_64_64 => "R_X86_64_64",
            elf::R_X86_64_COPY => "R_X86_64_COPY",
            elf::R_X86_64_GLOB_DAT => "R_X86_64_GLOB_DAT",
            elf::R_X86_64_JUMP_SLOT => "R_X86_64_JUMP_SLOT",
            elf::R_X86_64_RELATIVE => "R_X86_64_RELATIVE",
            _ => "",
        };
        if !name.is_empty() {
            return name.to_string();
        }
    }
    format!("type {r_type} ({arch:?})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_test_binary() {
        // This test binary is a PIE linked against libc: DT_NEEDED names it.
        let info = ElfInfo::read(&std::env::current_exe().unwrap()).unwrap();
        assert!(info.needed.iter().any(|n| n.starts_with("libc.so")));
        assert!(info.symbols.iter().any(|s| !s.defined));
    }

    #[test]
    fn reads_a_c_library_and_its_client() {
        // A library exporting data and code, a client that refers to the data directly: the
        // client gets a COPY relocation. Skipped (with a notice) without a C compiler.
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("lib.c"),
            "int baz = 3; int getbaz(void) { return baz; }\n",
        )
        .unwrap();
        std::fs::write(
            d.join("main.c"),
            "extern int baz; int getbaz(void); int main(void) { return baz + getbaz(); }\n",
        )
        .unwrap();
        let cc = |args: &[&str]| {
            std::process::Command::new("cc")
                .args(args)
                .current_dir(d)
                .status()
        };
        match cc(&[
            "-shared",
            "-fPIC",
            "-Wl,-soname,libx.so",
            "lib.c",
            "-o",
            "libx.so",
        ]) {
            Err(_) if std::env::var_os("CI").is_none() => {
                use std::io::Write as _;
                // Straight to stderr: libtest hides what eprintln! prints in a passing test.
                let _ = writeln!(
                    std::io::stderr(),
                    "skipped: no C compiler (apt-get install gcc)"
                );
                return;
            }
            r => assert!(r.unwrap().success()),
        }
        assert!(
            cc(&["main.c", "-L.", "-lx", "-Wl,-rpath,$ORIGIN", "-o", "main"])
                .unwrap()
                .success()
        );
        let lib = ElfInfo::read(&d.join("libx.so")).unwrap();
        assert_eq!(lib.soname.as_deref(), Some("libx.so"));
        let baz = lib.symbol("baz").unwrap();
        assert!(!baz.function && baz.size == 4);
        assert!(lib.symbol("getbaz").unwrap().function);
        let main = ElfInfo::read(&d.join("main")).unwrap();
        assert!(main.needed.contains(&"libx.so".to_string()));
        assert_eq!(main.runpath.as_deref(), Some("$ORIGIN"));
        assert_eq!(main.relocation_against("baz"), Some("R_X86_64_COPY"));
    }

    /// `readelf -SW`'s SHF_ALLOC sections of non-zero size (not .tbss).
    fn readelf_loaded(path: &Path) -> Option<Vec<LoadedSection>> {
        let out = std::process::Command::new("readelf")
            .arg("-SW")
            .arg(path)
            .output()
            .ok()?;
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        let hex = |s: &str| u64::from_str_radix(s, 16).unwrap();
        let mut found = Vec::new();
        for line in text.lines() {
            // `  [ 1] .note.gnu.build-id NOTE  0000000000000238 000238 000024 00   A  0   0  4`
            let Some((_, rest)) = line.split_once(']') else {
                continue;
            };
            let f: Vec<&str> = rest.split_whitespace().collect();
            if f.len() < 7 || f[0] == "Name" || !f[6].contains('A') {
                continue;
            }
            let (nobits, size) = (f[1] == "NOBITS", hex(f[4]));
            if size == 0 || (nobits && f[6].contains('T')) {
                continue;
            }
            found.push(LoadedSection {
                name: f[0].to_string(),
                addr: hex(f[2]),
                offset: hex(f[3]),
                size,
                nobits,
            });
        }
        Some(found)
    }

    #[test]
    fn loaded_sections_are_readelfs_alloc_sections() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("foobar.c"),
            "int baz;\nint getbaz() { return baz; }\n",
        )
        .unwrap();
        let built = std::process::Command::new("cc")
            .args(["-g", "-shared", "-fPIC", "foobar.c", "-o", "foobar.so"])
            .current_dir(d)
            .status();
        let lib = d.join("foobar.so");
        let expected = match built {
            Ok(status) if status.success() => readelf_loaded(&lib),
            _ => None,
        };
        let Some(expected) = expected else {
            assert!(
                std::env::var_os("CI").is_none(),
                "cc and readelf are needed in CI"
            );
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "skipped: needs cc and readelf (apt-get install gcc binutils)"
            );
            return;
        };
        let info = ElfInfo::read(&lib).unwrap();
        let got = &info.sections.loaded;
        assert_eq!(got, &expected);
        assert!(got.iter().any(|s| s.name == ".eh_frame" && !s.nobits));
        assert!(got.iter().any(|s| s.name == ".bss" && s.nobits));
        // An ELF64 header (64 bytes), then the program headers right after it.
        assert!(info.sections.header_bytes > 64, "{:?}", info.sections);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(ElfInfo::parse(b"not an elf file").is_err());
        let e = ElfInfo::read(Path::new("/nonexistent/x")).unwrap_err();
        assert!(e.to_string().starts_with("cannot read /nonexistent/x"));
    }

    /// A 64-byte ELF header: class, byte order, type and machine as given.
    fn header(class: u8, data: u8, e_type: u16, machine: u16) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(&elf::ELFMAG);
        h[4] = class;
        h[5] = data;
        h[6] = elf::EV_CURRENT;
        let put16 = |h: &mut Vec<u8>, at: usize, v: u16| {
            let b = if data == elf::ELFDATA2MSB {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            h[at..at + 2].copy_from_slice(&b);
        };
        put16(&mut h, 16, e_type);
        put16(&mut h, 18, machine);
        h[20] = 1; // e_version
        h[52] = 64; // e_ehsize
        h
    }

    #[test]
    fn only_a_native_64_bit_little_endian_shared_object_is_preloadable() {
        let (lsb, msb, c64, c32) = (
            elf::ELFDATA2LSB,
            elf::ELFDATA2MSB,
            elf::ELFCLASS64,
            elf::ELFCLASS32,
        );
        let native = native_machine();
        let other = if native == elf::EM_AARCH64 {
            elf::EM_X86_64
        } else {
            elf::EM_AARCH64
        };
        assert_eq!(
            preload_kind(&header(c64, lsb, elf::ET_DYN, native)),
            PreloadKind::Preloadable
        );
        assert_eq!(preload_kind(b"not an elf file"), PreloadKind::NotElf);
        assert_eq!(preload_kind(b"\x7fEL"), PreloadKind::NotElf);
        for wrong in [
            header(c32, lsb, elf::ET_DYN, native),
            header(c64, msb, elf::ET_DYN, native),
            header(c64, lsb, elf::ET_EXEC, native),
            header(c64, lsb, elf::ET_DYN, native)[..40].to_vec(),
        ] {
            assert_eq!(preload_kind(&wrong), PreloadKind::NotSharedObject);
        }
        assert_eq!(
            preload_kind(&header(c64, lsb, elf::ET_DYN, other)),
            PreloadKind::OtherMachine(other)
        );
    }
}
