//! Generates `include/lessor.h` (at the workspace root) from `src/` with cbindgen.
//!
//! The header is committed, and CI fails when it is stale. So this script writes it
//! deterministically and only when its content changed (a read-only or clean tree
//! stays untouched), and a header that cannot be written is a warning, not a
//! failed build: the library itself does not need it. A header that cannot be
//! *generated* (cbindgen cannot parse `src/`) does fail the build.

use std::env;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process;

fn main() {
    let crate_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR is set by cargo"));
    let config_path = crate_dir.join("cbindgen.toml");
    let workspace_dir = crate_dir.parent().expect("ffi/ lives inside the workspace");
    let header_path = workspace_dir.join("include").join("lessor.h");

    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=cbindgen.toml");
    println!("cargo::rerun-if-changed=src");
    // Rerun when the header is edited or deleted by hand, so a build restores it.
    println!("cargo::rerun-if-changed={}", header_path.display());

    // A versioned SONAME, so programs linked against one ABI never load another:
    // `liblessor.so.MAJOR`, or `liblessor.so.0.MINOR` while the major version is 0
    // (in 0.x every minor release may break the ABI).
    let major = env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets the version");
    let minor = env::var("CARGO_PKG_VERSION_MINOR").expect("cargo sets the version");
    let soname = if major == "0" { format!("liblessor.so.0.{minor}") } else { format!("liblessor.so.{major}") };
    println!("cargo::rustc-cdylib-link-arg=-Wl,-soname,{soname}");

    let mut config =
        cbindgen::Config::from_file(&config_path).unwrap_or_else(|e| panic!("reading {}: {e}", config_path.display()));
    // The version defines come from Cargo.toml, so they can never drift from it.
    let version = |part: &str| env::var(format!("CARGO_PKG_VERSION_{part}")).expect("cargo sets the version");
    config.after_includes = Some(format!(
        "\n/** Version of this header (and of the liblessor it ships with); see also lessor_version(). */\n\
         #define LESSOR_VERSION_MAJOR {}\n#define LESSOR_VERSION_MINOR {}\n#define LESSOR_VERSION_PATCH {}\n",
        version("MAJOR"),
        version("MINOR"),
        version("PATCH")
    ));
    // `with_src` parses the crate's sources directly (following `mod` items)
    // instead of running `cargo metadata` from inside the build.
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src").join("lib.rs"))
        .generate()
        .unwrap_or_else(|e| panic!("cbindgen could not generate lessor.h: {e}"));
    let mut header = Vec::new();
    bindings.write(&mut header);

    match write_if_changed(&header_path, &header) {
        Ok(true) => println!("cargo::warning=regenerated {}", header_path.display()),
        Ok(false) => {}
        Err(e) => println!(
            "cargo::warning=could not write {} ({e}); the committed header may be stale",
            header_path.display()
        ),
    }
}

/// Writes `content` to `path` unless the file already holds exactly that.
/// Returns whether it wrote. The write goes through a temporary file in the same
/// directory and a rename, so concurrent builds never see a half-written header.
fn write_if_changed(path: &Path, content: &[u8]) -> io::Result<bool> {
    match fs::read(path) {
        Ok(existing) if existing == content => return Ok(false),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let dir = path.parent().expect("header path has a parent");
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".lessor.h.{}.tmp", process::id()));
    let result = fs::write(&tmp, content).and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| true)
}
