//! Link settings of the `utkikk` binary; nothing is generated.

fn main() {
    // Relative relocations packed (DT_RELR, glibc >= 2.36, Debian 12):
    // the position-independent binary has about 130,000 of them, and the
    // loader reads every 24-byte entry at start, so 3 MB of the resident
    // memory was the relocation table (BENCHMARKS.md, issue 16's RSS).
    // Packed, they take a few kilobytes. Binaries only: tests and
    // libraries link as before.
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
