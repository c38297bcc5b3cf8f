//! `scripts/install` lays out what a distribution ships — a versioned shared
//! library with its SONAME, the static library, the header, `lessor.pc`, the CLI —
//! and a C program builds against it through pkg-config alone, shared and static.
//! (The debug build is installed here; the release build uses the same rules.)

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn run(command: &mut Command) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn profile_name() -> String {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    dir.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn install_gives_a_versioned_soname_a_pc_file_and_a_buildable_example() {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let prefix = tempfile::tempdir().unwrap();
    let prefix = prefix.path();
    let profile = profile_name();
    assert!(
        workspace.join("target").join(&profile).join("lessor").exists(),
        "target/{profile}/lessor is missing: run the suite with ./scripts/test (it builds every binary first)"
    );
    run(Command::new(workspace.join("scripts/install"))
        .arg(prefix)
        .env("LESSOR_INSTALL_NO_BUILD", "1")
        .env("LESSOR_INSTALL_PROFILE", &profile));

    let version = env!("CARGO_PKG_VERSION");
    let soname = common::soname();
    let lib = prefix.join("lib");
    let real = lib.join(format!("liblessor.so.{version}"));
    for file in [&real, &lib.join(&soname), &lib.join("liblessor.so"), &lib.join("liblessor.a")] {
        assert!(file.exists(), "{} is missing", file.display());
    }
    assert!(prefix.join("include/lessor.h").exists() && prefix.join("bin/lessor").exists());
    assert_eq!(std::fs::read_link(lib.join("liblessor.so")).unwrap(), Path::new(&soname));

    let dynamic = run(Command::new("readelf").arg("-d").arg(&real));
    assert!(dynamic.contains(&format!("Library soname: [{soname}]")), "{dynamic}");

    let pc_path = lib.join("pkgconfig");
    let pkg_config = |args: &[&str]| -> Vec<String> {
        let out = run(Command::new("pkg-config").args(args).arg("lessor").env("PKG_CONFIG_PATH", &pc_path));
        out.split_whitespace().map(str::to_string).collect()
    };
    assert_eq!(pkg_config(&["--modversion"]), [version]);

    let example = workspace.join("ffi/examples/issue.c");
    let build = tempfile::tempdir().unwrap();
    let flags = ["-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror"];
    // Shared: linked by SONAME, so the binary asks for exactly this ABI.
    let shared = build.path().join("issue-shared");
    run(Command::new("cc")
        .args(flags)
        .arg(&example)
        .arg("-o")
        .arg(&shared)
        .args(pkg_config(&["--cflags", "--libs"]))
        .arg("-lpthread"));
    let needed = run(Command::new("readelf").arg("-d").arg(&shared));
    assert!(needed.contains(&format!("Shared library: [{soname}]")), "{needed}");
    // Static: the archive plus the system libraries lessor.pc lists as private.
    let fully_static = build.path().join("issue-static");
    let mut libs_private = pkg_config(&["--static", "--libs"]);
    libs_private.retain(|f| f != "-llessor" && !f.starts_with("-L"));
    run(Command::new("cc")
        .args(flags)
        .arg(&example)
        .arg("-o")
        .arg(&fully_static)
        .args(pkg_config(&["--cflags"]))
        .arg(lib.join("liblessor.a"))
        .args(libs_private));
    let needed = run(Command::new("readelf").arg("-d").arg(&fully_static));
    assert!(!needed.contains("liblessor"), "the static build must not need liblessor.so:\n{needed}");

    // The Go package builds against the installed lessor through pkg-config
    // alone (`#cgo pkg-config: lessor`), nothing from the build tree.
    let go = std::env::var("GO").unwrap_or_else(|_| "go".into());
    let module = tempfile::tempdir().unwrap();
    for file in ["go.mod", "lessor.go"] {
        std::fs::copy(workspace.join("ffi/go").join(file), module.path().join(file)).unwrap();
    }
    run(Command::new(&go)
        .args(["build", "."])
        .current_dir(module.path())
        .env("CGO_ENABLED", "1")
        .env("PKG_CONFIG_PATH", &pc_path)
        .env_remove("CGO_CFLAGS")
        .env_remove("CGO_LDFLAGS"));
}
