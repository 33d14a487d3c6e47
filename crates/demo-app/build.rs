//! Rebuilds when migrations change (sqlx::migrate! embeds them but does not
//! tell Cargo), and stamps the git revision when the build provides one.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-env-changed=DEMO_APP_REVISION");
}
