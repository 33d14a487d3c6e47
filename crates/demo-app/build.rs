//! Rebuilds when migrations change (sqlx::migrate! embeds them but does not
//! tell Cargo), stamps the git revision when the build provides one, and
//! generates the gRPC services from proto/ (protox compiles the files in
//! Rust: no protoc needed); the descriptor set is kept for reflection.
fn main() -> Result<(), Box<dyn std::error::Error>> {
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
