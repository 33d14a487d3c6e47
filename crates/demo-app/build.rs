//! Rebuilds when migrations change (sqlx::migrate! embeds them but does not
//! tell Cargo), stamps the git revision when the build provides one, and
//! generates the gRPC services from proto/ (protox compiles the files in
//! Rust: no protoc needed); the descriptor set is kept for reflection.
//! Release builds for x86-64 Linux also lay out the code that runs first
//! (see `hot_functions`).
fn main() -> Result<(), Box<dyn std::error::Error>> {
    hot_functions();
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

/// The functions that start-up and the served requests run (written by
/// `cargo xtask bench --hot-code`) are linked first and side by side. A
/// page of code is resident once any byte of it runs, and the kernel maps
/// 64 KiB around each fault: spread over the whole 12 MiB of text, the
/// 4.4 MiB that runs kept 8-10 MiB resident (docs/benchmarks.md, "Code
/// layout"). Only where the linker is lld (rustc's default for this target
/// since 1.90), and only in release builds: elsewhere the names would not
/// match (the profile is hashed into every symbol). A name the build lacks
/// is skipped, so a stale list costs memory, never a failed link; the
/// benchmark says how many still match.
fn hot_functions() {
    println!("cargo:rerun-if-changed=hot-functions.txt");
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    let lld_target = std::env::var("TARGET").is_ok_and(|t| t == "x86_64-unknown-linux-gnu");
    // GNU ld and gold refuse the option: a build that picks them goes without.
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let other_linker = ["fuse-ld=bfd", "fuse-ld=gold", "linker-features=-lld"].iter().any(|f| flags.contains(f));
    if release && lld_target && other_linker {
        println!(
            "cargo:warning=GNU ld or gold chosen in RUSTFLAGS: release code layout (hot-functions.txt) not applied"
        );
    } else if release && lld_target {
        let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
        let list = std::path::Path::new(&manifest_dir).join("hot-functions.txt");
        // `-Xlinker`, one argument each: `-Wl,` would split a path at its commas.
        for arg in ["--symbol-ordering-file", &list.display().to_string(), "--no-warn-symbol-ordering"] {
            println!("cargo:rustc-link-arg-bin=demo-app=-Xlinker");
            println!("cargo:rustc-link-arg-bin=demo-app={arg}");
        }
    }
}
