//! Rebuilds when migrations change (sqlx::migrate! embeds them but does not
//! tell Cargo), stamps the git revision when the build provides one, and
//! generates the gRPC services from proto/ (protox compiles the files in
//! Rust: no protoc needed); the descriptor set is kept for reflection.
//! Release builds for x86-64 Linux also lay out the code that runs first
//! and pack their relocations (see `release_link_args`).
fn main() -> Result<(), Box<dyn std::error::Error>> {
    release_link_args();
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-env-changed=DEMO_APP_REVISION");

    const PACKAGES: [&str; 9] = ["delay", "echo", "env", "header", "info", "panic", "status", "token", "version"];
    let files = PACKAGES.map(|p| format!("proto/{p}.proto"));
    let descriptors = protox::compile(&files, ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("podinfo_descriptor.bin"), prost::Message::encode_to_vec(&descriptors))?;
    tonic_prost_build::configure().build_transport(false).compile_fds(descriptors)?;
    Ok(())
}

/// Two linker options that cut the resident memory of a release build, only
/// where the linker is lld (rustc's default for this target since 1.90):
/// GNU ld and gold refuse the first, and elsewhere its names would not match.
///
/// - The functions that start-up and the served requests run (written by
///   `cargo xtask bench --hot-code`) are linked first and side by side. A
///   page of code is resident once any byte of it runs, and the kernel maps
///   64 KiB around each fault: spread over the whole 12 MiB of text, the
///   4.4 MiB that runs kept 8-10 MiB resident (docs/benchmarks.md, "Code
///   layout"). Release builds only: the profile is hashed into every symbol.
///   A name the build lacks is skipped, so a stale list costs memory, never
///   a failed link; the benchmark says how many still match.
/// - Relative relocations packed (RELR): the loader reads every one of them
///   at start, and as `Elf64_Rela` entries they were 620 KiB, resident for
///   the life of the process. glibc reads RELR since 2.36 (the image's
///   Debian 12); on an older one the build keeps the classic table, as a
///   binary built with RELR would not start there.
fn release_link_args() {
    println!("cargo:rerun-if-changed=hot-functions.txt");
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    let lld_target = std::env::var("TARGET").is_ok_and(|t| t == "x86_64-unknown-linux-gnu");
    if !(release && lld_target) {
        return;
    }
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if ["fuse-ld=bfd", "fuse-ld=gold", "linker-features=-lld"].iter().any(|f| flags.contains(f)) {
        println!(
            "cargo:warning=GNU ld or gold chosen in RUSTFLAGS: release code layout (hot-functions.txt) not applied"
        );
        return;
    }
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let list = std::path::Path::new(&manifest_dir).join("hot-functions.txt");
    let mut args =
        vec!["--symbol-ordering-file".to_string(), list.display().to_string(), "--no-warn-symbol-ordering".into()];
    match glibc_version() {
        Some(version) if version >= (2, 36) => args.extend(["-z".into(), "pack-relative-relocs".into()]),
        found => println!("cargo:warning=glibc {found:?} reads no packed relocations (2.36 does): not packed"),
    }
    // `-Xlinker`, one argument each: `-Wl,` would split a path at its commas.
    for arg in args {
        println!("cargo:rustc-link-arg-bin=demo-app=-Xlinker");
        println!("cargo:rustc-link-arg-bin=demo-app={arg}");
    }
}

/// The C library the binary will run on: this machine's (`cargo run`, or
/// the image's builder stage, the same Debian release as its runtime).
fn glibc_version() -> Option<(u32, u32)> {
    let out = std::process::Command::new("getconf").arg("GNU_LIBC_VERSION").output().ok()?;
    // "glibc 2.36"
    let text = String::from_utf8(out.stdout).ok()?;
    let (major, minor) = text.trim().strip_prefix("glibc ")?.split_once('.')?;
    Some((major.parse().ok()?, minor.split('.').next()?.parse().ok()?))
}
